"""keras-tuner's own chief/worker mode: a chief and two workers on 127.0.0.1."""

import json
import os
import signal
import socket
import subprocess
import time

import keras
import pytest
from trainer_runs import ENV, REPO, command

pytestmark = [pytest.mark.slow, pytest.mark.multi_worker]

TRIALS = 6


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(role: str, port: int, flags: list[str], log) -> subprocess.Popen:
    env = {
        **ENV,
        "KERASTUNER_TUNER_ID": role,
        "KERASTUNER_ORACLE_IP": "127.0.0.1",
        "KERASTUNER_ORACLE_PORT": str(port),
    }
    return subprocess.Popen(
        command("tuning.search", *flags),
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(condition, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.05)


def _ongoing(workdir) -> dict:
    try:
        state = json.loads((workdir / "tuner" / "oracle.json").read_text())
    except (OSError, ValueError):
        return {}
    return state.get("ongoing_trials", {})


def test_a_chief_and_two_workers_split_the_trials_and_survive_a_killed_worker(
    tiny_idx, tmp_path
):
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(24, activation="relu"),
            keras.layers.Dense(10),
        ]
    )
    model.save(tmp_path / "tiny.keras")
    workdir = tmp_path / "w"
    flags = [
        f"--workdir={workdir}",
        f"--data={tiny_idx}",
        f"--model_path={tmp_path / 'tiny.keras'}",
        "--method=prox",
        f"--max_trials={TRIALS}",
        "--epochs=3",
        "--final_epochs=0",
        "--batch_size=32",
        "--workers=2",
        "--verbose=0",
    ]
    port = _free_port()
    logs = {
        name: (tmp_path / f"{name}.log").open("w")
        for name in ("chief", "worker0", "worker1", "worker1_again")
    }
    chief = _start("chief", port, flags, logs["chief"])
    worker0 = _start("worker0", port, flags, logs["worker0"])
    # The second worker starts well after the first: the split must hold anyway.
    # The first, ready (registered), waits for it and runs no trial meanwhile.
    _wait(lambda: (workdir / "workers" / "worker0").exists(), "worker0 to be ready")
    time.sleep(12)
    assert not _ongoing(workdir) and not (workdir / "trials").exists()
    worker1 = _start("worker1", port, flags, logs["worker1"])
    try:
        # Kill worker1 in the middle of its first trial, then start it again.
        _wait(lambda: "worker1" in _ongoing(workdir), "worker1's first trial")
        trial_id = _ongoing(workdir)["worker1"]
        checkpoint = workdir / "trials" / trial_id / "checkpoints" / "epoch-000001"
        _wait(lambda: (checkpoint / "state.json").exists(), "its first checkpoint")
        worker1.send_signal(signal.SIGKILL)
        worker1.wait()
        assert not (workdir / "trials" / trial_id / "record.json").exists()
        worker1 = _start("worker1", port, flags, logs["worker1_again"])
        for process in (worker0, worker1, chief):
            process.wait(timeout=600)
    finally:
        for process in (chief, worker0, worker1):
            if process.poll() is None:
                process.kill()
        for log in logs.values():
            log.close()
    text = {name: (tmp_path / f"{name}.log").read_text() for name in logs}
    for name in ("chief", "worker0", "worker1_again"):
        assert {"chief": chief, "worker0": worker0, "worker1_again": worker1}[
            name
        ].returncode == 0, text[name][-3000:]
    records = [
        json.loads(path.read_text())
        for path in (workdir / "trials").glob("*/record.json")
    ]
    assert sorted(r["trial_id"] for r in records) == [str(i) for i in range(TRIALS)]
    by_worker = {r["worker"] for r in records}
    assert by_worker == {"worker0", "worker1"}, records
    # None is run twice: every trial line appears once over all the workers' logs.
    lines = [
        line.split()[1]
        for name in ("worker0", "worker1", "worker1_again")
        for line in text[name].splitlines()
        if line.startswith("trial ")
    ]
    assert sorted(lines) == sorted(str(i) for i in range(TRIALS)), lines
    # The killed trial resumed from its checkpoint under the same id.
    assert next(r for r in records if r["trial_id"] == trial_id)["worker"] == "worker1"
    # The chief's report holds every trial.
    results = json.loads((workdir / "results.json").read_text())
    assert results["trials"] == TRIALS
    with (workdir / "trials.csv").open() as file:
        assert len(file.read().splitlines()) == TRIALS + 1
    assert os.path.getsize(workdir / "pareto.png") > 0
