"""`python -m tuning.search` as a user runs it: bad input, kill -9 and resume."""

import json
import signal
import subprocess
import time

import keras
import pytest
from trainer_runs import ENV, REPO, command, error_lines, run

pytestmark = pytest.mark.slow


def _tiny_model(path):
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(24, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.save(path)
    return path


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--budget=flops"], ["--budget=KIND:VALUE", "flops, params, int8_kb"]),
        (["--budget=speed:0.5"], ["--budget", "speed:0.5"]),
        (["--method=svd"], ["method", "svd", "dlra, lc, prox, all"]),
        (["--max_trials=0"], ["max_trials", ">= 1", "0"]),
        (["--tuner=grid"], ["tuner", "grid", "random, bayesian, hyperband"]),
        (["--budget=flops:0.25", "--max_drop=0.5"], ["--budget", "--max_drop"]),
        (["--validation_fraction=0"], ["--validation_fraction > 0"]),
    ],
)
def test_bad_search_input_is_one_line_exit_2_and_nothing_written(
    flags, expected, tiny_idx, tmp_path
):
    workdir = tmp_path / "w"
    result = run("tuning.search", f"--workdir={workdir}", f"--data={tiny_idx}", *flags)
    assert result.returncode == 2, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0], errors[0]
    assert not workdir.exists()


def _trial_lines(stdout: str) -> list[str]:
    return [
        line.split()[1] for line in stdout.splitlines() if line.startswith("trial ")
    ]


@pytest.mark.parametrize("killed_in", ["0", "1"])
def test_a_killed_search_resumes_without_redoing_finished_trials(
    killed_in, tiny_idx, tmp_path
):
    """Killed in its first trial (before keras-tuner saved any state) or later."""
    workdir = tmp_path / "w"
    flags = [
        f"--workdir={workdir}",
        f"--data={tiny_idx}",
        f"--model_path={_tiny_model(tmp_path / 'tiny.keras')}",
        "--method=prox",
        "--max_trials=3",
        "--epochs=3",
        "--final_epochs=0",
        "--batch_size=32",
    ]
    process = subprocess.Popen(
        command("tuning.search", *flags),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # Mid-way through the trial: the ones before it are finished, it has a
    # checkpoint.
    trial = workdir / "trials" / killed_in
    marker = trial / "checkpoints" / "epoch-000001" / "state.json"
    deadline = time.monotonic() + 300
    try:
        while not marker.exists():
            assert process.poll() is None, "the search ended before the kill"
            assert time.monotonic() < deadline, f"no {marker}"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    finished = sorted((workdir / "trials").glob("*/record.json"))
    assert [path.parent.name for path in finished] == [
        str(k) for k in range(int(killed_in))
    ]
    before = [path.stat().st_mtime_ns for path in finished]
    killed_settings = (trial / "config.json").read_text()
    # As if the killed attempt had trained 1000 s: the trial's time counts it.
    for state in trial.rglob("state.json"):
        saved = json.loads(state.read_text())
        saved["wall_time_s"] += 1000.0
        state.write_text(json.dumps(saved))

    result = subprocess.run(
        command("tuning.search", *flags),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _trial_lines(result.stdout) == [
        str(k) for k in range(int(killed_in), 3)
    ], result.stdout
    assert [path.stat().st_mtime_ns for path in finished] == before
    # The killed trial went on from its checkpoint, with its own settings.
    assert "Resuming from" in result.stdout
    assert (trial / "config.json").read_text() == killed_settings
    assert json.loads((trial / "record.json").read_text())["wall_time_s"] > 1000
    results = json.loads((workdir / "results.json").read_text())
    assert results["trials"] == 3 and results["completed"] == 3
