"""The weight matrices of keras_rank's layers, registered with the core registry.

`keras_rank.core.layer_matrices.layer_matrix` reads a Dense or Conv2D kernel
itself; for the layers defined here it calls the functions registered below,
which return M (inputs x units) in conv scheme 1 like every other layer's.
"""

import keras
import numpy as np

from keras_rank.core.layer_matrices import (
    conv_kernel_as_matrix,
    conv_kernel_from_matrix,
    kernel_as_matrix,
    register_layer_matrix,
)
from keras_rank.layers.factorized_conv import FactorizedConv2D
from keras_rank.layers.factorized_dense import FactorizedDense
from keras_rank.layers.low_rank_conv import LowRankConv2D
from keras_rank.layers.low_rank_dense import LowRankDense


def low_rank_matrix(layer: LowRankDense | LowRankConv2D) -> np.ndarray:
    """Returns ``U V^T`` of a low-rank layer, as its scheme-1 matrix."""
    u, v = (keras.ops.convert_to_numpy(weight) for weight in (layer.u, layer.v))
    matrix = u @ v.T
    if isinstance(layer, LowRankConv2D) and layer.scheme != 1:
        channels = layer.get_build_config()["input_shape"][-1]
        shape = (*layer.kernel_size, channels, layer.filters)
        kernel = conv_kernel_from_matrix(matrix, shape, layer.scheme)
        matrix = keras.ops.convert_to_numpy(conv_kernel_as_matrix(kernel, 1))
    return matrix


def factorized_matrix(layer: FactorizedDense | FactorizedConv2D) -> np.ndarray:
    """Returns the matrix of a factorized layer's plain form (P W' Q folded)."""
    return keras.ops.convert_to_numpy(kernel_as_matrix(layer.to_plain().kernel))


for _class in (LowRankDense, LowRankConv2D):
    register_layer_matrix(_class, low_rank_matrix)
for _class in (FactorizedDense, FactorizedConv2D):
    register_layer_matrix(_class, factorized_matrix)
