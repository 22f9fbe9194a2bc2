"""The one registry of layer matrices: a layer's weights as a matrix, and back.

Every method, the analysis and the export see a layer's weights as one
matrix M (a x b) in one orientation: a = the input side, b = the units
(output features or filters), so ``y = x M`` for a Dense layer. A Dense
kernel (in, out) is M. A Conv2D kernel K (dh, dw, c, n) is M in one of two
schemes (Idelbayev & Carreira-Perpinan 2020):

* scheme 1: ``M = reshape(K, (dh dw c, n))``: a unit is one column of its
  ``dh dw c`` weights;
* scheme 2: ``M[(h, c), (w, n)] = K[h, w, c, n]``, (dh c) x (dw n).

Both keep the entries, so Frobenius norms are the kernel's.
`kernel_from_matrix` is the inverse of `kernel_as_matrix`. The analysis of
units (Heitmann) works on the transpose, ``W = M^T`` (units x inputs):
`unit_matrix`. Layers whose weights are not one kernel (keras_rank's
factorized and low-rank layers) register how they make their matrix with
`register_layer_matrix`; `layer_matrix` answers for any of them.
"""

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rank.core.errors import ConfigError

SCHEMES = (1, 2)
"""The two ways of seeing a conv kernel as a matrix (see the module doc)."""


def check_scheme(scheme: object) -> int:
    """Return ``scheme`` if it is one of :data:`SCHEMES`, else raise ConfigError."""
    if isinstance(scheme, bool) or scheme not in SCHEMES:
        raise ConfigError(f"Expected scheme in {SCHEMES}. Received: scheme={scheme!r}")
    return int(scheme)


def conv_matrix_shape(kernel_shape: Sequence[int], scheme: int) -> tuple[int, int]:
    """Shape (a, b) of the matrix of a (dh, dw, c, n) kernel in a scheme.

    Args:
        kernel_shape: (dh, dw, c, n).
        scheme: 1 or 2.

    Returns:
        ``(dh dw c, n)`` for scheme 1, ``(dh c, dw n)`` for scheme 2.

    Raises:
        ConfigError: If ``scheme`` is not 1 or 2.
    """
    dh, dw, c, n = (int(dim) for dim in kernel_shape)
    if check_scheme(scheme) == 1:
        return dh * dw * c, n
    return dh * c, dw * n


def conv_kernel_as_matrix(kernel: Any, scheme: int) -> tf.Tensor:
    """The matrix M (a x b) of a (dh, dw, c, n) Conv2D kernel in a scheme.

    Scheme 1: ``M = reshape(K, (dh dw c, n))``. Scheme 2:
    ``M[(h, c), (w, n)] = K[h, w, c, n]``, i.e.
    ``reshape(transpose(K, (0, 2, 1, 3)), (dh c, dw n))``. Both keep the
    entries, so Frobenius norms are the kernel's.

    Args:
        kernel: (dh, dw, c, n) tensor or array.
        scheme: 1 or 2.

    Returns:
        The matrix, of the kernel's dtype.

    Raises:
        ConfigError: If ``scheme`` is not 1 or 2 or the kernel is not 4-D.
    """
    kernel = tf.convert_to_tensor(kernel)
    if kernel.shape.rank != 4:
        raise ConfigError(
            "Expected a 4-D (dh, dw, c, n) kernel. Received: "
            f"kernel.shape={tuple(kernel.shape)}"
        )
    shape = conv_matrix_shape(kernel.shape, scheme)
    if scheme == 2:
        kernel = tf.transpose(kernel, (0, 2, 1, 3))
    return tf.reshape(kernel, shape)


def conv_kernel_from_matrix(
    matrix: Any, kernel_shape: Sequence[int], scheme: int
) -> tf.Tensor:
    """The (dh, dw, c, n) kernel whose matrix in ``scheme`` is ``matrix``.

    The inverse of :func:`conv_kernel_as_matrix`.

    Args:
        matrix: (a, b) tensor or array, ``conv_matrix_shape(kernel_shape,
            scheme)``.
        kernel_shape: (dh, dw, c, n).
        scheme: 1 or 2.

    Returns:
        The kernel, of the matrix's dtype.

    Raises:
        ConfigError: If ``scheme`` is not 1 or 2 or ``matrix`` has another
            shape than the kernel's matrix.
    """
    matrix = tf.convert_to_tensor(matrix)
    expected = conv_matrix_shape(kernel_shape, scheme)
    if tuple(matrix.shape) != expected:
        raise ConfigError(
            f"Expected matrix of shape {expected} for kernel_shape="
            f"{tuple(kernel_shape)} and scheme={scheme}. Received: "
            f"matrix.shape={tuple(matrix.shape)}"
        )
    dh, dw, c, n = (int(dim) for dim in kernel_shape)
    if scheme == 1:
        return tf.reshape(matrix, (dh, dw, c, n))
    return tf.transpose(tf.reshape(matrix, (dh, c, dw, n)), (0, 2, 1, 3))


