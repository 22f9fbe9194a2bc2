"""`ProxConfig`: the hyperparameters of compression-aware training."""

import dataclasses

from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import Search, check_settings, setting

CRITERIA = ("storage", "flops", "latency")


@dataclasses.dataclass(frozen=True)
class ProxConfig:
    """Hyperparameters of nuclear-norm proximal training (Alvarez & Salzmann 2017).

    The regulariser of eq. (5) per compressed layer l (its Dense/Conv2D
    weight matrix M_l, units as columns): tau_l ||M_l||_* plus, with
    group_lambda > 0, the sparse group Lasso (1 - alpha) lam_l sqrt(P_l)
    sum_n ||m_n||_2 + alpha lam_l ||M_l||_1. Training takes ordinary steps
    on the task loss; every `prox_every` steps (0: once an epoch, as in the
    paper) each layer's matrix goes through the proximal operators with step
    rho, the optimizer's current learning rate. The threshold is rho * tau
    each time, so more frequent steps regularise more strongly. Every field
    is a setting (docs/cli.md).
    """

    tau: tuple[float, ...] = setting(
        (1.0,),
        "Nuclear-norm weight(s): one value, or two (the first --first_layers "
        "layers, then the rest)",
        bounds=">= 0",
        search=Search(0.1, 1.0, "log", relative_to="prox_tau_scale"),
    )
    group_lambda: tuple[float, ...] = setting(
        (0.0,), "Sparse group Lasso lambda(s), like --tau; 0 is off", bounds=">= 0"
    )
    alpha: float = setting(
        0.2, "Element (alpha) vs group (1 - alpha) sparsity", bounds="[0, 1]"
    )
    first_layers: int = setting(
        1, "Layers that take the first of two --tau/--group_lambda", bounds=">= 1"
    )
    prox_every: int = setting(
        0, "Steps between proximal steps; 0: once an epoch", bounds=">= 0"
    )
    energies: tuple[float, ...] = setting(
        (80.0, 90.0, 100.0),
        "Energies (% of the sum of singular values) of the decompositions",
        flag="energy",
        bounds="(0, 100]",
    )
    reload_epoch: int | None = setting(
        None,
        "Compress the net after this epoch (at --reload_energy) and train the "
        "compact net for the remaining epochs",
        bounds=">= 1",
    )
    criterion: str = setting(
        "storage",
        "What a decomposition must lower for a layer to be split: storage "
        "(parameters), flops (multiply-adds) or latency (LiteRT float32 time "
        "of the layer's full and low-rank forms, measured once per shape and "
        "cached in the work directory)",
        choices=CRITERIA,
    )
    rank_multiple: int = setting(
        1,
        "Ranks of the decompositions are multiples of it or a layer's full rank; "
        "8 suits the tiles of LiteRT's CPU kernels",
        bounds=">= 1",
    )
    reload_energy: float = setting(
        100.0, "Energy (%) kept by the reload's decomposition", bounds="(0, 100]"
    )
    rank_tolerance: float = setting(
        1e-3,
        "Singular values below this fraction of the largest do not count "
        "towards a layer's effective rank (logs only)",
        bounds="[0, 1)",
    )

    def __post_init__(self):
        check_settings(self)
        for name in ("tau", "group_lambda"):
            values = getattr(self, name)
            if not 1 <= len(values) <= 2:
                raise ConfigError(
                    f"Expected {name}: one value >= 0 (every layer) or two (the "
                    f"first layers, the rest). Received: {name}={values!r}"
                )

    def layer_value(self, values: tuple[float, ...], index: int) -> float:
        """Returns `tau` or `group_lambda` for the compressed layer `index`."""
        return values[0] if len(values) == 1 or index < self.first_layers else values[1]
