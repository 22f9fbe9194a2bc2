r"""Searches every method's knobs for a budget with keras-tuner, then exports the best.

    python -m tuning.search --method=all --budget=flops:0.25 --max_trials=8 \
        --epochs=5 --workdir=runs/search

Trains the reference net once in the work directory (unless --reference
names a trained .keras file), runs --max_trials trials of --epochs epochs
each (every method's phases together), each scored on the validation split
by the goal (--budget, or --max_drop), writes the Pareto report of all
trials (trials.csv, pareto.png, summary.md), retrains the best configuration
for --final_epochs, tests it once and exports it to LiteRT float32 and int8.
Every training flag applies to every trial. Re-running the same command
resumes: finished trials are not run again. Distributed over processes or
machines with keras-tuner's own chief/worker mode: docs/tuning.md.
"""

import trainers  # noqa: F401  (first: TensorFlow starts quietly)
from keras_rank.training import TrainConfig
from trainers import common
from trainers.commands import COMMANDS, WorkdirArgs
from tuning.config import SearchConfig
from tuning.run import run_search

common.define_flags(*COMMANDS["search"].configs)


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    del argv  # parse_flags refused any positional argument
    common.run_or_exit(
        lambda: run_search(
            common.config_from_flags(TrainConfig),
            common.config_from_flags(SearchConfig),
            common.config_from_flags(WorkdirArgs).workdir,
        )
    )


if __name__ == "__main__":
    common.run_command("search", main)
