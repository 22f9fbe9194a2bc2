"""The search's one number: budgets, accuracy floors, penalties, the front."""

import numpy as np
import pytest

from keras_rank.core.errors import ConfigError
from tuning.objective import INFEASIBLE_FLOOR, Budget, Goal, parse_budget
from tuning.pareto import pareto_front

REFERENCE = {"val_accuracy": 0.89, "params": 1_000_000, "flops_mac1": 2_000_000}


@pytest.mark.parametrize(
    ("text", "budget"),
    [
        ("flops:0.25", Budget("flops", 0.25, relative=True)),
        ("params:0.25", Budget("params", 0.25, relative=True)),
        ("params:300000", Budget("params", 300_000, relative=False)),
        ("int8_kb:400", Budget("int8_kb", 400, relative=False)),
        ("int8_kb:0.5", Budget("int8_kb", 0.5, relative=False)),
        ("latency:0.5", Budget("latency", 0.5, relative=True)),
        ("latency:800", Budget("latency", 800, relative=False)),
    ],
)
def test_budgets_parse(text, budget):
    assert parse_budget(text) == budget


@pytest.mark.parametrize(
    "text", ["flops", "flops:", "size:0.5", "flops:-1", "flops:0", "params:abc", ""]
)
def test_a_bad_budget_is_one_clear_error(text):
    with pytest.raises(ConfigError, match=r"--budget=KIND:VALUE.*flops, params"):
        parse_budget(text)


def test_budget_limits_are_fractions_or_counts():
    assert parse_budget("flops:0.25").limit(REFERENCE) == 500_000
    assert parse_budget("params:300000").limit(REFERENCE) == 300_000
    assert parse_budget("latency:0.5").limit({"latency_us": 900.0}) == 450.0
    assert Goal(budget=parse_budget("latency:0.5")).cost_key == "latency_us"


def test_a_budget_goal_scores_accuracy_and_ranks_every_infeasible_trial_last():
    goal = Goal(budget=parse_budget("flops:0.25"))
    feasible = goal.score({"val_accuracy": 0.05, "flops_mac1": 500_000}, REFERENCE)
    assert feasible == (0.05, True)
    near = goal.score({"val_accuracy": 0.95, "flops_mac1": 600_000}, REFERENCE)
    far = goal.score({"val_accuracy": 0.99, "flops_mac1": 2_000_000}, REFERENCE)
    assert near == (pytest.approx(-1.2), False) and far == (-4.0, False)
    assert feasible[0] > near[0] > far[0]


def test_a_max_drop_goal_minimises_cost_above_the_floor():
    goal = Goal(max_drop=0.5, minimize="params")
    cheap = goal.score({"val_accuracy": 0.886, "params": 250_000}, REFERENCE)
    dear = goal.score({"val_accuracy": 0.90, "params": 500_000}, REFERENCE)
    short = goal.score({"val_accuracy": 0.880, "params": 10_000}, REFERENCE)
    assert cheap == (-0.25, True) and dear == (-0.5, True)
    assert short[1] is False
    assert short[0] == pytest.approx(INFEASIBLE_FLOOR - 0.5)
    assert cheap[0] > dear[0] > short[0]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "exactly one of --budget and --max_drop"),
        (
            {"budget": Budget("flops", 0.5, True), "max_drop": 0.5},
            "exactly one of",
        ),
        ({"max_drop": -1.0}, "--max_drop >= 0"),
        ({"max_drop": 1.0, "minimize": "latency"}, "Unknown minimize 'latency'"),
    ],
)
def test_a_bad_goal_is_one_clear_error(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        Goal(**kwargs)


def _dominated(i, accuracies, costs):
    return any(
        accuracies[j] >= accuracies[i]
        and costs[j] <= costs[i]
        and (accuracies[j] > accuracies[i] or costs[j] < costs[i])
        for j in range(len(costs))
    )


def test_pareto_front_is_exactly_the_undominated_trials():
    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 12))
        accuracies = rng.integers(0, 5, n).tolist()
        costs = rng.integers(0, 5, n).tolist()
        front = pareto_front(accuracies, costs)
        undominated = [i for i in range(n) if not _dominated(i, accuracies, costs)]
        # Equal points: the first is kept, its twins are left out.
        points = list(zip(accuracies, costs, strict=True))
        firsts = [i for i in undominated if points[i] not in points[:i]]
        assert sorted(front) == firsts
        assert [costs[i] for i in front] == sorted(costs[i] for i in front)


def test_pareto_front_small_cases():
    assert pareto_front([], []) == []
    assert pareto_front([0.9, 0.8, 0.95], [3, 1, 5]) == [1, 0, 2]
    assert pareto_front([0.9, 0.9], [2, 2]) == [0]
    assert pareto_front([0.9, 0.95], [2, 1]) == [1]
    with pytest.raises(ValueError, match="as many costs"):
        pareto_front([0.9], [])
    assert pareto_front([0.5], [1]) == [0]


def test_the_target_fraction_is_the_budget_over_the_reference_capped_at_one():
    assert Goal(budget=parse_budget("flops:0.25")).target_fraction(REFERENCE) == 0.25
    assert Goal(budget=parse_budget("params:300000")).target_fraction(REFERENCE) == 0.3
    assert Goal(budget=parse_budget("params:3000000")).target_fraction(REFERENCE) == 1.0
    assert Goal(max_drop=0.5).target_fraction(REFERENCE) is None
