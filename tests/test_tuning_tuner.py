"""The tuner's pieces that need no training: ranks, lines, the search's settings."""

import keras
import numpy as np
import pytest

from keras_rank.core.errors import ConfigError
from keras_rank.layers import LowRankDense
from keras_rank.training.config import TrainConfig
from tuning.config import SearchConfig
from tuning.report import TrialRecord
from tuning.run import make_oracle
from tuning.selection import choose
from tuning.tuner import best_line, layer_ranks, trial_line

REFERENCE = {"val_accuracy": 0.9, "params": 1000, "flops_mac1": 2000}


def _record(trial_id, score, **changes):
    fields = dict(
        trial_id=trial_id,
        method="lc",
        values={"lambda": 3e-6, "lambda_x": 0.5},
        status="completed",
        val_accuracy=0.8,
        params=300,
        flops_mac1=500,
        feasible=True,
        score=score,
        wall_time_s=12.0,
    )
    return TrialRecord(**{**fields, **changes})


def test_layer_ranks_read_dense_matrices_low_rank_pairs_and_zeros():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(5, name="dense")(inputs)
    x = LowRankDense(4, rank=2, name="pair")(x)
    outputs = keras.layers.Dense(3, name="zero")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    model.get_layer("dense").kernel.assign(
        rng.normal(size=(6, 2)) @ rng.normal(size=(2, 5))  # rank 2 of 5
    )
    model.get_layer("zero").kernel.assign(np.zeros((4, 3)))
    ranks = layer_ranks(model)
    assert ranks == {"dense": 2, "pair_u": 2, "pair_v": 2, "zero": 0}


def test_a_trial_line_says_what_was_tried_and_what_it_gave():
    line = trial_line(_record("3", 0.8), REFERENCE)
    for text in (
        "trial 3 lc",
        "lambda=3e-06",
        "lambda_x=0.5",
        "val 80.00 %",
        "params 300",
        "FLOPs 500 (25.0 %)",
        "feasible",
        "12 s",
    ):
        assert text in line
    failed = _record("4", None, status="failed", note="loss became nan")
    assert "FAILED (loss became nan)" in trial_line(failed, REFERENCE)


def test_the_running_best_is_the_trial_chosen():
    goal = SearchConfig().goal()
    records = [
        _record("0", 0.7, val_accuracy=0.7),
        _record("1", 0.85, val_accuracy=0.85),
        _record("2", -1.5, feasible=False),
    ]
    assert "best so far: trial 1" in best_line(choose(records, goal, 6000))
    infeasible = [_record("2", -1.5, feasible=False)]
    assert "none feasible yet" in best_line(choose(infeasible, goal, 6000))
    assert best_line(choose([], goal, 6000)) == "  best so far: none"


def test_search_settings_refuse_two_goals_and_bad_budgets():
    assert str(SearchConfig().goal().budget) == "flops:0.25"
    assert SearchConfig(max_drop=0.5).goal().max_drop == 0.5
    assert SearchConfig(method="lc").methods == ("lc",)
    assert SearchConfig().methods == ("dlra", "lc", "prox")
    with pytest.raises(ConfigError, match="not both"):
        SearchConfig(budget="flops:0.25", max_drop=0.5)
    with pytest.raises(ConfigError, match="--budget=KIND:VALUE"):
        SearchConfig(budget="flops:-1")
    with pytest.raises(ConfigError, match="max_trials"):
        SearchConfig(max_trials=0)


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_every_tuner_proposes_trials_in_the_space_and_stops_at_max_trials(
    tuner, tmp_path
):
    oracle = make_oracle(TrainConfig(epochs=3), SearchConfig(tuner=tuner, max_trials=5))
    oracle._set_project_dir(str(tmp_path), "project")
    for index in range(5):
        trial = oracle.create_trial("tuner0")
        assert trial.status == "RUNNING", (index, trial.status)
        values = trial.hyperparameters.values
        assert values["method"] in ("dlra", "lc", "prox")
        if tuner == "hyperband":
            assert 1 <= values["tuner/epochs"] <= 3
        oracle.update_trial(trial.trial_id, {"score": index / 10})
        trial.status = "COMPLETED"
        oracle.end_trial(trial)
    assert oracle.create_trial("tuner0").status == "STOPPED"


@pytest.mark.parametrize("tuner", ["random", "bayesian", "hyperband"])
def test_equal_seeds_propose_equal_trials_also_at_seed_0(tuner, tmp_path):
    def first_values(seed, project):
        oracle = make_oracle(
            TrainConfig(epochs=3, seed=seed), SearchConfig(tuner=tuner, max_trials=5)
        )
        oracle._set_project_dir(str(tmp_path), project)
        return oracle.create_trial("tuner0").hyperparameters.values

    assert first_values(0, "a") == first_values(0, "b")
    assert first_values(0, "c") != first_values(1, "d")
