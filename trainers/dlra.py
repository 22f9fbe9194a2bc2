r"""Trains a zoo model with RaRe + dynamic low-rank approximation (Lee et al. 2021).

    python -m trainers.dlra --model=mlp --epochs=30 --workdir=runs/dlra

The three configurations of the paper's Table 1:

    baseline: --nofn --nofusion --lambda1=0 --lambda2=0
    +FN:      --fn --nofusion --lambda1=0 --lambda2=0
    +DLRA:    (the defaults) --fn --fusion --lambda1=20

Re-running the same command with the same --workdir resumes from the newest
checkpoint, also after the layers changed shape.
"""

from absl import app, flags

from keras_rank.dlra import L2_TARGETS, DLRAConfig
from keras_rank.dlra.run import train_dlra
from trainers import common

common.define_train_flags()
flags.DEFINE_float("lambda1", 20.0, "Weight of the RaRe loss (eq. 18).")
flags.DEFINE_float(
    "lambda2", 0.0, "Weight of the factor L2 loss (eq. 17); paper 0.1, see BUILD_NOTES."
)
flags.DEFINE_float("tau_cos", 1e-4, "Fuse when 1 - |cos| < tau_cos.", lower_bound=0)
flags.DEFINE_float("tau_euc", 0.1, "... and D_euc < tau_euc.", lower_bound=0)
flags.DEFINE_bool("fn", True, "Frobenius normalization (eq. 15).")
flags.DEFINE_bool("fusion", True, "Fuse nearly parallel vectors (DLRA).")
flags.DEFINE_bool("feature_reduction", True, "Feature-space reduction (sec. 4.3).")
flags.DEFINE_integer(
    "search_every", 10, "Steps between two all-pairs searches.", lower_bound=1
)
flags.DEFINE_enum(
    "l2_target", "kernel", list(L2_TARGETS), "What the factor L2 penalises."
)
flags.DEFINE_float(
    "gradient_noise", 0.0, "Annealed gradient noise variance eta; 0 is off."
)


def main(argv: list[str]) -> None:
    """Entry point: flags -> configs -> one library call."""
    common.reject_arguments(argv)
    f = flags.FLAGS

    def run():
        dlra_config = DLRAConfig(
            lambda1=f.lambda1,
            lambda2=f.lambda2,
            tau_cos=f.tau_cos,
            tau_euc=f.tau_euc,
            frobenius_norm=f.fn,
            fusion=f.fusion,
            feature_reduction=f.feature_reduction,
            search_every=f.search_every,
            l2_target=f.l2_target,
            gradient_noise=f.gradient_noise,
        )
        train_dlra(common.train_config_from_flags(), dlra_config, f.workdir)

    common.run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
