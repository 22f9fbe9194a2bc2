r"""Compression-aware training: nuclear-norm proximal steps (Alvarez & Salzmann 2017).

    python -m trainers.prox --model=mlp --epochs=30 --tau=1 \
        --group_lambda=0 --energy=80,90,100 --workdir=runs/prox

Trains with ordinary steps on the task loss and, every --prox_every steps
(0: once an epoch), a proximal step per Dense/Conv2D layer: the sparse group
Lasso prox (--group_lambda, --alpha), then soft-thresholding of the singular
values by learning rate x --tau. Then removes the units that went to zero and
decomposes every layer at each --energy (% of the sum of singular values),
tests each result and saves it as low-rank and plain Keras models.
--reload_epoch compresses the net after that epoch and trains the compact
net for the remaining epochs. Re-running the same command with the same
--workdir resumes from the newest checkpoint.
"""

from keras_rank.prox import ProxConfig, train_prox
from keras_rank.training import TrainConfig
from trainers import common
from trainers.commands import COMMANDS, WorkdirArgs

common.define_flags(*COMMANDS["prox"].configs)


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    del argv  # parse_flags refused any positional argument
    common.run_or_exit(
        lambda: train_prox(
            common.config_from_flags(TrainConfig),
            common.config_from_flags(ProxConfig),
            common.config_from_flags(WorkdirArgs).workdir,
        )
    )


if __name__ == "__main__":
    common.run_command("prox", main)
