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

from absl import app, flags

from keras_rank.lc.config import CRITERIA, LCConfig
from keras_rank.lc.run import train_lc
from trainers import common

common.define_train_flags()
flags.DEFINE_string(
    "reference", None, "A trained .keras reference net; if absent, one is trained."
)
flags.DEFINE_list(
    "lambda", ["2e-5"], "Weights lambda of the cost, comma-separated: one run each."
)
flags.DEFINE_enum("criterion", "flops", list(CRITERIA), "The cost C(r) of the ranks.")
flags.DEFINE_integer("conv_scheme", 1, "Conv2D low-rank scheme: 1 or 2.")
flags.DEFINE_float("mu0", 5e-4, "Penalty parameter of the first LC step (> 0).")
flags.DEFINE_float("mu_growth", 1.25, "mu_j = mu0 * mu_growth^j (> 1).")
flags.DEFINE_integer("lc_steps", 30, "Number of L steps, each followed by a C step.")
flags.DEFINE_integer("epochs_per_l_step", 1, "Epochs of one L step.")
flags.DEFINE_float("tolerance", 1e-3, "Stop once ||W - Theta|| / ||W|| is below.")
flags.DEFINE_integer("min_rank", 1, "Lowest rank a layer may take (0 allowed).")
flags.DEFINE_integer("finetune_epochs", 10, "Epochs of the low-rank net's training.")
flags.DEFINE_float(
    "finetune_learning_rate", None, "Its learning rate; default --learning_rate."
)
flags.DEFINE_bool("baselines", True, "Also run both heuristic baselines.")


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    common.reject_arguments(argv)
    f = flags.FLAGS

    def run():
        lc_config = LCConfig(
            lambdas=common.numbers_from_flag("lambda", f["lambda"].value),
            criterion=f.criterion,
            conv_scheme=f.conv_scheme,
            mu0=f.mu0,
            mu_growth=f.mu_growth,
            lc_steps=f.lc_steps,
            epochs_per_l_step=f.epochs_per_l_step,
            tolerance=f.tolerance,
            min_rank=f.min_rank,
            finetune_epochs=f.finetune_epochs,
            finetune_learning_rate=f.finetune_learning_rate,
            baselines=f.baselines,
        )
        train_lc(
            common.train_config_from_flags(),
            lc_config,
            f.workdir,
            reference=f.reference,
        )

    common.run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