def kernel_as_matrix(kernel: Any, scheme: int = 1) -> tf.Tensor:
    """Returns a Dense or Conv2D kernel's matrix M (inputs x units).

    Dense (in, out): the kernel itself. Conv2D (dh, dw, c, n): its matrix in
    `scheme` (`conv_kernel_as_matrix`), ``reshape(K, (dh dw c, n))`` in scheme 1.

    Args:
        kernel: 2-D or 4-D float tensor, variable or array.
        scheme: The conv scheme, 1 or 2 (a Dense kernel has one matrix).

    Raises:
        ConfigError: The kernel is neither 2-D nor 4-D.
    """
    kernel = tf.convert_to_tensor(kernel)
    if kernel.shape.rank == 4:
        return conv_kernel_as_matrix(kernel, scheme)
    if kernel.shape.rank != 2:
        raise ConfigError(
            "Expected kernel: a Dense kernel (in, out) or a Conv2D kernel "
            f"(dh, dw, c, n). Received: kernel.shape={kernel.shape}"
        )
    return kernel


def kernel_from_matrix(
    matrix: Any, kernel_shape: Sequence[int], scheme: int = 1
) -> tf.Tensor:
    """Returns the kernel of shape ``kernel_shape`` whose matrix is ``matrix``.

    The inverse of :func:`kernel_as_matrix`.

    Args:
        matrix: 2-D float (a x b).
        kernel_shape: (in, out) for Dense, (dh, dw, c, n) for Conv2D.
        scheme: The conv scheme of `matrix`, 1 or 2.

    Raises:
        ConfigError: ``kernel_shape`` is neither 2-D nor 4-D, or ``matrix``
            is not its matrix's shape.
    """
    matrix = tf.convert_to_tensor(matrix)
    kernel_shape = tuple(int(dim) for dim in kernel_shape)
    if len(kernel_shape) == 4:
        return conv_kernel_from_matrix(matrix, kernel_shape, scheme)
    if len(kernel_shape) != 2 or tuple(matrix.shape) != kernel_shape:
        raise ConfigError(
            "Expected kernel_shape: (in, out) equal to matrix.shape, or "
            f"(dh, dw, c, n). Received: kernel_shape={kernel_shape}, "
            f"matrix.shape={tuple(matrix.shape)}"
        )
    return matrix


def unit_matrix(kernel: Any) -> np.ndarray:
    """Returns ``W = M^T`` (units x inputs, float64) of a Dense or Conv2D kernel.

    M is the kernel's matrix in scheme 1 (`kernel_as_matrix`): a Conv2D
    filter is one row of its ``dh * dw * c`` weights.

    Args:
        kernel: A Dense kernel (in, out) or Conv2D kernel (dh, dw, c, n):
            tensor, variable or array.

    Raises:
        ConfigError: The kernel is neither 2-D nor 4-D.
    """
    kernel = np.asarray(keras.ops.convert_to_numpy(kernel), np.float64)
    if kernel.ndim not in (2, 4):
        raise ConfigError(
            "Expected kernel: a Dense kernel (in, out) or a Conv2D kernel "
            f"(dh, dw, c, n). Received: kernel.shape={kernel.shape}"
        )
    return kernel.reshape(-1, kernel.shape[-1]).T


_LAYER_MATRICES: dict[type, Callable[[keras.layers.Layer], np.ndarray]] = {}


def register_layer_matrix(
    layer_class: type, to_matrix: Callable[[keras.layers.Layer], Any]
) -> None:
    """Tells `layer_matrix` how a layer class makes its matrix M (inputs x units).

    Args:
        layer_class: A Keras layer class (matched exactly, not subclasses).
        to_matrix: Returns the layer's M in scheme 1 (a tensor or array).
    """
    _LAYER_MATRICES[layer_class] = to_matrix


def layer_matrix(layer: keras.layers.Layer) -> np.ndarray:
    """Returns the weight matrix M (inputs x units, scheme 1) of a layer.

    Dense and Conv2D read their kernel; a registered class (factorized or
    low-rank layers) computes M from its factors.

    Raises:
        ConfigError: The layer has no registered matrix.
    """
    if type(layer) in (keras.layers.Dense, keras.layers.Conv2D):
        return keras.ops.convert_to_numpy(kernel_as_matrix(layer.kernel))
    if type(layer) in _LAYER_MATRICES:
        return keras.ops.convert_to_numpy(_LAYER_MATRICES[type(layer)](layer))
    raise ConfigError(
        f"Expected a layer with a weight matrix (Dense, Conv2D, or one of "
        f"{sorted(cls.__name__ for cls in _LAYER_MATRICES)}). Received: "
        f"layer {layer.name!r} of type {type(layer).__name__}"
    )
