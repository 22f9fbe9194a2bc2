"""A layer's unit matrix: one row per unit (output channel), as in Heitmann.

Keras stores a Dense kernel as (inputs, units) and a Conv2D kernel as
(dh, dw, c, n); the analysis works on ``W`` (units x inputs), the transpose of
the layer's matrix in conv scheme 1 (`keras_rank.core.layer_matrices.unit_matrix`):
a Conv2D filter is one row of its ``dh * dw * c`` weights.
"""

import keras
import numpy as np

from keras_rank.core.compressible import matrix_layer
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import unit_matrix


def check_unit_matrix(matrix, name: str = "matrix") -> np.ndarray:
    """Returns `matrix` as float64 after checking it is a unit matrix.

    Args:
        matrix: Array-like, expected 2-D (units x inputs), at least 1 x 1,
            with finite entries.
        name: The argument's name, for the error.

    Raises:
        ConfigError: It is not.
    """
    array = np.asarray(matrix, np.float64)
    if array.ndim != 2 or 0 in array.shape:
        raise ConfigError(
            f"Expected {name}: a 2-D unit matrix (units x inputs), at least "
            f"1 x 1. Received: {name}.shape={array.shape}"
        )
    if not np.all(np.isfinite(array)):
        raise ConfigError(
            f"Expected {name}: finite values. Received: {name} with NaN/inf "
            "entries (diverged training?)"
        )
    return array


def normalized_rows(matrix) -> np.ndarray:
    """Returns ``W_hat``: the rows of `matrix` scaled to norm 1 (zero rows stay 0).

    Raises:
        ConfigError: `matrix` is not 2-D with at least one row.
    """
    matrix = check_unit_matrix(matrix)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


def cosine_similarities(matrix) -> np.ndarray:
    """Returns ``X = W_hat W_hat^T``: the cosine similarities of the units.

    A zero row has similarity 0 with every other unit and 1 with itself.

    Args:
        matrix: ``W``, a unit matrix (units x inputs).

    Returns:
        (units x units) float64, symmetric, entries in [-1, 1], diagonal 1.

    Raises:
        ConfigError: `matrix` is not 2-D with at least one row.
    """
    unit = normalized_rows(matrix)
    similarities = np.clip(unit @ unit.T, -1.0, 1.0)
    np.fill_diagonal(similarities, 1.0)
    return similarities


def with_unit_matrix(model: keras.Model, name: str, matrix: np.ndarray) -> keras.Model:
    """Returns a copy of `model` whose layer `name` has the unit matrix `matrix`.

    Args:
        model: A built Functional or Sequential model.
        name: A Dense or Conv2D layer of it.
        matrix: (units x inputs), the shape of the layer's unit matrix.

    Raises:
        ConfigError: Bad layer name, or `matrix` is not of the layer's shape.
    """
    kernel = matrix_layer(model, name).kernel
    expected = unit_matrix(kernel).shape
    if np.shape(matrix) != expected:
        raise ConfigError(
            f"Expected matrix of shape {expected} (the unit matrix of {name!r}). "
            f"Received: matrix.shape={np.shape(matrix)}"
        )
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    new_kernel = np.asarray(matrix).T.reshape(kernel.shape)
    copy.get_layer(name).kernel.assign(new_kernel.astype(kernel.dtype))
    return copy
