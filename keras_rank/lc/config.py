"""`LCConfig`: the hyperparameters of LC rank selection."""

import dataclasses

from keras_rank.errors import ConfigError, check_at_least
from keras_rank.lc.c_step import check_lc_hyperparameters, mu_schedule

CRITERIA = ("flops", "storage")
SCHEMES = (1, 2)


@dataclasses.dataclass(frozen=True)
class LCConfig:
    """Hyperparameters of the LC algorithm (Idelbayev & Carreira-Perpinan 2020).

    Attributes:
        lambdas: Weights lambda of the cost term, each >= 0; one LC run per
            value, all starting from the same reference model.
        criterion: The cost C(r) the ranks trade against the loss: "flops"
            (multiply-adds per example) or "storage" (parameters).
        conv_scheme: How a Conv2D kernel is seen as a matrix: 1 (n x c d d:
            r filters d x d then n 1x1 filters) or 2 (n d x c d: r filters
            d x 1 then n filters 1 x d).
        mu0: Penalty parameter of the first LC step, > 0 (paper: 5e-4, 1e-3).
        mu_growth: Factor b of the schedule mu_j = mu0 b^j, > 1 (paper: 1.2,
            1.25).
        lc_steps: Number of L steps (each followed by a C step), >= 1.
        epochs_per_l_step: Training epochs of one L step, >= 1.
        tolerance: Stop early once ||W - Theta|| / ||W|| over all compressed
            layers falls below it, > 0.
        min_rank: Lowest rank a layer may take, >= 0. 0 lets the C step remove
            a layer's weights entirely (it then outputs only its bias); the
            default 1 keeps every layer connected.
        finetune_epochs: Epochs of training of the low-rank net once the
            ranks are fixed, >= 0.
        finetune_learning_rate: Initial learning rate of that training,
            > 0; None keeps the run's. A smaller rate than the L steps' keeps
            fine-tuning from undoing what LC found (BUILD_NOTES.md).
        baselines: Also run the two heuristic baselines of section 4.1 at
            each lambda's cost, each fine-tuned like the LC net.
    """

    lambdas: tuple[float, ...] = (2e-5,)
    criterion: str = "flops"
    conv_scheme: int = 1
    mu0: float = 5e-4
    mu_growth: float = 1.25
    lc_steps: int = 30
    epochs_per_l_step: int = 1
    tolerance: float = 1e-3
    min_rank: int = 1
    finetune_epochs: int = 10
    finetune_learning_rate: float | None = None
    baselines: bool = True

    def __post_init__(self):
        object.__setattr__(self, "lambdas", tuple(float(v) for v in self.lambdas))
        if not self.lambdas:
            raise ConfigError("Expected at least one lambda. Received: lambdas=()")
        for lam in self.lambdas:
            check_lc_hyperparameters(lam, self.mu0, self.mu_growth)
        if len(set(self.lambdas)) != len(self.lambdas):
            raise ConfigError(
                f"Expected distinct lambdas. Received: lambdas={self.lambdas}"
            )
        if self.criterion not in CRITERIA:
            raise ConfigError(
                f"Unknown criterion {self.criterion!r}. "
                f"Expected one of: {', '.join(CRITERIA)}."
            )
        if self.conv_scheme not in SCHEMES:
            raise ConfigError(
                f"Unknown conv_scheme {self.conv_scheme!r}. Expected one of: 1, 2."
            )
        if not self.tolerance > 0:
            raise ConfigError(
                f"Expected tolerance > 0. Received: tolerance={self.tolerance}"
            )
        check_at_least("lc_steps", self.lc_steps, 1)
        check_at_least("epochs_per_l_step", self.epochs_per_l_step, 1)
        check_at_least("min_rank", self.min_rank, 0)
        check_at_least("finetune_epochs", self.finetune_epochs, 0)
        rate = self.finetune_learning_rate
        if rate is not None and not (isinstance(rate, (int, float)) and rate > 0):
            raise ConfigError(
                "Expected finetune_learning_rate > 0. "
                f"Received: finetune_learning_rate={rate!r}"
            )

    @property
    def lc_epochs(self) -> int:
        """Training epochs of the whole LC phase."""
        return self.lc_steps * self.epochs_per_l_step

    def mu(self, step: int) -> float:
        """The penalty parameter mu_j = mu0 b^j of LC step `step` (0-based)."""
        return mu_schedule(self.mu0, self.mu_growth, step)

    def lc_phase_settings(self) -> dict:
        """The settings the L and C steps depend on (saved with each LC phase).

        Fine-tuning and baseline settings are left out, so changing them
        reuses a finished LC phase.
        """
        settings = dataclasses.asdict(self)
        for name in (
            "lambdas",
            "finetune_epochs",
            "finetune_learning_rate",
            "baselines",
        ):
            del settings[name]
        return settings
