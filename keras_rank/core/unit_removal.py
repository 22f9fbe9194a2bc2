"""Physical removal of units (output channels) of Dense and Conv2D layers.

A unit ``n`` of a Dense or Conv2D layer is its kernel column
``kernel[..., n]`` and bias entry ``bias[n]``. Its channel may pass through
other layers and be tied to other layers' channels; its channel group
(`keras_rank.core.channel_groups`) holds them all, and :func:`drop_channels`
removes channel ``n`` from every one: the producers' units, the entries of
BatchNormalization and DepthwiseConv2D layers on the way, and the input
rows of the Dense/Conv2D layers that read it. The result is a smaller plain
model (:func:`rebuilt`). Two users:

* structured pruning (`keras_rank.analysis.pruning`): the channels' values
  are dropped, so the smaller model computes what the original does with
  those channels zeroed where they are read;
* the prox post-processing (`keras_rank.prox.decompose`): a channel whose
  producers' kernel columns are all zero carries a constant
  (:func:`channel_constants`), which is folded into the readers' biases, so
  the smaller model computes the same outputs.
"""

import dataclasses
from typing import Any

import keras
import numpy as np

from keras_rank.core.channel_groups import ChannelGroup
from keras_rank.core.cloning import clone_replacing
from keras_rank.core.graph import ModelGraph

_KEEP_CONSTANTS = (
    keras.layers.Dropout,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.Flatten,
)
"""Layers whose output channel is the constant its input channel is (pooling
a constant map; at inference, Dropout; Flatten moves it)."""


@dataclasses.dataclass
class LayerWeights:
    """The working copy of a Dense/Conv2D layer's kernel and bias.

    Attributes:
        kernel: (in, out) or (dh, dw, c, n).
        bias: (out,), or None for a layer without bias.
        changed: True once units or inputs were removed.
    """

    kernel: np.ndarray
    bias: np.ndarray | None
    changed: bool = False

    @classmethod
    def of(cls, layer: Any) -> "LayerWeights":
        """Returns a copy of a Dense/Conv2D layer's weights."""
        return cls(
            keras.ops.convert_to_numpy(layer.kernel),
            keras.ops.convert_to_numpy(layer.bias) if layer.use_bias else None,
        )


@dataclasses.dataclass
class ChannelwiseWeights:
    """The working copy of a BatchNormalization or DepthwiseConv2D's weights.

    Attributes:
        arrays: The layer's weights, as `get_weights` orders them.
        axes: The channel axis of each array.
        changed: True once channels were removed.
    """

    arrays: list[np.ndarray]
    axes: tuple[int, ...]
    changed: bool = False

    @classmethod
    def of(cls, layer: Any) -> "ChannelwiseWeights":
        """Returns a copy of a BatchNormalization/DepthwiseConv2D's weights."""
        arrays = layer.get_weights()
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            return cls(arrays, (2,) + (0,) * (len(arrays) - 1))  # kernel, bias
        return cls(arrays, (0,) * len(arrays))


def group_weights(group: ChannelGroup) -> dict[str, Any]:
    """Returns working copies of the weights of every layer of `group`."""
    weights: dict[str, Any] = {}
    for layer in (*group.producers, *(reader.layer for reader in group.readers)):
        weights[layer.name] = LayerWeights.of(layer)
    for layer in group.sliced:
        weights[layer.name] = ChannelwiseWeights.of(layer)
    return weights


def drop_channels(
    group: ChannelGroup,
    weights: dict[str, Any],
    channels: list[int],
    constants: dict[str, np.ndarray] | None = None,
) -> None:
    """Removes `channels` from every layer of `group`, editing `weights`.

    The producers lose those output units, the channel-wise layers those
    channels, and the readers the input rows that read them: the smaller
    model computes what the original does with the channels zeroed where
    the readers read them.

    Args:
        group: The channels' group (`channel_group`), not blocked.
        weights: Working copies by layer name (`group_weights`).
        channels: Indices of the channels to remove (in the current weights).
        constants: Per reader, (len(channels),) the channels' constant values
            as it reads them (`channel_constants`), added to its bias times
            the weights that read them; None drops the channels' values.
    """
    for reader in group.readers:
        own = weights[reader.layer.name]
        rows = reader.rows[channels]
        constant = None if constants is None else constants[reader.layer.name]
        if constant is not None and np.any(constant):
            taps = own.kernel.reshape(-1, *own.kernel.shape[-2:]).astype(np.float64)
            contribution = np.einsum("m,tmko->o", constant, taps[:, rows, :])
            own.bias = (own.bias.astype(np.float64) + contribution).astype(
                own.bias.dtype
            )
        own.kernel = np.delete(own.kernel, rows.ravel(), axis=-2)
        own.changed = True
    for layer in group.producers:
        own = weights[layer.name]
        own.kernel = np.delete(own.kernel, channels, axis=-1)
        if own.bias is not None:
            own.bias = np.delete(own.bias, channels)
        own.changed = True
    for layer in group.sliced:
        own = weights[layer.name]
        own.arrays = [
            np.delete(array, channels, axis=axis)
            for array, axis in zip(own.arrays, own.axes, strict=True)
        ]
        own.changed = True


