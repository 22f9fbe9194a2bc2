"""`LCConfig`: the hyperparameters of LC rank selection."""

import dataclasses

from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import Search, check_settings, setting
from keras_rank.lc.c_step import mu_schedule

CRITERIA = ("flops", "storage", "latency")
SCHEMES = (1, 2)
FINETUNE_RATE_FACTOR = 0.1
"""The default fine-tuning rate as a fraction of the L steps' rate."""


@dataclasses.dataclass(frozen=True)
class LCConfig:
    """Hyperparameters of the LC algorithm (Idelbayev & Carreira-Perpinan 2020).

    Every field is a setting (docs/cli.md). One LC run per value of
    `lambdas`, all from the same reference model. `min_rank` 0 lets the C
    step remove a layer's weights entirely (it then outputs only its bias);
    the default 1 keeps every layer connected. Fine-tuning runs by default
    at a tenth of the L steps' rate (`FINETUNE_RATE_FACTOR`): at their rate
    it undoes what LC found (docs/design/lc.md).
    """

    lambdas: tuple[float, ...] = setting(
        (2e-5,),
        "Weights lambda of the cost, one LC run each",
        flag="lambda",
        bounds=">= 0",
        search=Search(0.5, 2.0, "log", relative_to="lc_lambda_scale"),
    )
    criterion: str = setting(
        "flops",
        "The cost C(r) the ranks trade against the loss: flops (multiply-adds "
        "per example), storage (parameters) or latency (LiteRT float32 time of "
        "each layer's full and low-rank forms, 1 thread, batch 1, measured once "
        "per shape and cached in the work directory)",
        choices=CRITERIA,
    )
    conv_scheme: int = setting(
        1,
        "How a Conv2D kernel is seen as a matrix: 1 (r filters d x d, then n "
        "1x1) or 2 (r filters d x 1, then n filters 1 x d)",
        choices=SCHEMES,
    )
    mu0: float = setting(
        5e-4, "Penalty parameter of the first LC step (paper: 5e-4, 1e-3)", bounds="> 0"
    )
    mu_growth: float = setting(
        1.25, "Factor b of the schedule mu_j = mu0 b^j (paper: 1.2, 1.25)", bounds="> 1"
    )
    lc_steps: int = setting(
        30, "Number of L steps, each followed by a C step", bounds=">= 1"
    )
    epochs_per_l_step: int = setting(1, "Training epochs of one L step", bounds=">= 1")
    tolerance: float = setting(
        1e-3,
        "Stop early once ||W - Theta|| / ||W|| over all compressed layers is below",
        bounds="> 0",
    )
    min_rank: int = setting(1, "Lowest rank a layer may take", bounds=">= 0")
    rank_multiple: int = setting(
        1,
        "Ranks are multiples of it or a layer's full rank (C steps and baselines); "
        "8 suits the tiles of LiteRT's CPU kernels",
        bounds=">= 1",
    )
    finetune_epochs: int = setting(
        10,
        "Epochs of training of the low-rank net once the ranks are fixed",
        bounds=">= 0",
    )
    finetune_learning_rate: float | None = setting(
        None,
        "Initial learning rate of that training; default a tenth of --learning_rate",
        bounds="> 0",
    )
    baselines: bool = setting(
        True, "Also run both heuristic baselines at each lambda's cost, fine-tuned"
    )

    def __post_init__(self):
        check_settings(self)
        if not self.lambdas:
            raise ConfigError("Expected at least one lambda. Received: lambdas=()")
        if len(set(self.lambdas)) != len(self.lambdas):
            raise ConfigError(
                f"Expected distinct lambdas. Received: lambdas={self.lambdas}"
            )

    @property
    def lc_epochs(self) -> int:
        """Training epochs of the whole LC phase."""
        return self.lc_steps * self.epochs_per_l_step

    def finetune_rate(self, learning_rate: float) -> float:
        """The fine-tuning's initial learning rate, given the L steps' rate."""
        if self.finetune_learning_rate is not None:
            return self.finetune_learning_rate
        return FINETUNE_RATE_FACTOR * learning_rate

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
