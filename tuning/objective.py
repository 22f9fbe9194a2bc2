"""What a search optimises: a budget or an accuracy floor, as one number.

keras-tuner ranks trials by one number. A search has one of two goals:

* ``--budget=KIND:VALUE``: maximise validation accuracy subject to a size
  budget. KIND is ``flops`` (the deployable model's multiply-adds per
  example), ``params`` (its parameters), ``int8_kb`` (the size of its int8
  LiteRT file, KB) or ``latency`` (the median latency of its float32 LiteRT
  file, us, one thread, batch 1, timed interleaved with the reference's
  file). For flops, params and latency a VALUE in (0, 1] is a fraction of
  the reference net's, a VALUE above 1 an absolute count (us); int8_kb is
  absolute. Under a latency budget LC and prox also choose ranks and splits
  by measured latency (their ``criterion=latency``).
* ``--max_drop=POINTS``: minimise the deployable model's FLOPs (or params)
  subject to a validation accuracy at most POINTS below the reference's.

The score (higher is better) of a feasible trial is its validation accuracy
(budget) or minus its cost as a fraction of the reference's (max_drop). An
infeasible trial scores below every feasible one: minus its cost over the
budget (``-cost / limit``, below -1) for a budget, and ``-1000 -
shortfall`` (points of accuracy missing) for an accuracy floor. So among
infeasible trials the nearest to feasible ranks first, and every trial's
full metrics are kept beside its score for the Pareto report.
"""

import dataclasses
from typing import Any

from keras_rank.core.errors import ConfigError

BUDGET_KINDS = ("flops", "params", "int8_kb", "latency")
COST_KEYS = {
    "flops": "flops_mac1",
    "params": "params",
    "int8_kb": "int8_kb",
    "latency": "latency_us",
}
"""The trial metric each budget kind limits."""

INFEASIBLE_FLOOR = -1000.0
"""Score offset of a trial below the accuracy floor (max_drop goal)."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """A size budget.

    Attributes:
        kind: One of `BUDGET_KINDS`.
        value: The limit: a fraction of the reference's (``relative``) or
            an absolute count (KB for int8_kb).
        relative: Whether `value` is a fraction of the reference's.
    """

    kind: str
    value: float
    relative: bool

    def limit(self, reference: dict[str, Any]) -> float:
        """Returns the limit on the trial metric `COST_KEYS[kind]`."""
        if not self.relative:
            return self.value
        return self.value * reference[COST_KEYS[self.kind]]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value:g}"


def parse_budget(text: str) -> Budget:
    """Reads ``KIND:VALUE`` (see the module docstring).

    Raises:
        ConfigError: The text is not of that form; names --budget and what
            is allowed.
    """
    kind, sep, number = str(text).partition(":")
    try:
        value = float(number)
    except ValueError:
        value = None
    if not sep or kind not in BUDGET_KINDS or value is None or not value > 0:
        raise ConfigError(
            f"Expected --budget=KIND:VALUE with KIND one of {', '.join(BUDGET_KINDS)} "
            f"and VALUE > 0 (flops, params, latency: a fraction <= 1 of the "
            f"reference's, or a count; int8_kb: KB). Received: --budget={text}"
        )
    relative = kind != "int8_kb" and value <= 1
    return Budget(kind=kind, value=value, relative=relative)


@dataclasses.dataclass(frozen=True)
class Goal:
    """The goal of a search: a budget, or an accuracy floor.

    Attributes:
        budget: Maximise validation accuracy within it; or None.
        max_drop: Points of validation accuracy the trial may lose against
            the reference; or None. Exactly one of the two is set.
        minimize: With `max_drop`: the cost minimised, "flops" or "params".
    """

    budget: Budget | None = None
    max_drop: float | None = None
    minimize: str = "flops"

    def __post_init__(self):
        if (self.budget is None) == (self.max_drop is None):
            raise ConfigError(
                "Expected exactly one of --budget and --max_drop. Received: "
                f"--budget={self.budget}, --max_drop={self.max_drop}"
            )
        if self.max_drop is not None and not self.max_drop >= 0:
            raise ConfigError(
                "Expected --max_drop >= 0 (points). "
                f"Received: --max_drop={self.max_drop}"
            )
        if self.minimize not in ("flops", "params"):
            raise ConfigError(
                f"Unknown minimize {self.minimize!r}. Expected one of: flops, params."
            )

    @property
    def cost_key(self) -> str:
        """The trial metric the goal limits or minimises."""
        kind = self.budget.kind if self.budget is not None else self.minimize
        return COST_KEYS[kind]

    def target_fraction(self, reference: dict[str, Any]) -> float | None:
        """Returns the budget as a fraction (<= 1) of the reference's cost.

        None for an accuracy floor, which sets no cost to reach.
        """
        if self.budget is None:
            return None
        return min(self.budget.limit(reference) / reference[self.cost_key], 1.0)

    def score(
        self, metrics: dict[str, Any], reference: dict[str, Any]
    ) -> tuple[float, bool]:
        """Returns a trial's score (higher is better) and whether it is feasible.

        Args:
            metrics: The trial's ``val_accuracy`` (fraction) and costs
                (``params``, ``flops_mac1``, ``int8_kb`` or ``latency_us``
                where asked for).
            reference: The same of the reference net.
        """
        cost = metrics[self.cost_key]
        accuracy = metrics["val_accuracy"]
        if self.budget is not None:
            limit = self.budget.limit(reference)
            if cost <= limit:
                return float(accuracy), True
            return -float(cost / limit), False
        floor = reference["val_accuracy"] - self.max_drop / 100
        if accuracy >= floor:
            return -float(cost / reference[self.cost_key]), True
        return INFEASIBLE_FLOOR - 100 * float(floor - accuracy), False
