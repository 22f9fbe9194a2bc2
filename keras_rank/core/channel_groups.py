"""Which layers share a layer's output channels, read from the model's graph.

Removing output channel ``n`` of a Dense or Conv2D layer (a *unit*) touches
more than that layer when its output flows on through other layers:

* layers that keep channels apart carry channel ``n`` on: activations,
  Dropout, pooling, padding, and BatchNormalization and DepthwiseConv2D
  (depth multiplier 1), whose per-channel weights lose entry ``n`` with it;
* element-wise merges (Add, Subtract, Multiply, Average, Maximum, Minimum,
  as layers or as tensor arithmetic) *tie* channel ``n`` of every input: a
  residual Add adds channel ``n`` of both branches, so the channel is
  removed from every layer producing into either branch, or from none;
* Concatenate (last axis) and Flatten move the channel to other
  coordinates of the tensor that follows;
* a Dense or Conv2D layer reading the channels ends the walk: it loses the
  input rows that read channel ``n``.

`channel_group` walks the graph from a layer's output, both down (to the
readers) and, from every merge, up (to the other producers), and returns
the whole :class:`ChannelGroup`, or why its channels cannot be removed (a
model output or input, a layer that mixes channels, a shared layer that
also reads other channels). Everything else about removal (which units,
what they output) is the caller's; see `keras_rank.core.unit_removal`.
"""

import dataclasses
from typing import Any

import keras
import numpy as np

from keras_rank.core.compressible import MATRIX_LAYERS
from keras_rank.core.graph import ModelGraph

_CARRIERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.Dropout,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.ZeroPadding2D,
)
"""Weightless layers that carry each channel on by itself."""

_MERGES = (
    keras.layers.Add,
    keras.layers.Subtract,
    keras.layers.Multiply,
    keras.layers.Average,
    keras.layers.Maximum,
    keras.layers.Minimum,
)
"""Layers that combine channel n of every input into channel n."""

_ELEMENTWISE_OPS = frozenset(
    {
        "Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum",
        "Minimum", "Negative", "Abs", "Square", "Sqrt", "Exp", "Relu",
        "Relu6", "Sigmoid", "HardSigmoid", "HardSilu", "Silu", "Tanh", "Gelu",
    }
)  # fmt: skip
"""keras.ops operations (class names) that act element by element."""


@dataclasses.dataclass(frozen=True)
class Reader:
    """A Dense/Conv2D layer reading the channels.

    Attributes:
        layer: The layer.
        rows: (channels, k): the input coordinates (last axis) of its
            kernel that read each channel.
    """

    layer: Any
    rows: np.ndarray


@dataclasses.dataclass(frozen=True)
class ChannelGroup:
    """The layers that hold one set of channels, as `channel_group` finds them.

    Attributes:
        channels: How many channels.
        producers: Dense/Conv2D layers whose output channels these are.
        sliced: Channel-wise layers with per-channel weights on the way
            (BatchNormalization, DepthwiseConv2D), in no set order.
        readers: The Dense/Conv2D layers reading them.
        nodes: Every node the channels pass between the producers and the
            readers (carriers, sliced layers, merges, operations, Flatten,
            Concatenate), in no set order.
        blocked: Why the channels cannot be removed, or ''.
    """

    channels: int
    producers: tuple[Any, ...]
    sliced: tuple[Any, ...]
    readers: tuple[Reader, ...]
    nodes: tuple[Any, ...]
    blocked: str


def _channels_last(layer: Any) -> bool:
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def _is_matrix_layer(layer: Any) -> bool:
    return type(layer) in MATRIX_LAYERS and getattr(layer, "groups", 1) == 1


