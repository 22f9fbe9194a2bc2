r"""Trains a model of the zoo with the shared engine, no compression.

    python -m trainers.baseline --model=mlp --epochs=5 --workdir=runs/mlp

Re-running the same command with the same --workdir resumes from the newest
checkpoint.
"""

from keras_rank.training import TrainConfig, train_and_evaluate
from trainers import common
from trainers.commands import COMMANDS, WorkdirArgs

common.define_flags(*COMMANDS["baseline"].configs)


def main(argv: list[str]) -> None:
    """Entry point: flags -> config -> one library call."""
    del argv  # parse_flags refused any positional argument
    common.run_or_exit(
        lambda: train_and_evaluate(
            common.config_from_flags(TrainConfig),
            common.config_from_flags(WorkdirArgs).workdir,
        )
    )


if __name__ == "__main__":
    common.run_command("baseline", main)
