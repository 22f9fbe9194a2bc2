r"""Learns each layer's rank with the LC algorithm (Idelbayev & Carreira-Perpinan 2020).

    python -m trainers.lc --model=lenet300_tanh --epochs=30 \
        --optimizer=sgd --momentum=0.9 --nesterov --learning_rate=0.01 \
        --finetune_learning_rate=0.001 --lambda=2e-5,5e-5 --workdir=runs/lc

Trains the reference net (--epochs) in the work directory unless --reference
names a trained .keras file, then for every --lambda runs --lc_steps L steps
of --epochs_per_l_step epochs each followed by a C step, fixes the ranks,
fine-tunes the low-rank net for --finetune_epochs epochs, and does the same
for the two heuristic baselines at LC's cost. Re-running the same command
with the same --workdir resumes wherever it stopped.
"""

from absl import app

from keras_rank.lc.config import LCConfig
from keras_rank.lc.run import train_lc
from keras_rank.training import TrainConfig
from trainers import common
from trainers.commands import COMMANDS, ReferenceArgs, WorkdirArgs

common.define_flags(*COMMANDS["lc"].configs)


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    common.reject_arguments(argv)
    common.run_or_exit(
        lambda: train_lc(
            common.config_from_flags(TrainConfig),
            common.config_from_flags(LCConfig),
            common.config_from_flags(WorkdirArgs).workdir,
            reference=common.config_from_flags(ReferenceArgs).reference,
        )
    )


if __name__ == "__main__":
    app.run(main)