def _carries(layer: Any) -> bool:
    """Tells whether a layer carries each channel on by itself."""
    if isinstance(layer, keras.layers.BatchNormalization):
        rank = len(_input_shape(layer))
        return layer.axis % rank == rank - 1
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return layer.depth_multiplier == 1 and _channels_last(layer)
    if isinstance(layer, keras.layers.Dropout):
        shape = layer.noise_shape
        return shape is None or shape[-1] in (None, 1)
    if isinstance(layer, _CARRIERS):
        return _channels_last(layer)
    return False


def _is_elementwise_op(operation: Any) -> bool:
    return (
        not isinstance(operation, keras.layers.Layer)
        and type(operation).__name__ in _ELEMENTWISE_OPS
    )


def _describe(operation: Any) -> str:
    kind = "layer" if isinstance(operation, keras.layers.Layer) else "operation"
    return f"{kind} {operation.name!r} ({type(operation).__name__})"


class _Walk:
    """The state of one `channel_group` walk."""

    def __init__(self, graph: ModelGraph, layer: Any, editable: set[str]):
        self.graph = graph
        self.editable = editable
        self.channels = int(layer.compute_output_shape(_input_shape(layer))[-1])
        self.maps: dict[int, np.ndarray] = {}
        self.producers: dict[int, Any] = {}
        self.readers: dict[int, tuple[Any, np.ndarray]] = {}
        self.nodes: dict[int, Any] = {}
        self.pending: list = []
        self.blocked = ""

    def block(self, why: str) -> None:
        if not self.blocked:
            self.blocked = why

    def join(self, tensor: Any, rows: np.ndarray) -> None:
        """Adds `tensor` to the channels' tensors, its coordinates `rows`."""
        known = self.maps.get(id(tensor))
        if known is not None:
            if known.shape != rows.shape or np.any(known != rows):
                self.block("a merge combines the channels at different coordinates")
            return
        self.maps[id(tensor)] = rows
        self.pending.append(tensor)

    def add_producer(self, layer: Any, *, start: bool = False) -> None:
        """Adds a producer (the caller checks the start layer's kind itself)."""
        if id(layer) in self.producers:
            return
        if not start and layer.name not in self.editable:
            self.block(
                f"they come from {_describe(layer)} too, which cannot lose units"
            )
            return
        units = int(layer.compute_output_shape(_input_shape(layer))[-1])
        if units != self.channels:
            self.block(f"{_describe(layer)} has {units} channels, not {self.channels}")
            return
        self.producers[id(layer)] = layer
        identity = np.arange(self.channels)[:, None]
        for node in self.graph.calls(layer):
            for tensor in node.output_tensors:
                self.join(tensor, identity)

    def run(self, start: Any) -> None:
        self.add_producer(start, start=True)
        while self.pending and not self.blocked:
            tensor = self.pending.pop()
            if self.graph.is_output(tensor):
                self.block("they reach a model output")
                break
            self.visit_producer(tensor)
            for node in self.graph.readers(tensor):
                self.visit_reader(node, tensor)

    def visit_producer(self, tensor: Any) -> None:
        """Walks up from `tensor` to what made it."""
        node = self.graph.producer(tensor)
        if node is None:
            self.block("they are channels of a model input")
            return
        operation = node.operation
        if _is_matrix_layer(operation):
            self.add_producer(operation)
        elif id(node) in self.nodes:
            return
        elif self._passes(node):
            self.pass_through(node)
        elif isinstance(operation, keras.layers.Concatenate):
            self.block(f"{_describe(operation)} joins them with other channels")
        else:
            self.block(f"they are made by {_describe(operation)}")

    def visit_reader(self, node: Any, tensor: Any) -> None:
        """Walks down from `tensor` into `node`, which reads it."""
        operation = node.operation
        if id(node) in self.nodes:
            return
        if _is_matrix_layer(operation):
            self.add_reader(operation, node, tensor)
        elif self._passes(node):
            self.pass_through(node)
        elif isinstance(operation, keras.layers.Flatten) and _channels_last(operation):
            self.nodes[id(node)] = node
            shape = tensor.shape
            positions = int(np.prod(shape[1:-1]))
            rows = self.maps[id(tensor)]
            flat = np.arange(positions)[None, :, None] * shape[-1] + rows[:, None, :]
            self.join(node.output_tensors[0], flat.reshape(len(rows), -1))
        elif isinstance(operation, keras.layers.Concatenate) and operation.axis in (
            -1,
            len(tensor.shape) - 1,
        ):
            self.nodes[id(node)] = node
            offset = 0
            for other in node.input_tensors:
                if other is tensor:
                    break
                offset += int(other.shape[-1])
            self.join(node.output_tensors[0], self.maps[id(tensor)] + offset)
        else:
            self.block(f"they are read by {_describe(operation)}")

    def _passes(self, node: Any) -> bool:
        """Tells whether channel n of the node's inputs is channel n of its output."""
        operation = node.operation
        if isinstance(operation, keras.layers.Layer):
            return _carries(operation) or isinstance(operation, _MERGES)
        return _is_elementwise_op(operation)

    def pass_through(self, node: Any) -> None:
        """Joins every tensor input and the output of a carrier or merge."""
        operation = node.operation
        self.nodes[id(node)] = node
        if isinstance(operation, keras.layers.Layer) and operation.weights:
            if len(self.graph.calls(operation)) != 1:
                self.block(f"{_describe(operation)} is shared")
                return
        tensors = [*node.input_tensors, *node.output_tensors]
        known = next(t for t in tensors if id(t) in self.maps)
        rows, width = self.maps[id(known)], known.shape[-1]
        for tensor in tensors:
            if tensor.shape[-1] == width:
                self.join(tensor, rows)
            elif tensor.shape[-1] != 1:  # A width of 1 is broadcast, not tied.
                self.block(f"{_describe(operation)} combines them with other widths")

    def add_reader(self, layer: Any, node: Any, tensor: Any) -> None:
        self.nodes[id(node)] = node
        if layer.name not in self.editable:
            self.block(f"they are read by {_describe(layer)}, which cannot lose inputs")
            return
        rows = self.maps[id(tensor)]
        known = self.readers.get(id(layer))
        if known is not None and (
            known[1].shape != rows.shape or np.any(known[1] != rows)
        ):
            self.block(f"{_describe(layer)} is shared and reads them differently")
            return
        self.readers[id(layer)] = (layer, rows)

    def check_shared_readers(self) -> None:
        """Blocks when a reader has a call that does not read the channels."""
        for layer, _ in self.readers.values():
            for call in self.graph.calls(layer):
                if id(call.input_tensors[0]) not in self.maps:
                    self.block(f"{_describe(layer)} is shared and reads other channels")

    def group(self) -> ChannelGroup:
        sliced = {
            id(node.operation): node.operation
            for node in self.nodes.values()
            if isinstance(node.operation, keras.layers.Layer)
            and node.operation.weights
            and not _is_matrix_layer(node.operation)
        }
        return ChannelGroup(
            channels=self.channels,
            producers=tuple(self.producers.values()),
            sliced=tuple(sliced.values()),
            readers=tuple(Reader(layer, rows) for layer, rows in self.readers.values()),
            nodes=tuple(self.nodes.values()),
            blocked=self.blocked,
        )


def _input_shape(layer: Any) -> tuple:
    return tuple(layer.get_build_config()["input_shape"])


def channel_group(graph: ModelGraph, layer: Any, editable: set[str]) -> ChannelGroup:
    """Returns the layers that share `layer`'s output channels.

    Args:
        graph: The model's graph.
        layer: A Dense or Conv2D layer of the model.
        editable: Names of the Dense/Conv2D layers that can lose units or
            inputs (whether `layer` itself is one is the caller's to check).

    Returns:
        The group; `ChannelGroup.blocked` says why its channels cannot be
        removed, if they cannot.
    """
    walk = _Walk(graph, layer, editable)
    walk.run(layer)
    walk.check_shared_readers()
    return walk.group()
