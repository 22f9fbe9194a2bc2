"""Writing one LiteRT (TFLite) file of a plain Keras model with Keras' own exporter.

`model.export(path, format="litert", **options)` converts through a SavedModel
and passes the options to `tf.lite.TFLiteConverter`. Its default op sets
include SELECT_TF_OPS, so a file could silently need the Flex delegate that
phone runtimes lack; here every format asks for LiteRT builtin ops only (full
int8: int8 builtins only), and a model that needs anything else fails with
one line naming the op and the layer it comes from.
"""

import os
import pathlib
import re

import keras
import numpy as np
import tensorflow as tf

# The converter's error type has no public alias (tf.lite exports none).
from tensorflow.lite.python.convert_phase import ConverterError

from keras_rank.core.errors import ExportError
from keras_rank.export.representative import representative_dataset

POST_TRAINING_FORMATS = ("float32", "dynamic", "float16", "int8")
"""Formats written by Keras' exporter (qat_int8 goes through `qat.py`)."""

_TF_OP = re.compile(r"'tf\.(\w+)' op")
_OP_LOCATION = re.compile(r'fused\["(\w+):", "([^"@]+)')


def converter_options(
    fmt: str, representative: np.ndarray | None = None
) -> dict[str, object]:
    """Returns the `tf.lite.TFLiteConverter` settings of one format.

    Args:
        fmt: One of `POST_TRAINING_FORMATS`.
        representative: Training examples that calibrate full int8
            quantization; required for "int8".

    Returns:
        Keyword arguments of `model.export(..., format="litert")`.

    Raises:
        ExportError: If `fmt` is unknown, or "int8" has no representative
            examples.
    """
    builtins = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    if fmt == "float32":
        return {"target_spec": builtins}
    if fmt == "dynamic":
        return {"optimizations": [tf.lite.Optimize.DEFAULT], "target_spec": builtins}
    if fmt == "float16":
        return {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "target_spec": {**builtins, "supported_types": [tf.float16]},
        }
    if fmt == "int8":
        if representative is None or not len(representative):
            raise ExportError(
                "Format int8 needs representative training examples to calibrate "
                "activation ranges. Received: representative=None"
            )
        return {
            "optimizations": [tf.lite.Optimize.DEFAULT],
            "representative_dataset": representative_dataset(representative),
            "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
        }
    raise ExportError(
        f"Expected fmt in: {', '.join(POST_TRAINING_FORMATS)}. Received: fmt={fmt!r}"
    )


def layer_of_op(location: str, layer_names: list[str]) -> str | None:
    """Returns the layer whose name scope holds an op's location, or None.

    Args:
        location: The op's name path, e.g. ``"model_1/my_layer_1/Erf"``
            (Keras may add ``_<n>`` to each scope).
        layer_names: Names of the model's layers.
    """
    scopes = location.split("/")
    for name in sorted(layer_names, key=len, reverse=True):
        pattern = re.compile(rf"{re.escape(name)}(_\d+)?")
        if any(pattern.fullmatch(scope) for scope in scopes[1:]):
            return name
    return None


def explain_conversion_error(
    error: Exception, model: keras.Model, fmt: str
) -> ExportError:
    """Turns a converter error into one line naming the op and its layer.

    Args:
        error: What `TFLiteConverter.convert` raised.
        model: The model being converted.
        fmt: The format being written.

    Returns:
        The `ExportError` to raise.
    """
    text = str(error)
    ops = _TF_OP.findall(text)
    if not ops:
        first = next((line for line in text.splitlines() if line.strip()), text)
        return ExportError(f"LiteRT conversion to {fmt} failed: {first.strip()}")
    op = ops[0]
    layer_names = [layer.name for layer in model.layers]
    layer = next(
        (
            found
            for name, location in _OP_LOCATION.findall(text)
            if name == op and (found := layer_of_op(location, layer_names))
        ),
        None,
    )
    where = (
        f"layer '{layer}' ({type(model.get_layer(layer)).__name__})"
        if layer
        else f"model '{model.name}'"
    )
    ops_set = "int8 builtin" if fmt in ("int8", "qat_int8") else "builtin"
    return ExportError(
        f"Cannot export {where} to LiteRT {fmt}: it needs TensorFlow op {op}, "
        f"which is not among LiteRT's {ops_set} ops (phones have no Flex "
        "delegate); replace that layer with one made of builtin ops."
    )


def export_litert(
    model: keras.Model,
    path: str | os.PathLike,
    fmt: str,
    *,
    representative: np.ndarray | None = None,
) -> pathlib.Path:
    """Writes `model` as a LiteRT file of format `fmt`, builtin ops only.

    Args:
        model: A plain Keras model
            (`keras_rank.layers.deployable.deployable_model`).
        path: The `.tflite` file to write.
        fmt: One of `POST_TRAINING_FORMATS`.
        representative: Training examples for "int8" calibration.

    Returns:
        The path written.

    Raises:
        ExportError: The format is unknown, or the model needs an op that
            LiteRT's builtin ops lack (the message names op and layer).
    """
    options = converter_options(fmt, representative)
    path = pathlib.Path(path)
    try:
        model.export(path, format="litert", verbose=False, **options)
    except (ConverterError, ValueError) as error:
        raise explain_conversion_error(error, model, fmt) from error
    return path
