"""Linear algebra every method shares: a robust SVD and the low-rank rank rules.

Every SVD of keras_rank is ``tf.linalg.svd``; eagerly it goes through
`robust_svd`, which retries in float64 when float32 raises or returns NaN/inf.
"""

import numpy as np
import tensorflow as tf

from keras_rank.core.errors import ConfigError, KerasRankError


class SVDError(KerasRankError):
    """An SVD failed or returned non-finite values in float32 and in float64."""


def stays_dense(
    rank: int, alpha: float, dense_cost: float, offset: float = 0.0
) -> bool:
    """Returns True when a rank is not cheaper than the full matrix.

    A layer at such a rank is kept as a full matrix and charged ``dense_cost``.

    Args:
        rank: A rank >= 0.
        alpha: Cost per unit of rank.
        dense_cost: Cost of the full matrix.
        offset: Fixed cost of the low-rank form (its two ops' time under the
            latency criterion; 0 otherwise).
    """
    return bool(offset + alpha * rank >= dense_cost)


def check_rank_multiple(value: object, name: str = "rank_multiple") -> None:
    """Raises a ConfigError naming `name` unless `value` is an integer >= 1."""
    if not (
        isinstance(value, (int, np.integer))
        and not isinstance(value, bool)
        and value >= 1
    ):
        raise ConfigError(
            f"Expected {name} an integer >= 1. Received: {name}={value!r}"
        )


def round_up_to_multiple(ranks, full_rank: int, multiple: int):
    """Rounds ranks up to the nearest rank allowed with `multiple`.

    The allowed ranks are the multiples of `multiple` and the full rank
    (as in LC's C step and prox's decomposition); rank 0 stays 0.

    Args:
        ranks: A rank or an array of ranks, each in [0, `full_rank`].
        full_rank: The layer's full rank.
        multiple: The rank multiple, >= 1.

    Returns:
        The rounded ranks: a NumPy integer, or an array shaped like `ranks`.
    """
    return np.minimum(-(-np.asarray(ranks) // multiple) * multiple, full_rank)


def _svd_in(matrix: tf.Tensor, dtype: tf.DType) -> tuple[tf.Tensor, ...] | None:
    """Returns (s, u, v) of ``matrix`` computed in ``dtype``, None if it fails."""
    try:
        result = tf.linalg.svd(tf.cast(matrix, dtype), full_matrices=False)
    except tf.errors.OpError:
        return None
    if all(bool(tf.reduce_all(tf.math.is_finite(t))) for t in result):
        return tuple(result)
    return None


def robust_svd(
    matrix: tf.Tensor | np.ndarray, name: str | None = None
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Returns the thin SVD ``matrix = u diag(s) v^T``, retried in float64.

    ``tf.linalg.svd(matrix, full_matrices=False)``; if it raises or returns a
    non-finite value, the SVD is computed again in float64. Runs eagerly (the
    C step is eager work between epochs).

    Args:
        matrix: 2-D float tensor or array (a x b).
        name: The layer's name, for the error message.

    Returns:
        ``(s, u, v)`` in the matrix's dtype: s (R,) descending, u (a, R),
        v (b, R), R = min(a, b).

    Raises:
        ConfigError: The matrix is not a 2-D float matrix.
        SVDError: Both attempts failed.
    """
    matrix = tf.convert_to_tensor(matrix)
    if matrix.shape.rank != 2 or not matrix.dtype.is_floating:
        raise ConfigError(
            "Expected a 2-D float matrix. Received: matrix of shape "
            f"{matrix.shape.as_list()} and dtype {matrix.dtype.name}"
        )
    retry = [] if matrix.dtype == tf.float64 else [tf.float64]
    for dtype in [matrix.dtype, *retry]:
        result = _svd_in(matrix, dtype)
        if result is not None:
            s, u, v = (tf.cast(t, matrix.dtype) for t in result)
            return s, u, v
    finite = bool(tf.reduce_all(tf.math.is_finite(matrix)))
    raise SVDError(
        f"The SVD of {'layer ' + repr(name) if name else 'a matrix'} "
        f"(shape {matrix.shape.as_list()}) failed or returned NaN/inf in "
        f"{matrix.dtype.name} and in float64; the matrix "
        f"{'is finite' if finite else 'has NaN/inf entries (diverged training?)'}."
    )
