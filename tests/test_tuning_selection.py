"""The trial a search retrains: ties within validation noise go to the budget."""

import pytest

from tuning.config import SearchConfig
from tuning.report import TrialRecord
from tuning.selection import choose, standard_error

BUDGET = SearchConfig(budget="flops:0.25").goal()


def _record(trial_id, accuracy, flops, feasible=True, status="completed"):
    done = status == "completed"
    return TrialRecord(
        trial_id=trial_id,
        method="lc",
        values={},
        status=status,
        val_accuracy=accuracy,
        params=flops // 2 if done else None,
        flops_mac1=flops,
        feasible=feasible,
        score=None if not done else accuracy if feasible else -flops / 500,
        wall_time_s=1.0,
    )


# The MLP search's feasible LC trials (docs/design/tuning.md): FLOPs as a
# fraction of 1,000 and the validation accuracy on 6,000 images.
MLP_TRIALS = [
    _record("01", 0.8910, 132),
    _record("02", 0.8928, 211),
    _record("03", 0.8888, 126),
    _record("04", 0.8948, 114),
    _record("05", 0.8950, 151),
    _record("06", 0.9100, 600, feasible=False),
]


def test_standard_error_of_an_accuracy():
    assert standard_error(0.89, 6000) == pytest.approx(0.00404, abs=1e-5)


def test_under_a_budget_the_trial_nearest_it_among_equals_is_chosen():
    choice = choose(MLP_TRIALS, BUDGET, 6000)
    assert choice.best.trial_id == "05"
    # 89.28 % is 0.22 pt below 89.50 %, within 0.40 pt; 21.1 % is the most.
    assert choice.chosen.trial_id == "02"
    assert "within one standard error (0.40 pt)" in choice.reason()
    assert choice.reason().startswith("trial 02:")


def test_a_trial_outside_the_noise_is_not_taken_for_its_cost():
    # With 60,000 images the error is 0.13 pt: only 04 (0.02 pt) is equal.
    choice = choose(MLP_TRIALS, BUDGET, 60000)
    assert choice.chosen.trial_id == "05"
    assert choice.reason() == "trial 05: the highest score"
    ties = [_record("a", 0.8950, 100), _record("b", 0.8950, 300), MLP_TRIALS[3]]
    assert choose(ties, BUDGET, 60000).chosen.trial_id == "b"


def test_infeasible_trials_are_never_chosen_for_their_cost():
    infeasible = [_record("x", 0.895, 900, feasible=False), _record("y", 0.89, 200)]
    assert choose(infeasible, BUDGET, 6000).chosen.trial_id == "y"


def test_without_a_budget_or_a_known_split_size_the_highest_score_is_chosen():
    floor = SearchConfig(max_drop=0.5).goal()
    trials = [
        TrialRecord(**{**vars(MLP_TRIALS[0]), "score": -0.132}),
        TrialRecord(**{**vars(MLP_TRIALS[1]), "score": -0.211}),
    ]
    assert choose(trials, floor, 6000).chosen.trial_id == "01"
    assert choose(MLP_TRIALS, BUDGET, None).chosen.trial_id == "05"
    nothing_feasible = [_record("z", 0.9, 800, feasible=False)]
    assert choose(nothing_feasible, BUDGET, 6000).chosen.trial_id == "z"
    failed = _record("f", None, None, feasible=False, status="failed")
    assert choose([failed], BUDGET, 6000) is None
