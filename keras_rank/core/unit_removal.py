"""Physical removal of units (output channels) of Dense and Conv2D layers.

A unit ``n`` of a Dense or Conv2D layer is its kernel column
``kernel[..., n]`` and bias entry ``bias[n]``. Removing it also removes the
inputs of the next weighted layer that read it, so the result is a smaller
plain model. Two users:

* structured pruning (`keras_rank.analysis.pruning`): the unit's output is
  dropped, so the smaller model computes what the original does with the
  unit's outgoing weights zeroed;
* the prox post-processing (`keras_rank.prox.decompose`): a zero unit
  outputs the constant ``act(bias[n])``, which is folded into the next
  layer's bias (``constants``), so the smaller model computes the same
  outputs.

A unit's output must reach exactly one Dense or Conv2D layer, through
unshared, unbranched layers that keep channels apart
(`ModelGraph.exclusive_successor` with :func:`crosses`): Dropout (identity
at inference; a Dropout whose ``noise_shape`` fixes the channel count is not
crossed), Max/AveragePooling2D and GlobalMax/GlobalAveragePooling2D (channels
last), Activation, ReLU and LeakyReLU layers, and Flatten (channels last: a
channel of P positions becomes the P coordinates ``p * C + n`` of the flat
vector). :func:`why_units_stay` says why a layer's units cannot be removed
otherwise (a model output, a branch, another kind of reader).
"""

import dataclasses
import math
from typing import Any

import keras
import numpy as np

from keras_rank.core.channel_groups import ChannelGroup
from keras_rank.core.cloning import clone_replacing
from keras_rank.core.compressible import COMPRESSIBLE
from keras_rank.core.graph import MODEL_OUTPUT, Chain, ModelGraph

_CROSSED = (
    keras.layers.Dropout,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
    keras.layers.GlobalMaxPooling2D,
    keras.layers.GlobalAveragePooling2D,
    keras.layers.Flatten,
)
ELEMENTWISE = (keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU)
"""Layers that map a constant channel c to the constant channel layer(c)."""


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
    group: ChannelGroup, weights: dict[str, Any], channels: list[int]
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
    """
    for reader in group.readers:
        own = weights[reader.layer.name]
        own.kernel = np.delete(own.kernel, reader.rows[channels].ravel(), axis=-2)
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


def crosses(layer: Any) -> bool:
    """Tells whether a layer keeps channels apart, so a unit can cross it."""
    noise_shape = getattr(layer, "noise_shape", None)
    return (
        isinstance(layer, _CROSSED + ELEMENTWISE)
        and getattr(layer, "data_format", "channels_last") == "channels_last"
        and (noise_shape is None or noise_shape[-1] in (None, 1))
    )


def successor_chain(layer: Any, graph: ModelGraph) -> Chain | None:
    """Returns the chain from `layer` to the one layer reading its units."""
    return graph.exclusive_successor(layer, through=crosses)


def why_units_stay(
    chain: Chain | None, layer: Any, graph: ModelGraph, editable: set[str]
) -> str:
    """Returns why no unit of `layer` can be removed, or ''.

    Args:
        chain: `successor_chain(layer, graph)`.
        layer: A Dense or Conv2D layer of the graph's model.
        graph: The model's graph.
        editable: Names of the layers whose inputs can be removed.
    """
    if chain is None:
        sinks = graph.sinks(layer, through=crosses)
        if any(sink is MODEL_OUTPUT for sink in sinks):
            return "its output is a model output"
        names = sorted(sink.name for sink in sinks)
        return (
            f"its output is read by {names}: a branch, a layer with several "
            "inputs or a shared layer"
        )
    successor = chain.successor
    if successor.name not in editable:
        return (
            f"its output is read by {successor.name!r} "
            f"({type(successor).__name__}), not a layer whose inputs can be "
            f"removed: {COMPRESSIBLE}"
        )
    return ""


def input_rows(layer: Any, between: tuple) -> np.ndarray:
    """Returns (units, k): the next layer's input coordinates of each unit.

    A unit is one channel of `layer`'s output; every Flatten on the way
    turns each coordinate i of a tensor with P positions and C channels into
    the P coordinates ``p * C + i``.
    """
    shape = layer.compute_output_shape(tuple(layer.get_build_config()["input_shape"]))
    rows = np.arange(shape[-1])[:, None]
    for between_layer in between:
        if isinstance(between_layer, keras.layers.Flatten):
            positions = math.prod(shape[1:-1])
            flat = np.arange(positions)[None, :, None] * shape[-1] + rows[:, None, :]
            rows = flat.reshape(len(rows), -1)
        shape = between_layer.compute_output_shape(shape)
    return rows


def drop_units(
    layer: Any,
    chain: Chain,
    weights: dict[str, LayerWeights],
    units: list[int],
    constants: np.ndarray | None = None,
) -> None:
    """Removes `units` of `layer` and the successor's inputs that read them.

    Args:
        layer: The Dense/Conv2D layer.
        chain: Its `successor_chain`.
        weights: Working copies by layer name; `layer`'s and the successor's
            are edited.
        units: Indices of the units to remove (in the current weights).
        constants: (len(units),) the units' constant outputs as the
            successor reads them, added to its bias times the weights that
            read them; None drops the units' outputs.
    """
    own, successor = weights[layer.name], weights[chain.successor.name]
    rows = input_rows(layer, chain.between)[units]
    kernel = successor.kernel
    if constants is not None and np.any(constants):
        taps = kernel.reshape(-1, *kernel.shape[-2:]).astype(np.float64)
        contribution = np.einsum("m,tmko->o", constants, taps[:, rows, :])
        bias = successor.bias.astype(np.float64) + contribution
        successor.bias = bias.astype(successor.bias.dtype)
    successor.kernel = np.delete(kernel, rows.ravel(), axis=-2)
    successor.changed = True
    own.kernel = np.delete(own.kernel, units, axis=-1)
    if own.bias is not None:
        own.bias = np.delete(own.bias, units)
    own.changed = True


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
