"""The child process of `qat.quantization_aware_int8`.

``python -m keras_rank.export.qat_worker JOB.json`` reads a job written by
`qat.quantization_aware_int8` (``model``: a `.keras` file of a plain model;
``output``: the `.tflite` to write; ``result``: the JSON to write;
``config``: `ExportConfig.to_dict()`; ``from_logits``), and writes the file
and the result. A refused job prints one ``error: ...`` line on stderr and
exits with 2.

TensorFlow Model Optimization is imported here only, after the Keras 3 model
has been read and rebuilt: the import sets ``TF_USE_LEGACY_KERAS=1`` for this
process, which is why it is a process of its own.
"""

import json
import pathlib
import sys
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf
import tf_keras

# The converter's error type has no public alias (tf.lite exports none).
from tensorflow.lite.python.convert_phase import ConverterError

from keras_rank.core.errors import ExportError, KerasRankError
from keras_rank.data.splits import DataSplits
from keras_rank.export.config import ExportConfig
from keras_rank.export.litert import converter_options, explain_conversion_error
from keras_rank.export.qat import ERROR_PREFIX, WORKER_MODULE
from keras_rank.export.representative import representative_examples
from keras_rank.export.tf_keras_bridge import max_abs_difference, to_tf_keras
from keras_rank.training.engine import epoch_seed

BRIDGE_TOLERANCE = 1e-5
"""Largest output difference allowed between the model and its tf_keras rebuild."""

FORMAT = "qat_int8"


def _log(config: ExportConfig, message: str) -> None:
    if config.verbose:
        print(f"{FORMAT}: {message}", flush=True)


def _check_rebuild(
    model: keras.Model, rebuilt: tf_keras.Model, examples: np.ndarray
) -> float:
    """Returns the rebuild's output difference; raises ExportError if too large."""
    difference = max_abs_difference(model, rebuilt, examples)
    if not difference <= BRIDGE_TOLERANCE:
        raise ExportError(
            f"Expected the tf_keras rebuild of model {model.name!r} to compute its "
            f"outputs within {BRIDGE_TOLERANCE:g}. Received: max abs difference "
            f"{difference:.3g} on {len(examples)} training examples"
        )
    return difference


def _quantize(rebuilt: tf_keras.Model) -> tf_keras.Model:
    """Returns TFMOT's quantization-aware copy of `rebuilt`."""
    # Imported here only: it switches this process to tf_keras (module doc).
    import tensorflow_model_optimization as tfmot

    try:
        return tfmot.quantization.keras.quantize_model(rebuilt)
    except (RuntimeError, ValueError) as error:
        first = str(error).strip().splitlines()[0]
        raise ExportError(
            f"TensorFlow Model Optimization cannot quantize model "
            f"{rebuilt.name!r} for {FORMAT}: {first}"
        ) from None


def _fine_tune(
    quantized: tf_keras.Model,
    splits: DataSplits,
    config: ExportConfig,
    from_logits: bool,
) -> tuple[dict[str, list[float]], int]:
    """Trains `quantized` `config.qat_epochs` epochs, keeping the best epoch.

    With a validation split, the weights of the epoch of highest validation
    accuracy (the first, on ties) are kept; without one, the last epoch's.

    Returns:
        The per-epoch history (loss, accuracy and, with a validation split,
        val_accuracy) and the kept epoch (1-based).
    """
    quantized.compile(
        optimizer=tf_keras.optimizers.Adam(config.qat_learning_rate),
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        metrics=["accuracy"],
    )
    history = {"loss": [], "accuracy": []}
    validation = splits.validation.batches(256) if splits.validation else None
    if validation is not None:
        history["val_accuracy"] = []
    best_epoch, best_weights = config.qat_epochs, None
    for epoch in range(config.qat_epochs):
        start = time.perf_counter()
        batches = splits.train.batches(
            config.qat_batch_size, shuffle_seed=epoch_seed(config.seed, epoch)
        )
        logs = quantized.fit(batches, epochs=1, verbose=0).history
        history["loss"].append(float(logs["loss"][-1]))
        history["accuracy"].append(float(logs["accuracy"][-1]))
        message = (
            f"epoch {epoch + 1}/{config.qat_epochs}: loss {history['loss'][-1]:.4f}, "
            f"accuracy {history['accuracy'][-1]:.4f}"
        )
        if validation is not None:
            accuracy = float(quantized.evaluate(validation, verbose=0)[1])
            if not history["val_accuracy"] or accuracy > max(history["val_accuracy"]):
                best_epoch, best_weights = epoch + 1, quantized.get_weights()
            history["val_accuracy"].append(accuracy)
            message += f", validation accuracy {accuracy:.4f}"
        _log(config, f"{message} ({time.perf_counter() - start:.1f} s)")
    if best_weights is not None and best_epoch != config.qat_epochs:
        quantized.set_weights(best_weights)
        _log(config, f"kept epoch {best_epoch} (highest validation accuracy)")
    return history, best_epoch


