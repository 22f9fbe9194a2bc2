r"""Trains a zoo model with RaRe + dynamic low-rank approximation (Lee et al. 2021).

    python -m trainers.dlra --model=mlp --epochs=30 --workdir=runs/dlra

The three configurations of the paper's Table 1:

    baseline: --nofn --nofusion --lambda1=0 --lambda2=0
    +FN:      --fn --nofusion --lambda1=0 --lambda2=0
    +DLRA:    (the defaults) --fn --fusion --lambda1=20

Re-running the same command with the same --workdir resumes from the newest
checkpoint, also after the layers changed shape.
"""

from keras_rank.dlra import DLRAConfig
from keras_rank.dlra.run import train_dlra
from keras_rank.training import TrainConfig
from trainers import common
from trainers.commands import COMMANDS, WorkdirArgs

common.define_flags(*COMMANDS["dlra"].configs)


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    del argv  # parse_flags refused any positional argument
    common.run_or_exit(
        lambda: train_dlra(
            common.config_from_flags(TrainConfig),
            common.config_from_flags(DLRAConfig),
            common.config_from_flags(WorkdirArgs).workdir,
        )
    )


if __name__ == "__main__":
    common.run_command("dlra", main)
