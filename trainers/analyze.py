r"""Where the redundancy of a trained model is: one report (Heitmann, section 3).

    python -m trainers.analyze --model_path=runs/lenet300/model.keras \
        --workdir=runs/lenet300/analysis

Takes the model.keras of any keras_rank trainer (dense, DLRA, LC, prox) or a
user's own .keras file, in the plain form it exports in. Writes into
--workdir: pruning curves of one layer's units by magnitude, frame potential
and at random; the spectra of every layer against Marchenko-Pastur with the
accuracy at each elbow rank; the cosine graph of the layer's units (every
epoch when the model was trained with --record_units=LAYER); report.md and a
self-contained report.html. The data and splits are read from the trainer's
config.json beside the model unless --data is given.
"""

from keras_rank.analysis.config import AnalysisConfig
from keras_rank.analysis.run import analyze
from trainers import common
from trainers.commands import COMMANDS, WorkdirArgs

common.define_flags(*COMMANDS["analyze"].configs)


def main(argv: list[str]) -> None:
    """Entry point: flags -> config -> one library call."""
    del argv  # parse_flags refused any positional argument
    common.run_or_exit(
        lambda: analyze(
            common.config_from_flags(AnalysisConfig),
            common.config_from_flags(WorkdirArgs).workdir,
        )
    )


if __name__ == "__main__":
    common.run_command("analyze", main)