def _convert(
    quantized: tf_keras.Model, model: keras.Model, examples: np.ndarray
) -> bytes:
    """Returns the full-int8 LiteRT flatbuffer of `quantized` (float in and out)."""
    converter = tf.lite.TFLiteConverter.from_keras_model(quantized)
    for key, value in converter_options("int8", examples).items():
        if key == "target_spec":
            for spec_key, spec_value in value.items():
                setattr(converter.target_spec, spec_key, spec_value)
        else:
            setattr(converter, key, value)
    try:
        return converter.convert()
    except (ConverterError, ValueError) as error:
        raise explain_conversion_error(error, model, FORMAT) from error


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Runs one QAT job (see the module docstring).

    Args:
        job: The parsed job file.

    Returns:
        The result that `qat.quantization_aware_int8` returns, less
        ``worker_seconds``.

    Raises:
        KerasRankError: If the model cannot be rebuilt, quantized or converted
            (`ExportError`), or the data cannot be read.
    """
    config = ExportConfig(**job["config"])
    model = keras.saving.load_model(job["model"], compile=False)
    rebuilt = to_tf_keras(model)
    splits = config.load_splits()
    examples = representative_examples(
        splits.train, config.representative_examples, config.seed
    )
    difference = _check_rebuild(model, rebuilt, examples)
    _log(
        config,
        f"tf_keras rebuild of {model.name!r} agrees within {difference:.2g} "
        f"on {len(examples)} training examples",
    )
    tf_keras.utils.set_random_seed(config.seed)
    quantized = _quantize(rebuilt)
    start = time.perf_counter()
    history, kept_epoch = _fine_tune(quantized, splits, config, job["from_logits"])
    qat_seconds = time.perf_counter() - start
    start = time.perf_counter()
    flatbuffer = _convert(quantized, model, examples)
    convert_seconds = time.perf_counter() - start
    output = pathlib.Path(job["output"])
    output.write_bytes(flatbuffer)
    _log(config, f"wrote {output} ({len(flatbuffer):,} bytes)")
    return {
        "path": str(output),
        "bytes": len(flatbuffer),
        "bridge_max_abs_diff": difference,
        "representative_examples": len(examples),
        "history": history,
        "kept_epoch": kept_epoch,
        "qat_seconds": qat_seconds,
        "convert_seconds": convert_seconds,
    }


def main(argv: list[str]) -> int:
    """Runs the job file named by ``argv[1]``; returns the exit code."""
    if len(argv) != 2:
        usage = f"usage: python -m {WORKER_MODULE} JOB.json"
        print(f"{ERROR_PREFIX}{usage}", file=sys.stderr)
        return 2
    job = json.loads(pathlib.Path(argv[1]).read_text())
    try:
        result = run_job(job)
    except KerasRankError as error:
        print(f"{ERROR_PREFIX}{' '.join(str(error).split())}", file=sys.stderr)
        return 2
    pathlib.Path(job["result"]).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
