"""Two processes under MultiWorkerMirroredStrategy train exactly like one.

Two workers on 127.0.0.1 (TF_CONFIG, free ports) each run
tests/multi_worker_job.py: `train_and_evaluate` (baseline), then `train_dlra`,
on a tiny IDX dataset, into one shared work directory. Meanwhile this process
trains the same configs with the default strategy. A watchdog kills both
workers as soon as one fails or the deadline passes; the failure shows the
tail of both logs.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import multi_worker_job as job
import numpy as np
import pytest
from synthetic import make_idx_folder

# Every test reads the module fixture that runs two worker processes.
pytestmark = [pytest.mark.multi_worker, pytest.mark.slow]

DEADLINE_S = 300
LOG_TAIL_LINES = 40
TRAIN_EXAMPLES, TEST_EXAMPLES = 128, 16


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _start_worker(index, cluster, data, root, report, log) -> subprocess.Popen:
    tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
    env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "CUDA_VISIBLE_DEVICES": ""}
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, job.__file__, str(data), str(root), str(report)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, killed as one
        )


def _kill(workers) -> None:
    for worker in workers:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def _watch(workers, deadline: float, outcome: list) -> None:
    """Kills every worker once one fails or the deadline passes.

    Runs in a thread while this process trains the reference, so that a
    failed worker does not leave the other one waiting in a collective.
    """
    while True:
        codes = [worker.poll() for worker in workers]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            outcome.append(f"worker {failed[0]} failed")
        elif time.monotonic() > deadline:
            outcome.append(f"workers still running after {DEADLINE_S} s")
        elif None not in codes:
            return
        if outcome:
            _kill(workers)
            return
        time.sleep(0.2)


def _failure(why: str, workers, logs) -> str:
    lines = [why]
    for index, (worker, log) in enumerate(zip(workers, logs, strict=True)):
        tail = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        lines += [f"--- worker {index} (exit {worker.returncode}), {log}:", *tail]
    return "\n".join(lines)


def _load_report(path: pathlib.Path) -> dict:
    report = json.loads(path.read_text())
    report["weights"] = {}
    for run in job.RUNS:
        with np.load(f"{path}.{run}.npz") as archive:
            report["weights"][run] = [archive[f"arr_{i}"] for i in range(len(archive))]
    return report


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """The two workers' reports and the single-process reference."""
    tmp = tmp_path_factory.mktemp("multi_worker")
    # 128 train examples (4 steps an epoch) and 16 test examples (one batch;
    # the probe of multi_worker_job.py has the partial and uneven ones).
    # Short on purpose: Adam turns float-level differences of near-zero
    # gradients into steps of up to the learning rate; one device and two
    # replicas, within 1e-6 of each other for 8 steps here, can part by
    # 1e-3 a step later.
    data = make_idx_folder(tmp / "data", train=TRAIN_EXAMPLES, test=TEST_EXAMPLES)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(2)]}
    reports = [tmp / f"worker{i}.json" for i in range(2)]
    logs = [tmp / f"worker{i}.log" for i in range(2)]
    workers, outcome = [], []
    try:
        for index in range(2):
            workers.append(
                _start_worker(
                    index, cluster, data, tmp / "cluster", reports[index], logs[index]
                )
            )
        watchdog = threading.Thread(
            target=_watch,
            args=(workers, time.monotonic() + DEADLINE_S, outcome),
            daemon=True,
        )
        watchdog.start()
        results, weights = job.train_both(str(data), tmp / "single", "default")
        watchdog.join()
    finally:
        _kill(workers)
    if outcome:
        pytest.fail(_failure(outcome[0], workers, logs), pytrace=False)
    return {
        "workers": [_load_report(report) for report in reports],
        "reference": {"results": results, "weights": weights},
        "root": tmp / "cluster",
    }


def _evaluations(results: dict) -> list[tuple[float, float]]:
    """(loss, accuracy) of training each epoch, of test, of the probe."""
    history = [(h["loss"], h["accuracy"]) for h in results["history"]]
    test = results["test_loss"], results["test_accuracy"]
    return [*history, test, (results["probe"]["loss"], results["probe"]["accuracy"])]


