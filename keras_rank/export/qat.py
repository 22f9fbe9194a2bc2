"""Full int8 after quantization-aware training (TFMOT), run in a subprocess.

tensorflow-model-optimization 0.8 quantizes tf_keras (Keras 2) models only,
and importing it sets ``TF_USE_LEGACY_KERAS=1`` in the process environment,
after which ``tf.keras`` means tf_keras for that process and every process it
starts. keras_rank is Keras 3, so the whole job (the tf_keras rebuild, TFMOT,
fine-tuning and conversion: `qat_worker`) runs in a child process; the caller
only saves the model, writes a job file and reads the result, and its
environment is never touched.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from typing import Any

import keras

from keras_rank.core.errors import ExportError
from keras_rank.export.config import ExportConfig

WORKER_MODULE = "keras_rank.export.qat_worker"
"""Run as ``python -m keras_rank.export.qat_worker JOB.json``."""

ERROR_PREFIX = "error: "
"""How the worker's last stderr line starts when it refuses the job."""


def worker_failure(stderr: str, returncode: int) -> ExportError:
    """Returns the one-line error of a failed worker.

    Args:
        stderr: Everything the worker wrote to stderr.
        returncode: Its exit code.

    Returns:
        The worker's own ``error: ...`` line (without the prefix) if it wrote
        one, else the last line of its stderr (a crash's exception).
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return ExportError(line.removeprefix(ERROR_PREFIX))
    last = lines[-1] if lines else "(nothing on stderr)"
    return ExportError(f"The QAT worker failed with exit code {returncode}: {last}")


def check_rebuildable(model: keras.Model, name: str) -> None:
    """Raises `ExportError` unless the QAT worker can rebuild `model` in tf_keras.

    Run before anything is written, so that a model the bridge refuses
    (an activation or operation tf_keras lacks) stops the export at once.

    Args:
        model: A deployable (plain) model.
        name: Its name in the export, for the message.
    """
    from keras_rank.export.tf_keras_bridge import to_tf_keras  # tf_keras only

    try:
        to_tf_keras(model)
    except ExportError as error:
        raise ExportError(
            f"{error} (model {name!r}). qat_int8 needs it rebuilt in tf_keras; "
            "leave qat_int8 out of --formats to export the other formats."
        ) from None


def quantization_aware_int8(
    model: keras.Model,
    path: str | os.PathLike,
    config: ExportConfig,
    *,
    from_logits: bool,
) -> dict[str, Any]:
    """Writes `model` as a full-int8 LiteRT file after quantization-aware training.

    In a child process (`qat_worker`): rebuilds `model` in tf_keras and checks
    it computes the same outputs on the representative examples (within
    `qat_worker.BRIDGE_TOLERANCE`), wraps it with TFMOT's `quantize_model`,
    fine-tunes it `config.qat_epochs` epochs on the training split (Adam,
    sparse categorical cross-entropy), keeps the epoch of highest accuracy
    on the validation split (the last epoch without one) and converts it to
    int8 builtins with
    float input and output, calibrated on `config.representative_examples`
    training examples. `model` itself is not changed.

    Args:
        model: A plain Keras 3 model (`keras_rank.layers.deployable.deployable_model`)
            of the layers in `tf_keras_bridge.SUPPORTED_LAYERS`.
        path: The `.tflite` file to write; its folder must exist.
        config: Data, seeds and QAT settings; with ``verbose=1`` the worker's
            progress lines are shown.
        from_logits: Whether `model` outputs logits (else probabilities).

    Returns:
        The worker's result: ``path``, ``bytes``, ``bridge_max_abs_diff``,
        ``representative_examples``, ``history`` (per-epoch ``loss``,
        ``accuracy`` and ``val_accuracy`` of the fine-tuning),
        ``kept_epoch``, ``qat_seconds``,
        ``convert_seconds``, and ``worker_seconds`` (the child process's wall
        time, start-up included).

    Raises:
        ExportError: One line: an unsupported layer, a rebuild that computes
            other outputs, a layer TFMOT cannot quantize, an op with no int8
            builtin, or the worker's last stderr line if it crashed.
    """
    path = pathlib.Path(path)
    with tempfile.TemporaryDirectory(prefix="qat-", dir=path.parent) as scratch:
        scratch = pathlib.Path(scratch)
        model_path = scratch / "model.keras"
        model.save(model_path)
        job = {
            "model": str(model_path),
            "output": str(path),
            "result": str(scratch / "result.json"),
            "config": config.to_dict(),
            "from_logits": bool(from_logits),
        }
        job_path = scratch / "job.json"
        job_path.write_text(json.dumps(job, indent=2))
        start = time.perf_counter()
        completed = subprocess.run(
            [sys.executable, "-m", WORKER_MODULE, str(job_path)],
            env=dict(os.environ),
            stdout=None if config.verbose else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        if completed.returncode != 0:
            raise worker_failure(completed.stderr, completed.returncode)
        result = json.loads(pathlib.Path(job["result"]).read_text())
    result["worker_seconds"] = time.perf_counter() - start
    return result
