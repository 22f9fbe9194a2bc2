"""Reading, running and timing LiteRT files with ai-edge-litert.

Everything here is measured on the `.tflite` file itself: its parameters are
counted from the constant tensors of its flatbuffer, its outputs come from
the LiteRT interpreter (the XNNPACK CPU path a phone takes), and its latency
is that of single-example invocations on one thread.
"""

import dataclasses
import os
import pathlib
import statistics
import time
from collections.abc import Hashable, Iterator, Mapping
from typing import Any

import numpy as np
from ai_edge_litert import schema_py_generated as schema
from ai_edge_litert.interpreter import Interpreter

from keras_rank.core.errors import ExportError

_OP_NAMES = {
    code: name
    for name, code in vars(schema.BuiltinOperator).items()
    if not name.startswith("_")
}
_TYPE_NAMES = {
    code: name.lower()
    for name, code in vars(schema.TensorType).items()
    if not name.startswith("_")
}
_WEIGHT_TYPES = {
    schema.TensorType.FLOAT32,
    schema.TensorType.FLOAT16,
    schema.TensorType.INT8,
    schema.TensorType.UINT8,
}


@dataclasses.dataclass(frozen=True)
class TFLiteSummary:
    """What a LiteRT file holds.

    Attributes:
        size_bytes: Size of the file.
        params: Elements of its weight tensors: constant float tensors,
            constant int8 tensors and quantized int32 biases (shape and
            index constants are not counted).
        weight_types: Element types of those tensors, e.g. ``("int8",
            "int32")``.
        ops: Names of the operators it runs, sorted.
    """

    size_bytes: int
    params: int
    weight_types: tuple[str, ...]
    ops: tuple[str, ...]


def _has_data(model: schema.ModelT, tensor: schema.TensorT) -> bool:
    buffer = model.buffers[tensor.buffer]
    return (buffer.data is not None and len(buffer.data) > 0) or bool(buffer.size)


def _is_weight(tensor: schema.TensorT) -> bool:
    if tensor.type in _WEIGHT_TYPES:
        return True
    quantization = tensor.quantization
    return (
        tensor.type == schema.TensorType.INT32
        and quantization is not None
        and quantization.scale is not None
        and len(quantization.scale) > 0
    )


def _op_name(code: schema.OperatorCodeT) -> str:
    if code.builtinCode == schema.BuiltinOperator.CUSTOM:
        custom = code.customCode
        return f"CUSTOM:{custom.decode() if isinstance(custom, bytes) else custom}"
    return _OP_NAMES.get(code.builtinCode, str(code.builtinCode))


def read_summary(path: str | os.PathLike) -> TFLiteSummary:
    """Reads a LiteRT file's size, parameters and operators.

    Args:
        path: The `.tflite` file.

    Returns:
        Its `TFLiteSummary`.
    """
    data = pathlib.Path(path).read_bytes()
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    params, types, ops = 0, set(), set()
    for subgraph in model.subgraphs:
        for tensor in subgraph.tensors:
            if _has_data(model, tensor) and _is_weight(tensor):
                params += int(np.prod(tensor.shape))
                types.add(_TYPE_NAMES[tensor.type])
        for operator in subgraph.operators:
            ops.add(_op_name(model.operatorCodes[operator.opcodeIndex]))
    return TFLiteSummary(len(data), params, tuple(sorted(types)), tuple(sorted(ops)))


def check_builtin_only(path: str | os.PathLike) -> None:
    """Raises `ExportError` if a LiteRT file needs a custom or Flex op.

    Args:
        path: The `.tflite` file.
    """
    custom = [op for op in read_summary(path).ops if op.startswith("CUSTOM:")]
    if custom:
        raise ExportError(
            f"LiteRT file '{path}' needs ops outside LiteRT's builtins "
            f"({', '.join(custom)}); phones have no Flex delegate."
        )


