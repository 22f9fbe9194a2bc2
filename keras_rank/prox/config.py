"""`ProxConfig`: the hyperparameters of compression-aware training."""

import dataclasses
import math
from collections.abc import Sequence

from keras_rank.errors import ConfigError, check_at_least
from keras_rank.prox.decompose import check_energy


def _per_group(name: str, values: Sequence[float]) -> tuple[float, ...]:
    """Checks a per-layer-group setting: one or two numbers >= 0."""
    values = tuple(float(value) for value in values)
    if not 1 <= len(values) <= 2 or not all(
        math.isfinite(value) and value >= 0 for value in values
    ):
        raise ConfigError(
            f"Expected {name}: one value >= 0 (every layer) or two (the first "
            f"layers, the rest). Received: {name}={values!r}"
        )
    return values


@dataclasses.dataclass(frozen=True)
class ProxConfig:
    """Hyperparameters of nuclear-norm proximal training (Alvarez & Salzmann 2017).

    The regulariser of eq. (5) per compressed layer l (its Dense/Conv2D
    weight matrix M_l, units as columns): tau_l ||M_l||_* plus, with
    group_lambda > 0, the sparse group Lasso (1 - alpha) lam_l sqrt(P_l)
    sum_n ||m_n||_2 + alpha lam_l ||M_l||_1. Training takes ordinary steps
    on the task loss; every `prox_every` steps (0: once an epoch, as in the
    paper) each layer's matrix goes through the proximal operators with step
    rho, the optimizer's current learning rate.

    Attributes:
        tau: Weight of the nuclear norm, >= 0: one value for every layer, or
            two (the first `first_layers` compressed layers, then the rest).
        group_lambda: lam of the sparse group Lasso, >= 0, one or two values
            like `tau`; 0 switches it off.
        alpha: Mix of element (alpha) and group (1 - alpha) sparsity, in
            [0, 1]; the paper uses 0.2.
        first_layers: How many compressed layers (in model order) take the
            first of two values, >= 1.
        prox_every: Steps between two proximal steps, >= 0; 0 is once an
            epoch. The threshold is rho * tau each time, so more frequent
            steps regularise more strongly.
        energies: Post-processing: per value e in (0, 100], one decomposition
            keeping the singular values that hold e % of each layer's energy
            (sum of singular values).
        reload_epoch: Compress the net after this many epochs (at
            `reload_energy`) and train the compact net for the remaining
            epochs (section 5's "reload"); None trains the full net
            throughout.
        reload_energy: Energy kept by the reload's decomposition, in (0, 100].
        rank_tolerance: Singular values below this fraction of the largest
            do not count towards a layer's effective rank (logs only).
    """

    tau: tuple[float, ...] = (1.0,)
    group_lambda: tuple[float, ...] = (0.0,)
    alpha: float = 0.2
    first_layers: int = 1
    prox_every: int = 0
    energies: tuple[float, ...] = (80.0, 90.0, 100.0)
    reload_epoch: int | None = None
    reload_energy: float = 100.0
    rank_tolerance: float = 1e-3

    def __post_init__(self):
        object.__setattr__(self, "tau", _per_group("tau", self.tau))
        object.__setattr__(
            self, "group_lambda", _per_group("group_lambda", self.group_lambda)
        )
        if not 0 <= self.alpha <= 1:
            raise ConfigError(
                f"Expected alpha in [0, 1]. Received: alpha={self.alpha!r}"
            )
        check_at_least("first_layers", self.first_layers, 1)
        check_at_least("prox_every", self.prox_every, 0)
        energies = tuple(check_energy(energy) for energy in self.energies)
        object.__setattr__(self, "energies", energies)
        object.__setattr__(self, "reload_energy", check_energy(self.reload_energy))
        if self.reload_epoch is not None:
            check_at_least("reload_epoch", self.reload_epoch, 1)
        if not 0 <= self.rank_tolerance < 1:
            raise ConfigError(
                "Expected rank_tolerance in [0, 1). "
                f"Received: rank_tolerance={self.rank_tolerance!r}"
            )

    def layer_value(self, values: tuple[float, ...], index: int) -> float:
        """Returns `tau` or `group_lambda` for the compressed layer `index`."""
        return values[0] if len(values) == 1 or index < self.first_layers else values[1]
