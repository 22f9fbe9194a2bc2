"""Which trial a search retrains: the best, ties within validation noise broken.

keras-tuner's best trial is the one of highest score. Under a budget the
score is the validation accuracy, and trials of a search often differ by
less than its noise: on 6,000 validation images at 89 % one accuracy's
standard error is 0.40 points. Picking the top score then picks at random
among equals, and a trial well under the budget pays for its extra
compression when it is retrained for longer. So, under a budget, the
chosen trial is, among the feasible trials whose validation accuracy is
within one standard error of the best's, the one whose cost is nearest the
budget (the largest; the higher accuracy breaks a tie of costs). This is
the "one standard error rule" turned toward the constraint: the budget, not
the search, sets how small the model is. Under an accuracy floor
(``--max_drop``) the score is the cost, measured exactly, and the trial of
highest score is chosen; so it is when the number of validation images is
not known (a streamed split).
"""

import dataclasses
import math
from collections.abc import Sequence

from tuning.objective import Goal
from tuning.report import TrialRecord


def standard_error(accuracy: float, examples: int) -> float:
    """Returns the standard error of an accuracy measured on `examples` images."""
    return math.sqrt(accuracy * (1 - accuracy) / examples)


@dataclasses.dataclass(frozen=True)
class Choice:
    """The trial a search retrains, and why.

    Attributes:
        chosen: The trial retrained.
        best: The trial of highest score.
        margin: The accuracy (fraction) below the best's within which trials
            were taken as equal; 0 when there was no tie-break.
    """

    chosen: TrialRecord
    best: TrialRecord
    margin: float

    def reason(self) -> str:
        """Returns why `chosen` was taken, e.g. "trial 3: the highest score"."""
        if self.chosen.trial_id == self.best.trial_id:
            return f"trial {self.best.trial_id}: the highest score"
        return (
            f"trial {self.chosen.trial_id}: within one standard error "
            f"({100 * self.margin:.2f} pt) of the best validation accuracy "
            f"(trial {self.best.trial_id}, {100 * self.best.val_accuracy:.2f} %), "
            "the one nearest the budget"
        )


def choose(
    records: Sequence[TrialRecord], goal: Goal, validation_examples: int | None
) -> Choice | None:
    """Returns the trial to retrain (module docstring); None if none completed.

    Args:
        records: Every trial of the search.
        goal: The search's goal.
        validation_examples: The number of validation images each accuracy
            was measured on; None when unknown.
    """
    done = [record for record in records if record.status == "completed"]
    if not done:
        return None
    best = max(done, key=lambda record: record.score)
    if goal.budget is None or not best.feasible or not validation_examples:
        return Choice(chosen=best, best=best, margin=0.0)
    margin = standard_error(best.val_accuracy, validation_examples)
    equal = [
        record
        for record in done
        if record.feasible and record.val_accuracy >= best.val_accuracy - margin
    ]
    chosen = max(
        equal,
        key=lambda record: (getattr(record, goal.cost_key), record.val_accuracy),
    )
    return Choice(chosen=chosen, best=best, margin=margin)
