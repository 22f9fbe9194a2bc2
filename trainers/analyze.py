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

from absl import app, flags

from keras_rank.analysis.config import DEFAULT_PRUNE_UNITS, AnalysisConfig
from keras_rank.analysis.pruning_criteria import CRITERIA
from keras_rank.analysis.run import analyze
from keras_rank.analysis.spectra import RESIDUAL_NORMS
from trainers import common

flags.DEFINE_string("model_path", None, "The .keras model to analyse.")
flags.DEFINE_string(
    "layer",
    None,
    "Dense/Conv2D layer to prune and draw; default: the first whose units can go.",
)
flags.DEFINE_list(
    "prune_units",
    list(DEFAULT_PRUNE_UNITS),
    "Units to prune: counts or percentages of the layer ('50%').",
)
flags.DEFINE_list("criteria", list(CRITERIA), f"Pruning criteria, from {CRITERIA}.")
flags.DEFINE_enum(
    "residual_norm",
    RESIDUAL_NORMS[0],
    list(RESIDUAL_NORMS),
    "Norm of the rank-k residual curve whose elbow picks each layer's rank.",
)
flags.DEFINE_integer("random_seeds", 5, "Random pruning orders averaged (>= 1).")
flags.DEFINE_float("sigma", None, "Width of the cosine graph's Gaussian (> 0).")
flags.DEFINE_float("threshold", None, "Cosine graph edges below it are dropped.")
flags.DEFINE_list(
    "graph_epochs", None, "Epochs with a PNG of the graph; default: four of them."
)
flags.DEFINE_string(
    "history_dir", None, "The run's unit_history folder; default: beside the model."
)
flags.DEFINE_string(
    "data", None, "The training data; default: the run's (config.json), else ours."
)
flags.DEFINE_string("test_split", None, "The split accuracies are measured on.")
flags.DEFINE_integer("batch_size", 256, "Evaluation batch size.")
flags.DEFINE_integer("verbose", 1, "0 silent; 1 or 2: progress lines.")
flags.DEFINE_string("workdir", None, "Folder of the report.")
flags.mark_flag_as_required("model_path")
flags.mark_flag_as_required("workdir")


def main(argv: list[str]) -> None:
    """Entry point: flags -> config -> one library call."""
    common.reject_arguments(argv)
    f = flags.FLAGS

    def run():
        epochs = f.graph_epochs
        config = AnalysisConfig(
            model_path=f.model_path,
            layer=f.layer,
            prune_units=tuple(f.prune_units),
            criteria=tuple(f.criteria),
            residual_norm=f.residual_norm,
            random_seeds=f.random_seeds,
            sigma=f.sigma,
            threshold=f.threshold,
            graph_epochs=None
            if epochs is None
            else tuple(
                int(n) for n in common.numbers_from_flag("graph_epochs", epochs)
            ),
            history_dir=f.history_dir,
            data=f.data,
            test_split=f.test_split,
            batch_size=f.batch_size,
            verbose=f.verbose,
        )
        analyze(config, f.workdir)

    common.run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
