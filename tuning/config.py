"""`SearchConfig`: what a search looks for, how, and with which reference."""

import dataclasses

from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import check_settings, setting
from tuning.objective import Goal, parse_budget

METHODS = ("dlra", "lc", "prox")
TUNERS = ("random", "bayesian", "hyperband")
DEFAULT_BUDGET = "flops:0.25"


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """The settings of a search (`tuning.search`); every field a setting.

    The training settings of every trial are `TrainConfig`'s (its `epochs`
    is each trial's budget, all phases of a method together); these say
    what is searched and what for.
    """

    method: str = setting(
        "all",
        "Method whose knobs are searched; all: every method in one search",
        choices=(*METHODS, "all"),
    )
    tuner: str = setting(
        "random",
        "keras-tuner's search: random, bayesian (Gaussian process) or hyperband "
        "(trials of 1 to --epochs epochs, the best continued)",
        choices=TUNERS,
    )
    max_trials: int = setting(8, "Trials of the search", bounds=">= 1")
    budget: str | None = setting(
        None,
        "KIND:VALUE with KIND flops, params, int8_kb or latency: maximise "
        "validation accuracy within it (flops, params, latency: a fraction <= 1 "
        "of the reference's, or a count, us for latency; int8_kb: KB; latency "
        "is the float32 LiteRT file's, and LC and prox then choose by measured "
        f"latency). Default {DEFAULT_BUDGET} unless --max_drop",
    )
    max_drop: float | None = setting(
        None,
        "Instead of --budget: minimise --minimize with validation accuracy at "
        "most this many points below the reference's",
        bounds=">= 0",
    )
    minimize: str = setting(
        "flops", "The cost --max_drop minimises", choices=("flops", "params")
    )
    reference: str | None = setting(
        None,
        "A trained .keras reference net (budget, --max_drop, LC's start); if "
        "absent, one is trained in the work directory",
    )
    reference_epochs: int | None = setting(
        None, "Epochs of the reference net's training; default --epochs", bounds=">= 1"
    )
    final_epochs: int | None = setting(
        None,
        "Epochs of the best configuration's retraining; default the "
        "reference's (--reference_epochs)",
        bounds=">= 0",
    )
    workers: int = setting(
        0,
        "Workers of a distributed search (keras-tuner's chief/worker mode): "
        "each waits until this many have started before its first trial; 0 "
        "or 1: no wait",
        bounds=">= 0",
    )
    worker_wait_s: float = setting(
        900.0,
        "Longest a worker waits for the reference net and the other workers",
        bounds="> 0",
    )

    def __post_init__(self):
        check_settings(self)
        if self.budget is not None and self.max_drop is not None:
            raise ConfigError(
                "Expected one of --budget and --max_drop, not both. Received: "
                f"--budget={self.budget}, --max_drop={self.max_drop:g}"
            )
        self.goal()  # A bad --budget is refused here, before anything runs.

    @property
    def methods(self) -> tuple[str, ...]:
        """The methods searched."""
        return METHODS if self.method == "all" else (self.method,)

    def goal(self) -> Goal:
        """Returns the search's goal (`tuning.objective.Goal`)."""
        if self.max_drop is not None:
            return Goal(max_drop=self.max_drop, minimize=self.minimize)
        return Goal(budget=parse_budget(self.budget or DEFAULT_BUDGET))

    def to_dict(self) -> dict:
        """Returns the fields as a JSON-able dict."""
        return dataclasses.asdict(self)
