"""Compressible layers as matrices with rank costs, and models in low-rank form.

A Dense kernel is its own matrix; a Conv2D kernel is reshaped by the chosen
scheme (`keras_rank.core.layer_matrices`). LC and prox reach a layer's weights
through `LayerSpec`, so LC's C step, penalty and baselines, prox's
decomposition and the final low-rank nets agree on the layout.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_rank.core.cloning import clone_replacing
from keras_rank.core.compressible import compressible_layers
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import (
    conv_matrix_shape,
    kernel_as_matrix,
    kernel_from_matrix,
)
from keras_rank.layers import LowRankConv2D, LowRankDense
from keras_rank.layers.latency import LatencyTable
from keras_rank.layers.low_rank_conv import conv2d_rank_costs
from keras_rank.layers.low_rank_dense import dense_rank_costs


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    """How LC sees one compressible layer.

    Attributes:
        name: The layer's name.
        scheme: The conv scheme (1 or 2), None for Dense.
        kernel_shape: Shape of the layer's kernel.
        max_rank: Largest rank of its matrix, min(a, b).
        alpha: Cost of one unit of rank under the criterion.
        dense_cost: Cost of the full (unfactorized) layer under the criterion.
        offset: Fixed cost of the low-rank form: 0 for flops and storage, the
            fitted time of its two ops for latency.
    """

    name: str
    scheme: int | None
    kernel_shape: tuple[int, ...]
    max_rank: int
    alpha: float
    dense_cost: float
    offset: float = 0.0

    def matrix(self, kernel: tf.Tensor) -> tf.Tensor:
        """Returns the layer's weight matrix (inputs x outputs) of `kernel`."""
        return kernel_as_matrix(kernel, self.scheme or 1)

    def kernel(self, matrix: tf.Tensor) -> tf.Tensor:
        """Returns the kernel whose matrix is `matrix` (inverse of `matrix`)."""
        return kernel_from_matrix(matrix, self.kernel_shape, self.scheme or 1)

    def cost(self, rank: int, dense: bool) -> float:
        """C_k(r): the layer's cost at `rank`, or as a full layer."""
        return self.dense_cost if dense else self.offset + self.alpha * rank


def layer_spec(
    layer: keras.layers.Layer,
    criterion: str,
    scheme: int,
    latency: LatencyTable | None = None,
) -> LayerSpec:
    """Returns LC's view of a Dense or Conv2D layer for a cost criterion.

    Args:
        layer: A built Dense or Conv2D layer.
        criterion: "flops" (MACs), "storage" or "params" (parameters), or
            "latency" (LiteRT microseconds, from `latency`).
        scheme: The conv scheme, 1 or 2.
        latency: The table of measured latencies; needed for "latency".

    Raises:
        ConfigError: The criterion is "latency" and no table is given.
    """
    if isinstance(layer, keras.layers.Conv2D):
        rank_costs, layer_scheme = conv2d_rank_costs(layer, scheme), scheme
    else:
        rank_costs, layer_scheme = dense_rank_costs(layer), None
    offset = 0.0
    if criterion == "latency":
        if latency is None:
            raise ConfigError(
                "The latency criterion needs a LatencyTable (where its timings "
                f"are cached). Received: latency=None for layer {layer.name!r}"
            )
        timed = latency.costs(layer, scheme)
        alpha, dense, offset = timed.per_rank_us, timed.dense_us, timed.offset_us
    elif criterion == "flops":
        alpha, dense = rank_costs.macs_per_rank, rank_costs.dense_macs
    else:
        alpha, dense = rank_costs.params_per_rank, rank_costs.dense_params
    kernel_shape = tuple(layer.kernel.shape)
    if layer_scheme is None:
        rows, cols = kernel_shape
    else:
        rows, cols = conv_matrix_shape(kernel_shape, layer_scheme)
    return LayerSpec(
        name=layer.name,
        scheme=layer_scheme,
        kernel_shape=kernel_shape,
        max_rank=min(rows, cols),
        alpha=float(alpha),
        dense_cost=float(dense),
        offset=float(offset),
    )


def layer_specs(
    model: keras.Model,
    criterion: str,
    scheme: int,
    latency: LatencyTable | None = None,
) -> list[LayerSpec]:
    """Returns the specs of every compressible layer of `model`, in order.

    Args:
        model: A Functional or Sequential model.
        criterion: As :func:`layer_spec`.
        scheme: The conv scheme, 1 or 2.
        latency: The table of measured latencies; needed for "latency".
    """
    return [
        layer_spec(layer, criterion, scheme, latency)
        for layer in compressible_layers(model)
    ]


@dataclasses.dataclass(frozen=True)
class RankChoice:
    """The rank of one layer in the low-rank net, and the matrix it comes from.

    Attributes:
        rank: The rank (for a dense layer, its matrix's full rank).
        dense: Keep the layer as a full matrix: a low-rank form of this rank
            would cost as much or more.
        matrix: The matrix the layer's weights are taken from (a rank-`rank`
            matrix for LC's Theta, the reference weights for the baselines).
    """

    rank: int
    dense: bool
    matrix: np.ndarray


def rank_summary(choices: dict[str, RankChoice]) -> dict[str, int | str]:
    """The chosen ranks as results files write them: ``{layer: rank}``.

    A layer kept dense reads ``"R (dense)"``, its full rank R.
    """
    return {
        name: f"{choice.rank} (dense)" if choice.dense else choice.rank
        for name, choice in choices.items()
    }


def low_rank_model(
    model: keras.Model, specs: list[LayerSpec], choices: dict[str, RankChoice]
) -> keras.Model:
    """Returns a copy of `model` with each chosen layer in its low-rank form.

    A layer whose choice is dense stays a Dense/Conv2D holding the choice's
    matrix as its kernel; the others become LowRankDense/LowRankConv2D of the
    chosen rank, factored from the choice's matrix by truncated SVD. Every
    other layer keeps its weights.
    """
    by_name = {spec.name: spec for spec in specs}

    def convert(layer):
        if layer.name not in choices:
            return None
        spec, choice = by_name[layer.name], choices[layer.name]
        if choice.dense:
            plain = layer.__class__.from_config(layer.get_config())
            plain.build(layer.get_build_config()["input_shape"])
            weights = layer.get_weights()
            weights[0] = keras.ops.convert_to_numpy(spec.kernel(choice.matrix))
            plain.set_weights(weights)
            return plain
        if spec.scheme is None:
            return LowRankDense.from_dense(layer, choice.rank, matrix=choice.matrix)
        return LowRankConv2D.from_conv2d(
            layer, choice.rank, spec.scheme, matrix=choice.matrix
        )

    return clone_replacing(model, convert)
