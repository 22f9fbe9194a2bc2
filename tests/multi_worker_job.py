"""One worker of tests/test_multi_worker.py (or the single-process reference).

    TF_CONFIG='{"cluster": {"worker": [...]}, "task": {...}}' \\
        python tests/multi_worker_job.py DATA ROOT REPORT

Runs the library's entry points under MultiWorkerMirroredStrategy:
`train_and_evaluate` into ROOT/baseline, then `train_dlra` into ROOT/dlra, with
the configs of `configs`. Writes REPORT (JSON, outside ROOT): this process's
pid, both runs' results, and every file system change this process made
under ROOT, recorded by an audit hook (Python-level writes: json, numpy,
`.keras` and PNG files, renames, removals, new folders; TensorFlow's C++
file writes are not seen). Each run's final weights go to `REPORT.<run>.npz`.
"""

import json
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RUNS = ("baseline", "dlra")
PROBE_SIZE, PROBE_BATCH_SIZE = 11, 5
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_PATH_EVENTS = {
    "os.rename": 2,  # also os.replace
    "os.remove": 1,  # also os.unlink
    "os.rmdir": 1,
    "os.truncate": 1,
    "os.link": 2,
    "os.symlink": 2,
    "shutil.rmtree": 1,
    "shutil.copyfile": 2,
}


def configs(data: str, strategy: str):
    """Returns the (TrainConfig, DLRAConfig) of both runs.

    lenet300 (no dropout, so one process and a cluster draw no random masks
    that could differ), 2 epochs in global batches of 32, no validation
    split (each evaluation costs eval-step traces, i.e. test time). The
    DLRA thresholds are loose so that pairs fuse and the model is rebuilt
    after each epoch.
    """
    from keras_rank.dlra import DLRAConfig
    from keras_rank.training import TrainConfig

    train = TrainConfig(
        model="lenet300",
        data=data,
        epochs=2,
        batch_size=32,
        validation_fraction=0.0,
        strategy=strategy,
        verbose=2,
    )
    return train, DLRAConfig(tau_cos=0.8, tau_euc=10.0, search_every=1)


def recording_fit(fit, store: list):
    """Returns `Trainer.fit` that also appends what each run ended with to `store`.

    That is, the final weights and the evaluation of an 11-example probe
    set (the first training images, the first 6 with their labels, the
    others with wrong ones) in batches of 5: two replicas split them 3 / 2,
    3 / 2 and 1 / 0 (a replica without examples).
    """
    import numpy as np

    def wrapped(self, train, **kwargs):
        history = fit(self, train, **kwargs)
        wrong = np.arange(PROBE_SIZE) >= 6
        labels = (train.labels[:PROBE_SIZE] + wrong) % 10
        probe = train.images[:PROBE_SIZE], labels
        store.append(
            {
                "weights": [variable.numpy() for variable in self.model.weights],
                "probe": self.evaluate(probe, batch_size=PROBE_BATCH_SIZE),
            }
        )
        return history

    return wrapped


def _audit_writes(root: pathlib.Path, changes: list) -> None:
    """Appends [event, path, ...] to `changes` for every change under `root`.

    Paths are relative to `root`, None when outside it: a file opened for
    writing ("open"), a new folder ("os.mkdir"), and the events of
    `_PATH_EVENTS` (renames, removals, ...).
    """
    root = os.path.realpath(root)

    def inside(path) -> str | None:
        if path is None or isinstance(path, int):
            return None
        path = os.path.realpath(os.fsdecode(path))
        if os.path.commonpath([path, root]) != root:
            return None
        return os.path.relpath(path, root)

    def hook(event: str, args: tuple) -> None:
        if event == "open":
            paths = args[:1] if args[2] & _WRITE_FLAGS else ()
        elif event == "os.mkdir":
            # Path.mkdir(exist_ok=True) calls os.mkdir on existing folders.
            paths = () if os.path.exists(args[0]) else args[:1]
        else:
            paths = args[: _PATH_EVENTS.get(event, 0)]
        relative = [inside(path) for path in paths]
        if any(path is not None for path in relative):
            changes.append([event, *relative])

    sys.addaudithook(hook)


def counting_batches(distribute, examples: list):
    """Returns `distribute_batches` that also counts what this process sees.

    Appends to `examples`, for every global batch, the number of examples
    the replicas of this process get.
    """

    def wrapped(strategy, dataset):
        for batch in distribute(strategy, dataset):
            labels = strategy.experimental_local_results(batch[1])
            examples.append(sum(int(local.shape[0]) for local in labels))
            yield batch

    return wrapped


def train_both(data: str, root: pathlib.Path, strategy: str) -> tuple[dict, dict]:
    """Trains the baseline, then DLRA, into `root`.

    Returns:
        (results, final weights), each by run name. The results also hold
        the probe evaluation ("probe") and the number of examples this
        process's replicas got in training and evaluation ("examples").
    """
    from keras_rank.dlra import train_dlra
    from keras_rank.training import engine, train_and_evaluate

    ended, examples, results = [], [], {}
    fit, distribute = engine.Trainer.fit, engine.distribute_batches
    engine.Trainer.fit = recording_fit(fit, ended)
    engine.distribute_batches = counting_batches(distribute, examples)
    try:
        config, dlra_config = configs(data, strategy)
        for run, train in (
            ("baseline", lambda: train_and_evaluate(config, root / "baseline")),
            ("dlra", lambda: train_dlra(config, dlra_config, root / "dlra")),
        ):
            results[run] = train()
            results[run]["examples"] = sum(examples)
            examples.clear()
    finally:
        engine.Trainer.fit, engine.distribute_batches = fit, distribute
    weights = {}
    for run, end in zip(RUNS, ended, strict=True):
        results[run]["probe"] = end["probe"]
        weights[run] = end["weights"]
    return results, weights


def main(data: str, root: str, report: str) -> None:
    """Trains both runs as one worker of the cluster; writes the report."""
    changes: list = []
    _audit_writes(pathlib.Path(root), changes)
    # The strategy must exist before any TensorFlow op runs in this process.
    from keras_rank.training.strategy import make_strategy

    make_strategy("multi_worker_mirrored")
    import numpy as np

    results, weights = train_both(data, pathlib.Path(root), "multi_worker_mirrored")
    for run in RUNS:
        np.savez(f"{report}.{run}.npz", *weights[run])
    pathlib.Path(report).write_text(
        json.dumps({"pid": os.getpid(), "results": results, "changes": changes})
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
