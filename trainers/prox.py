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

from absl import app, flags

from keras_rank.prox import ProxConfig, train_prox
from trainers import common

common.define_train_flags()
flags.DEFINE_list(
    "tau",
    ["1"],
    "Nuclear-norm weight(s), >= 0: one value, or two (the first --first_layers "
    "layers, then the rest).",
)
flags.DEFINE_list(
    "group_lambda", ["0"], "Sparse group Lasso lambda(s), like --tau; 0 is off."
)
flags.DEFINE_float("alpha", 0.2, "Element (alpha) vs group (1 - alpha) sparsity.")
flags.DEFINE_integer(
    "first_layers", 1, "Layers that take the first of two --tau/--group_lambda."
)
flags.DEFINE_integer("prox_every", 0, "Steps between proximal steps; 0: each epoch.")
flags.DEFINE_list(
    "energy", ["80", "90", "100"], "Energies (%) of the decompositions, in (0, 100]."
)
flags.DEFINE_integer(
    "reload_epoch", None, "Compress after this epoch and train the compact net on."
)
flags.DEFINE_float("reload_energy", 100.0, "Energy (%) kept by the reload.")


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    common.reject_arguments(argv)
    f = flags.FLAGS

    def run():
        prox_config = ProxConfig(
            tau=common.numbers_from_flag("tau", f.tau),
            group_lambda=common.numbers_from_flag("group_lambda", f.group_lambda),
            alpha=f.alpha,
            first_layers=f.first_layers,
            prox_every=f.prox_every,
            energies=common.numbers_from_flag("energy", f.energy),
            reload_epoch=f.reload_epoch,
            reload_energy=f.reload_energy,
        )
        train_prox(common.train_config_from_flags(), prox_config, f.workdir)

    common.run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