def _files_left_by(changes: list) -> set[str]:
    """Replays recorded changes; returns the files they leave in the folder."""
    files: set[str] = set()

    def under(folder: str) -> set[str]:
        return {f for f in files if f == folder or f.startswith(folder + "/")}

    for event, *paths in changes:
        if event == "os.rename":
            source, target = paths
            moved = under(source) if source is not None else {""}
            files -= moved
            if target is not None:
                files |= {target + f[len(source or "") :] for f in moved}
        elif event in ("os.remove", "os.rmdir", "shutil.rmtree"):
            files -= under(paths[0])
        elif event in ("open", "os.link", "os.symlink", "shutil.copyfile"):
            files.add(paths[-1])
    return files


def _dims_per_epoch(results: dict) -> list[dict[str, float]]:
    return [
        {key: value for key, value in h.items() if key.startswith("dims/")}
        for h in results["history"]
    ]


@pytest.mark.parametrize("run", job.RUNS)
def test_two_workers_end_with_the_weights_of_one_process(runs, run):
    chief, other = (worker["weights"][run] for worker in runs["workers"])
    single = runs["reference"]["weights"][run]
    assert [w.shape for w in chief] == [w.shape for w in single]
    for a, b, c in zip(chief, other, single, strict=True):
        np.testing.assert_array_equal(a, b)  # mirrored: bit-identical
        np.testing.assert_allclose(a, c, rtol=0, atol=1e-5)


@pytest.mark.parametrize("run", job.RUNS)
def test_the_workers_see_every_example_once_between_them(runs, run):
    epochs = job.configs("", "default")[0].epochs
    single = runs["reference"]["results"][run]["examples"]
    assert single == epochs * TRAIN_EXAMPLES + TEST_EXAMPLES + job.PROBE_SIZE
    assert sum(w["results"][run]["examples"] for w in runs["workers"]) == single


@pytest.mark.parametrize("run", job.RUNS)
def test_both_workers_report_the_metrics_of_one_process(runs, run):
    # Losses and correct predictions are summed over the cluster and divided
    # by the number of examples summed over the cluster.
    single = runs["reference"]["results"][run]
    assert 0 < single["probe"]["accuracy"] < 1  # right and wrong examples
    for worker in runs["workers"]:
        results = worker["results"][run]
        assert results["replicas"] == 2
        np.testing.assert_allclose(
            _evaluations(results), _evaluations(single), rtol=1e-5
        )
        assert results["probe"]["accuracy"] == single["probe"]["accuracy"]


def test_dlra_workers_make_the_fusions_of_one_process(runs):
    single = runs["reference"]["results"]["dlra"]
    compression = single["dlra"]["compression_per_epoch"]
    assert 0 < compression[0] < compression[1]  # fusions in both epochs
    assert all(_dims_per_epoch(single))
    for worker in runs["workers"]:
        results = worker["results"]["dlra"]
        assert results["dlra"]["compression_per_epoch"] == compression
        assert results["dlra"]["layers"] == single["dlra"]["layers"]
        assert _dims_per_epoch(results) == _dims_per_epoch(single)


def test_only_the_chief_writes_to_the_work_directory(runs):
    chief, other = runs["workers"]
    assert other["changes"] == []
    root = runs["root"]
    files = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    # TensorBoard event files are written by TensorFlow's C++ code, which the
    # audit hook does not see; their names carry the writer's process id.
    events = {f for f in files if "/tensorboard/" in f}
    assert events
    assert all(f".{chief['pid']}." in pathlib.Path(f).name for f in events)
    # Every other file is one the chief wrote (and maybe renamed) there.
    assert files - events == _files_left_by(chief["changes"])
    for run, names in {
        "baseline": ["config.json", "model.keras", "results.json"],
        "dlra": ["model_compact.keras", "curves.png", "layer_dims.png"],
    }.items():
        assert {f"{run}/{name}" for name in names} <= files
        assert f"{run}/checkpoints/epoch-000002/state.json" in files
