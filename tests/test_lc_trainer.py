"""`python -m trainers.lc` end to end: real entry point, real flags, subprocesses."""

import json

import keras
import numpy as np
import pytest
from synthetic import make_idx_folder
from trainer_runs import (
    assert_same_weights,
    error_lines,
    final_weights,
    kill_after_checkpoint,
)
from trainer_runs import run as run_trainer

from keras_rank.core import costs

# Every test runs the LC trainer end to end, most as a subprocess.
pytestmark = pytest.mark.slow


def _run(*flags):
    return run_trainer("lc", *flags)


TINY = [
    "--model=lenet300_tanh",
    "--epochs=1",
    "--batch_size=32",
    "--lc_steps=2",
    "--mu0=1e-3",
    "--finetune_epochs=1",
    "--verbose=0",
]


def test_lc_trainer_writes_results_models_and_plots(tiny_idx, tmp_path):
    result = _run(
        f"--workdir={tmp_path}",
        f"--data={tiny_idx}",
        *TINY,
        "--lambda=1e-5,1e-4",
        "--finetune_learning_rate=0.002",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "results.json").read_text())
    reference = summary["reference"]
    assert reference["flops"] == 784 * 300 + 300 * 100 + 100 * 10
    assert [run["lambda"] for run in summary["runs"]] == [1e-5, 1e-4]
    assert len(summary["summary"]) == 2
    for run, block in zip(summary["runs"], summary["summary"], strict=True):
        folder = tmp_path / f"lambda_{run['lambda']:g}"
        assert json.loads((folder / "results.json").read_text()) == {
            "summary": block,
            **run,
        }
        # The summary: a fraction, the plain exported model's size.
        assert block["method"] == "lc"
        assert block["test_accuracy"] == pytest.approx(1 - run["test_error"] / 100)
        assert block["deployable"]["params"] == run["params"]
        assert block["settings"]["method"]["lc"]["lambda"] == run["lambda"]
        assert run["rho_flops"] == pytest.approx(reference["flops"] / run["flops"])
        assert run["lc_steps"] == 2
        finetune = json.loads((folder / "finetune" / "config.json").read_text())
        assert finetune["learning_rate"] == 0.002
        assert all(len(ranks) == 3 for ranks in run["rank_history"].values())
        plain = keras.saving.load_model(folder / "model_plain.keras")
        assert {type(layer).__name__ for layer in plain.layers} <= {
            "InputLayer",
            "Flatten",
            "Dense",
        }
        assert costs.model_cost(plain).flops_mac1 == run["flops"]
        # LC's own count is the plain exported model's; the fine-tuning phase
        # (a low-rank net) reports the same as its deployable size.
        assert costs.model_cost(plain).params == run["params"]
        tuned = json.loads((folder / "finetune" / "results.json").read_text())
        assert tuned["params"] == tuned["deployable"]["params"] == run["params"]
        for name in ("baseline1", "baseline2"):
            # The baselines are matched to LC's cost: never above it.
            assert run["baselines"][name]["flops"] <= run["flops"]
        assert (folder / "ranks.png").stat().st_size > 0
        for phase, rate in (("lc", 0.001), ("finetune", 0.002), ("baseline1", 0.002)):
            config = json.loads((folder / phase / "config.json").read_text())
            assert config["learning_rate"] == rate
    assert (tmp_path / "error_vs_rho.png").stat().st_size > 0