def _constant_through(node: Any, values: list, weights: dict[str, Any]) -> Any:
    """Returns what a node outputs for constant channels, or why it is not constant.

    Args:
        node: A node of a channel group (not a producer's or a reader's).
        values: (1, C) tensors of its tensor inputs in order; None where an
            input is not one of the group's tensors.
        weights: Working copies by layer name (the sliced layers' current
            weights).

    Returns:
        The (1, C) output, or a string: why the output is not constant.
    """
    operation = node.operation
    if isinstance(operation, keras.layers.Concatenate):
        return next(value for value in values if value is not None)
    if any(value is None for value in values):
        return f"{operation.name!r} merges them with channels that are not constant"
    if isinstance(operation, keras.layers.ZeroPadding2D):
        return f"{operation.name!r} pads them with zeros"
    if isinstance(operation, keras.layers.BatchNormalization):
        arrays = iter(weights[operation.name].arrays)
        gamma = next(arrays) if operation.scale else 1.0
        beta = next(arrays) if operation.center else 0.0
        mean, variance = next(arrays), next(arrays)
        scale = gamma / np.sqrt(variance + operation.epsilon)
        return values[0] * scale + (beta - mean * scale)
    if isinstance(operation, keras.layers.DepthwiseConv2D):
        if operation.padding != "valid":
            return (
                f"{operation.name!r} (padding={operation.padding!r}) sees them "
                "zero-padded at its borders"
            )
        arrays = weights[operation.name].arrays
        value = values[0] * arrays[0].sum(axis=(0, 1))[:, 0]
        if operation.use_bias:
            value = value + arrays[1]
        return keras.ops.convert_to_numpy(operation.activation(value))
    if isinstance(operation, _KEEP_CONSTANTS):
        return values[0]
    tensors = iter(values)
    args, kwargs = node.arguments.fill_in(
        {id(tensor): next(tensors) for tensor in node.input_tensors}
    )
    return keras.ops.convert_to_numpy(operation(*args, **kwargs))


def channel_constants(
    group: ChannelGroup, graph: ModelGraph, weights: dict[str, Any]
) -> dict[str, Any]:
    """Returns what each reader reads of channels whose producers' columns are zero.

    A producer whose kernel column n is zero outputs ``act(bias[n])`` at
    every position; through the group's layers (activations, merges,
    BatchNormalization, a valid DepthwiseConv2D, pooling) channel n stays
    constant. Each value is per channel, in the group's channel order.

    Args:
        group: A group that is not blocked.
        graph: The model's graph.
        weights: Working copies by layer name (`group_weights`).

    Returns:
        ``{reader name: (C,) float64 constants, or a string saying why
        they are not constant}``.
    """
    known: dict[int, Any] = {}
    for layer in group.producers:
        own = weights[layer.name]
        bias = np.zeros(own.kernel.shape[-1]) if own.bias is None else own.bias
        value = keras.ops.convert_to_numpy(layer.activation(bias[None, :]))
        for node in graph.calls(layer):
            known[id(node.output_tensors[0])] = value
    reader_ids = {id(reader.layer) for reader in group.readers}
    remaining = [n for n in group.nodes if id(n.operation) not in reader_ids]
    while remaining:
        ready = [
            node
            for node in remaining
            if all(
                id(t) in known or graph.producer(t) not in remaining
                for t in node.input_tensors
            )
        ]
        for node in ready:
            values = [known.get(id(t)) for t in node.input_tensors]
            if any(isinstance(value, str) for value in values):
                value = next(value for value in values if isinstance(value, str))
            else:
                value = _constant_through(node, values, weights)
            for tensor in node.output_tensors:
                known[id(tensor)] = value
            remaining.remove(node)
    out: dict[str, Any] = {}
    for reader in group.readers:
        for node in graph.calls(reader.layer):
            value = known[id(node.input_tensors[0])]
            out[reader.layer.name] = (
                value if isinstance(value, str) else np.asarray(value, np.float64)[0]
            )
    return out


def rebuilt(model: keras.Model, weights: dict[str, LayerWeights]) -> keras.Model:
    """Returns a copy of `model` whose changed layers hold their new weights."""

    def convert(layer):
        new = weights.get(layer.name)
        if new is None or not new.changed:
            return None
        if isinstance(new, ChannelwiseWeights):
            plain = type(layer).from_config(layer.get_config())
            input_shape = list(layer.get_build_config()["input_shape"])
            input_shape[-1] = new.arrays[0].shape[new.axes[0]]
            plain.build(tuple(input_shape))
            plain.set_weights(new.arrays)
            return plain
        size = "units" if isinstance(layer, keras.layers.Dense) else "filters"
        plain = type(layer).from_config(
            {**layer.get_config(), size: new.kernel.shape[-1]}
        )
        input_shape = list(layer.get_build_config()["input_shape"])
        input_shape[-1] = new.kernel.shape[-2]
        plain.build(tuple(input_shape))
        plain.set_weights([new.kernel] + ([new.bias] if new.bias is not None else []))
        return plain

    return clone_replacing(model, convert)
