"""Running the trainers as a user would: subprocesses, kill -9, final weights."""

import os
import pathlib
import re
import signal
import subprocess
import sys
import time

import keras
import numpy as np

REPO = pathlib.Path(__file__).resolve().parent.parent
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


_NATIVE_LOG = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:|^WARNING: All log messages before absl"
)


def error_lines(stderr: str) -> list[str]:
    """The lines of `stderr` that report an error, TensorFlow's own log aside.

    TensorFlow's C++ start-up lines (``I0000 00:00:...``) can mention errors
    ("round-off errors") whatever TF_CPP_MIN_LOG_LEVEL says.
    """
    return [
        line
        for line in stderr.splitlines()
        if "rror" in line and not _NATIVE_LOG.match(line)
    ]


def command(trainer: str, *flags: str) -> list[str]:
    """The command line of `python -m trainers.<trainer> <flags>`.

    A dotted name is a module of its own (``tuning.search``).
    """
    module = trainer if "." in trainer else f"trainers.{trainer}"
    return [sys.executable, "-m", module, *flags]


def run(trainer: str, *flags: str, timeout: float = 600):
    """Runs a trainer to its end; returns the CompletedProcess (text output)."""
    return subprocess.run(
        command(trainer, *flags),
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_after_checkpoint(
    trainer: str,
    workdir: pathlib.Path,
    epoch: int,
    *flags: str,
    timeout: float = 300,
    phase: str = "",
) -> None:
    """Starts a trainer and SIGKILLs it once the checkpoint of `epoch` is complete.

    `phase` names the sub-folder of `workdir` whose checkpoints are watched,
    for trainers that run several trainings (e.g. "lambda_0.001/lc").
    """
    process = subprocess.Popen(
        command(trainer, f"--workdir={workdir}", *flags),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    marker = workdir / phase / "checkpoints" / f"epoch-{epoch:06d}" / "state.json"
    deadline = time.monotonic() + timeout
    try:
        while not marker.exists():
            assert process.poll() is None, process.stderr.read()
            assert time.monotonic() < deadline, f"no {marker} after {timeout} s"
            time.sleep(0.02)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (workdir / phase / "results.json").exists()


def final_weights(workdir: pathlib.Path, name: str = "model.keras") -> list:
    """The weights of a model a trainer saved in `workdir`."""
    return keras.saving.load_model(workdir / name).get_weights()


def assert_same_weights(a: list, b: list) -> None:
    """Asserts two weight lists are bit-identical."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
