"""The Pareto report keeps every trial and marks the fronts."""

import csv

from PIL import Image

from tuning.report import TrialRecord, fronts, plot_fronts, write_csv, write_summary

REFERENCE = {"val_accuracy": 0.89, "params": 1000, "flops_mac1": 2000}


def _trial(trial_id, method, accuracy, params, flops, feasible=True, status="done"):
    done = status == "done"
    status = "completed" if done else status
    return TrialRecord(
        trial_id=trial_id,
        method=method,
        values={"lambda": float(trial_id)},
        status=status,
        val_accuracy=accuracy if done else None,
        params=params if done else None,
        flops_mac1=flops if done else None,
        feasible=feasible,
        score=accuracy if feasible and done else None,
        wall_time_s=1.0,
        note="" if done else "NaN loss",
    )


TRIALS = [
    _trial("1", "lc", 0.88, 200, 500),
    _trial("2", "prox", 0.86, 100, 900),
    _trial("3", "dlra", 0.89, 700, 1400),
    _trial("4", "lc", 0.85, 300, 600),  # dominated by 1 on both costs
    _trial("5", "prox", 0.90, 2000, 4000, feasible=False),
    _trial("6", "lc", None, None, None, feasible=False, status="failed"),
]


def test_fronts_hold_the_undominated_completed_trials_of_every_method():
    assert fronts(TRIALS) == {
        "params": ["2", "1", "3", "5"],
        "flops_mac1": ["1", "3", "5"],
    }


def test_csv_has_every_trial_and_marks_the_fronts(tmp_path):
    rows = list(csv.DictReader(write_csv(TRIALS, tmp_path / "trials.csv").open()))
    assert [row["trial_id"] for row in rows] == ["1", "2", "3", "4", "5", "6"]
    assert [row["front_params"] for row in rows] == [
        "True", "True", "True", "False", "True", "False"
    ]  # fmt: skip
    assert rows[5]["status"] == "failed" and rows[5]["note"] == "NaN loss"
    assert rows[0]["values"] == "lambda=1.0"


def test_plot_is_written(tmp_path):
    path = plot_fronts(TRIALS, REFERENCE, tmp_path / "pareto.png")
    with Image.open(path) as image:
        assert image.size[0] > 500 and image.size[1] > 200


def test_summary_names_the_best_feasible_trial_and_the_fronts(tmp_path):
    reason = "trial 3: the highest score"
    text = write_summary(
        TRIALS, REFERENCE, "flops:0.25", TRIALS[2], reason, tmp_path / "s.md"
    ).read_text()
    assert "Trials: 6 (5 completed, 4 feasible, 1 failed)" in text
    assert "Best: trial 3 (dlra, lambda=3.0): 89.00 %, 700 params" in text
    assert "(chosen: trial 3: the highest score)." in text
    assert "| 5 | prox | 90.00 | 2,000 | 4,000 | no |" in text


def test_summary_says_when_no_trial_met_the_goal(tmp_path):
    infeasible = [_trial("1", "lc", 0.5, 10, 10, feasible=False)]
    text = write_summary(
        infeasible, REFERENCE, "params:5", infeasible[0], "", tmp_path / "s.md"
    )
    assert "No trial met the goal." in text.read_text()