def test_lc_trainer_resumes_after_kills_in_lc_and_finetune(tmp_path):
    data = make_idx_folder(tmp_path / "data", train=400, test=100)
    flags = [
        f"--data={data}",
        *TINY[:-2],
        "--finetune_epochs=2",
        "--lambda=1e-4",
        "--nobaselines",
        "--seed=3",
        "--verbose=0",
    ]
    straight = _run(f"--workdir={tmp_path / 'straight'}", *flags)
    assert straight.returncode == 0, straight.stderr

    workdir = tmp_path / "killed"
    kill_after_checkpoint("lc", workdir, 1, *flags, phase="lambda_0.0001/lc")
    kill_after_checkpoint("lc", workdir, 1, *flags, phase="lambda_0.0001/finetune")
    resumed = _run(f"--workdir={workdir}", *flags)
    assert resumed.returncode == 0, resumed.stderr
    for name in ("model_lowrank.keras", "model_plain.keras"):
        assert_same_weights(
            final_weights(tmp_path / "straight" / "lambda_0.0001", name),
            final_weights(workdir / "lambda_0.0001", name),
        )
    steps = json.loads((workdir / "lambda_0.0001" / "lc" / "results.json").read_text())[
        "lc"
    ]["steps"]
    assert [step["step"] for step in steps] == [0, 1, 2]
    # By default fine-tuning runs at a tenth of the L steps' rate.
    finetune = json.loads(
        (workdir / "lambda_0.0001" / "finetune" / "config.json").read_text()
    )
    assert finetune["learning_rate"] == pytest.approx(1e-4)


def _mismatched_reference(path):
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    model.save(path)
    return path


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--lambda=-1"], ["lambda", ">= 0", "-1"]),
        (["--lambda=abc"], ["--lambda", "numbers", "abc"]),
        (["--mu0=0"], ["mu0 > 0", "mu0=0"]),
        (["--mu_growth=1"], ["mu_growth > 1", "mu_growth=1"]),
        (["--conv_scheme=3"], ["conv_scheme", "3", "1, 2"]),
        (["--finetune_learning_rate=0"], ["finetune_learning_rate > 0"]),
        (["--reference=missing.keras"], ["reference='missing.keras'", "no such"]),
        (["--reference=MISMATCH"], ["reference=", "does not fit the data"]),
    ],
)
def test_bad_lc_flag_exits_non_zero_with_one_clear_line(
    flags, expected, tiny_idx, tmp_path
):
    if flags == ["--reference=MISMATCH"]:
        flags = [f"--reference={_mismatched_reference(tmp_path / 'ref.keras')}"]
    result = _run(f"--workdir={tmp_path / 'w'}", f"--data={tiny_idx}", *flags)
    assert result.returncode == 2, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0]
    assert not (tmp_path / "w" / "reference").exists()


def test_given_reference_is_not_trained_again(tiny_idx, tmp_path):
    reference = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="tanh", name="hidden"),
            keras.layers.Dense(10, name="out"),
        ]
    )
    reference.save(tmp_path / "ref.keras")
    result = _run(
        f"--workdir={tmp_path / 'w'}",
        f"--data={tiny_idx}",
        f"--reference={tmp_path / 'ref.keras'}",
        *TINY[1:],  # the reference is the net; no --model
        "--lambda=1e-3",
        "--nobaselines",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "w" / "results.json").read_text())
    assert summary["reference"]["source"] == f"file:{tmp_path / 'ref.keras'}"
    assert not (tmp_path / "w" / "reference").exists()
    assert set(summary["runs"][0]["ranks"]) == {"hidden", "out"}
    np.testing.assert_array_equal(
        keras.saving.load_model(tmp_path / "ref.keras").get_weights()[0],
        reference.get_weights()[0],
    )
    # A finished phase is not reused under other settings.
    again = _run(
        f"--workdir={tmp_path / 'w'}",
        f"--data={tiny_idx}",
        f"--reference={tmp_path / 'ref.keras'}",
        *TINY[1:],  # the reference is the net; no --model
        "--lambda=1e-3",
        "--nobaselines",
        "--lc_steps=3",
    )
    assert again.returncode == 2
    assert "lc_steps=2 there, 3 here" in again.stderr


def test_latency_criterion_times_each_shape_into_the_workdir(tiny_idx, tmp_path):
    result = _run(
        f"--workdir={tmp_path}",
        f"--data={tiny_idx}",
        *TINY,
        "--criterion=latency",
        "--lambda=1e-3",
        "--nobaselines",
    )
    assert result.returncode == 0, result.stderr
    timings = json.loads((tmp_path / "layer_latency.json").read_text())
    shapes = {(key["input_shape"][0], key["units"]) for key in map(json.loads, timings)}
    assert shapes == {(784, 300), (300, 100), (100, 10)}
    assert all(value > 0 for value in timings.values())
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["criterion"] == "latency"
    run = results["runs"][0]
    assert len(run["rank_history"]) == 3