class LiteRTModel:
    """A LiteRT file loaded in the interpreter, one thread.

    Args:
        path: The `.tflite` file (one float or int8 input, one output).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = pathlib.Path(path)
        self._interpreter = Interpreter(model_path=str(self.path), num_threads=1)
        self._input = self._interpreter.get_input_details()[0]
        self._output = self._interpreter.get_output_details()[0]
        self._batch = None

    def _resize(self, batch: int) -> None:
        if batch != self._batch:
            shape = [batch, *self._input["shape"][1:]]
            self._interpreter.resize_tensor_input(self._input["index"], shape)
            self._interpreter.allocate_tensors()
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
            self._batch = batch

    def _quantize(self, images: np.ndarray) -> np.ndarray:
        dtype = self._input["dtype"]
        if np.issubdtype(dtype, np.floating):
            return images.astype(dtype)
        scale, zero = self._input["quantization"]
        info = np.iinfo(dtype)
        return np.clip(np.round(images / scale + zero), info.min, info.max).astype(
            dtype
        )

    def _dequantize(self, outputs: np.ndarray) -> np.ndarray:
        if np.issubdtype(outputs.dtype, np.floating):
            return outputs.astype(np.float32)
        scale, zero = self._output["quantization"]
        return ((outputs.astype(np.float32) - zero) * scale).astype(np.float32)

    def invoke(self, images: np.ndarray) -> np.ndarray:
        """Runs one batch; returns the float outputs."""
        self._resize(len(images))
        self._interpreter.set_tensor(self._input["index"], self._quantize(images))
        self._interpreter.invoke()
        return self._dequantize(self._interpreter.get_tensor(self._output["index"]))

    def predict(self, batches: Iterator[np.ndarray]) -> np.ndarray:
        """Runs every batch; returns the outputs concatenated."""
        return np.concatenate([self.invoke(np.asarray(batch)) for batch in batches])

    def time_invocations(self, count: int) -> list[float]:
        """Times `count` invocations on the example last set; microseconds."""
        times = []
        for _ in range(count):
            start = time.perf_counter_ns()
            self._interpreter.invoke()
            times.append((time.perf_counter_ns() - start) / 1e3)
        return times


def measure_latency(
    paths: Mapping[Hashable, str | os.PathLike],
    example: np.ndarray,
    *,
    invocations: int,
    rounds: int,
    instances: int = 1,
    warmup: int = 20,
) -> dict[Hashable, dict[str, Any]]:
    """Median single-example latency of several LiteRT files, interleaved.

    Every round times `invocations` invocations of each file in turn (the
    order rotating from round to round), so that a change of machine load
    falls on all files alike. With several `instances`, each file is loaded
    into that many interpreters, each timed as a file of its own: one
    interpreter's speed can stay apart from another's of the same file
    through every round (on the 2-core test machine a MobileNetV2 file ran
    at 206 us in one interpreter and 272 us in the next; the cause was not
    found), and the median over instances does not follow one of them.

    Args:
        paths: Files by key (a name, say).
        example: One input example, shape ``(1, *input_shape)``.
        invocations: Timed invocations per file, instance and round, >= 1.
        rounds: Rounds, >= 1.
        instances: Interpreters per file, >= 1.
        warmup: Untimed invocations per interpreter before the first round.

    Returns:
        ``{name: {"median_us", "p10_us", "p90_us", "invocations",
        "instance_medians_us"}}``: the median over the instances' medians,
        the deciles over all invocations, their count, and each instance's
        median.
    """
    if len(example) != 1:
        raise ExportError(
            f"Expected one example, shape (1, ...). Received: shape={example.shape}"
        )
    if instances < 1:
        raise ExportError(f"Expected instances >= 1. Received: instances={instances}")
    # Instance by instance, so that one file's interpreters do not sit side
    # by side in memory.
    models = {
        (name, index): LiteRTModel(path)
        for index in range(instances)
        for name, path in paths.items()
    }
    for model in models.values():
        model.invoke(example)
        model.time_invocations(warmup)
    times: dict[tuple, list[float]] = {key: [] for key in models}
    keys = list(models)
    for round_index in range(rounds):
        shift = round_index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            models[key].invoke(example)
            times[key].extend(models[key].time_invocations(invocations))
    result = {}
    for name in paths:
        own = [times[name, index] for index in range(instances)]
        pooled = [value for values in own for value in values]
        deciles = statistics.quantiles(pooled, n=10)
        medians = [statistics.median(values) for values in own]
        result[name] = {
            "median_us": statistics.median(medians),
            "p10_us": deciles[0],
            "p90_us": deciles[-1],
            "invocations": len(pooled),
            "instance_medians_us": medians,
        }
    return result
