r"""Trains a model of the zoo with the shared engine, no compression.

    python -m trainers.baseline --model=mlp --epochs=5 --workdir=runs/mlp

Re-running the same command with the same --workdir resumes from the newest
checkpoint.
"""

from absl import app, flags

from keras_rank.training import train_and_evaluate
from trainers import common

common.define_train_flags()


def main(argv: list[str]) -> None:
    """Entry point: flags -> config -> one library call."""
    common.reject_arguments(argv)
    common.run_or_exit(
        lambda: train_and_evaluate(
            common.train_config_from_flags(), flags.FLAGS.workdir
        )
    )


if __name__ == "__main__":
    app.run(main)
