"""RaRe (rank reducing) loss and the angle tests of DLRA (Lee et al. 2021, 4.1-4.2).

Vectors are the rows of a 2-D float tensor ``vectors`` of shape (k, d) and
``mask`` (k,) marks the live ones (1 live, 0 dead, e.g. fused away). For a
factorized layer the paper's *columns* are the rows of the effective kernel
and its *rows* are the rows of ``concat([kernel.T, bias[:, None]], 1)``; see
:func:`keras_rank.dlra.fusion.column_vectors` and
:func:`keras_rank.dlra.fusion.row_vectors`.

Every function here is plain TensorFlow maths (float32) that runs eagerly or
inside ``tf.function``. Following the corrections in docs/methods/dlra.md, RaRe
is the minimum pairwise *squared sine* ``1 - cos^2``, which rewards parallel
and opposite pairs alike, not the printed ``(1 - cos)^2``.
"""

import tensorflow as tf

# Added to squared norms so that cos^2 and its gradient stay finite for zero
# and (nearly) parallel vectors.
_EPS = 1e-12
# Marks the diagonal and dead pairs in a matrix of squared sines (> any sin^2).
_NO_PAIR_SIN2 = 2.0


def _as_float(x: tf.Tensor) -> tf.Tensor:
    return tf.convert_to_tensor(x, dtype=tf.float32)


def _live(mask: tf.Tensor) -> tf.Tensor:
    """Returns a boolean (k,) tensor: True where ``mask`` is non-zero."""
    return tf.not_equal(_as_float(mask), 0.0)


def _valid_pairs(mask: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """Returns a (k, k) boolean tensor: both rows live and ``i != j``."""
    live = _live(mask)
    both = tf.logical_and(live[:, None], live[None, :])
    return tf.logical_and(both, tf.logical_not(tf.eye(k, dtype=tf.bool)))


def _upper(k: tf.Tensor) -> tf.Tensor:
    """Returns a (k, k) boolean tensor: True strictly above the diagonal."""
    idx = tf.range(k)
    return idx[:, None] < idx[None, :]


def pairwise_abs_cosine(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Returns |cos| between every pair of live rows of ``vectors``.

    The cosine of a zero vector with anything is taken as 0 (no NaN). The
    result is exactly symmetric.

    Args:
        vectors: (k, d) float tensor, one vector per row.
        mask: (k,) tensor, non-zero for live rows.

    Returns:
        (k, k) float32 tensor: ``|cos(v_i, v_j)|`` for live pairs ``i != j``,
        -1 on the diagonal and for every pair involving a dead row.
    """
    v = _as_float(vectors)
    norms = tf.norm(v, axis=1)
    unit = v / tf.where(norms > 0.0, norms, 1.0)[:, None]
    cos = tf.matmul(unit, unit, transpose_b=True)
    abs_cos = tf.abs(0.5 * (cos + tf.transpose(cos)))
    valid = _valid_pairs(mask, tf.shape(v)[0])
    return tf.where(valid, abs_cos, -1.0)


def most_parallel_pair(
    vectors: tf.Tensor, mask: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Finds the live pair of rows closest to parallel or opposite.

    Args:
        vectors: (k, d) float tensor with k >= 1.
        mask: (k,) tensor, non-zero for live rows.

    Returns:
        ``(i, j, abs_cos)``: int32 indices with ``i < j`` of the pair with the
        largest ``|cos|`` and that float32 value. With fewer than two live rows
        ``abs_cos`` is -1 and ``i = j = 0``.
    """
    abs_cos = pairwise_abs_cosine(vectors, mask)
    k = tf.shape(abs_cos)[0]
    upper = tf.where(_upper(k), abs_cos, -1.0)
    flat = tf.argmax(tf.reshape(upper, [-1]), output_type=tf.int32)
    best = tf.reshape(upper, [-1])[flat]
    found = best >= 0.0
    i = tf.where(found, flat // k, 0)
    j = tf.where(found, flat % k, 0)
    return i, j, best


def squared_sine(u: tf.Tensor, v: tf.Tensor, eps: float = _EPS) -> tf.Tensor:
    """Returns ``sin^2 = 1 - cos^2`` of the angle between ``u`` and ``v``.

    Computed as ``1 - (u.v)^2 / ((|u|^2 + eps) (|v|^2 + eps))`` with no square
    root, so the value and its gradient are finite everywhere, including zero
    and exactly parallel vectors. A zero vector gives 1. Parallel and opposite
    vectors both give ~0. Broadcasts over leading axes; the last axis is the
    vector.

    Args:
        u: (..., d) float tensor.
        v: (..., d) float tensor.
        eps: Added to each squared norm.

    Returns:
        (...) float32 tensor.
    """
    u = _as_float(u)
    v = _as_float(v)
    dot = tf.reduce_sum(u * v, axis=-1)
    uu = tf.reduce_sum(u * u, axis=-1) + eps
    vv = tf.reduce_sum(v * v, axis=-1) + eps
    return 1.0 - tf.square(dot) / (uu * vv)


def _pairwise_squared_sine(vectors: tf.Tensor) -> tf.Tensor:
    """Returns the (k, k) matrix of :func:`squared_sine` of every row pair."""
    gram = tf.matmul(vectors, vectors, transpose_b=True)
    sq = tf.linalg.diag_part(gram) + _EPS
    sin2 = 1.0 - tf.square(gram) / (sq[:, None] * sq[None, :])
    return 0.5 * (sin2 + tf.transpose(sin2))


def rare(vectors: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
    """Returns RaRe: the smallest squared sine over live pairs of rows.

    ``RaRe = min_{i != j live} 1 - cos^2(v_i, v_j)`` (Lee et al. 2021, eq. 5
    with the squared sine of the text, see docs/methods/dlra.md). The minimising pair is
    chosen without gradient; the gradient flows through that pair's
    :func:`squared_sine` only, pushing it further towards parallel or
    opposite.

    Args:
        vectors: (k, d) float tensor with k >= 1.
        mask: (k,) tensor, non-zero for live rows.

    Returns:
        Scalar float32 tensor in [0, 1] (up to rounding). 0.0, with zero
        gradient, when fewer than two rows are live: there is no pair to
        push and nothing left to reduce.
    """
    v = _as_float(vectors)
    k = tf.shape(v)[0]
    sin2 = _pairwise_squared_sine(tf.stop_gradient(v))
    candidates = tf.logical_and(_valid_pairs(mask, k), _upper(k))
    sin2 = tf.where(candidates, sin2, _NO_PAIR_SIN2)
    flat = tf.argmin(tf.reshape(sin2, [-1]), output_type=tf.int32)
    found = tf.reduce_any(candidates)
    i = tf.where(found, flat // k, 0)
    j = tf.where(found, flat % k, 0)
    # One-hot selection instead of tf.gather: the gradient is a dense tensor,
    # not IndexedSlices (gradient noise and clipping expect dense gradients).
    pick = tf.one_hot(tf.stack([i, j]), k, dtype=v.dtype)
    pair = tf.matmul(pick, v)
    value = squared_sine(pair[0], pair[1])
    return tf.where(found, value, tf.zeros_like(value))


def pair_statistics(
    uu: tf.Tensor, vv: tf.Tensor, uv: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Squared sine, ``1 - |cos|`` and D_euc of pairs from their dot products.

    For many pairs of different lengths at once: each pair costs one small
    Gram product and everything else is one vectorized expression.
    ``sin^2`` is exactly :func:`squared_sine`; D_euc uses
    ``|| (|v| / |u|) u - c v ||^2 = 2 |v|^2 (1 - |cos|)``, which equals
    :func:`euclidean_gap` except for a zero ``u`` (there ``1 - |cos| = 1``, far
    above any fusion threshold, either way).

    Args:
        uu: (...) squared norms of the first vectors.
        vv: (...) squared norms of the second vectors.
        uv: (...) their dot products.

    Returns:
        ``(sin2, gap, distance)``, each (...) float32: ``1 - cos^2``,
        ``1 - |cos|`` (from ``sin2``) and D_euc.
    """
    sin2 = 1.0 - tf.square(uv) / ((uu + _EPS) * (vv + _EPS))
    gap = 1.0 - tf.sqrt(tf.maximum(1.0 - sin2, 0.0))
    distance = tf.sqrt(tf.maximum(2.0 * vv * gap, 0.0))
    return sin2, gap, distance


def euclidean_gap(u: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    """Returns D_euc: the distance of ``u`` and ``v`` after equalising norms.

    ``D_euc = || (|v| / |u|) u - c v ||`` with ``c = sign(cos(u, v))`` and
    ``c = 1`` when ``cos == 0`` (Lee et al. 2021, eq. 13 as fixed in
    docs/methods/dlra.md). Parallel and opposite vectors of any lengths give 0. If ``u``
    is zero the scaled ``u`` is taken as zero, giving ``|v|``. Broadcasts over
    leading axes; the last axis is the vector.

    Args:
        u: (..., d) float tensor.
        v: (..., d) float tensor.

    Returns:
        (...) float32 tensor.
    """
    u = _as_float(u)
    v = _as_float(v)
    nu = tf.norm(u, axis=-1, keepdims=True)
    nv = tf.norm(v, axis=-1, keepdims=True)
    ratio = tf.where(nu > 0.0, nv / tf.where(nu > 0.0, nu, 1.0), 0.0)
    dot = tf.reduce_sum(u * v, axis=-1, keepdims=True)
    c = tf.where(dot < 0.0, -1.0, 1.0)
    return tf.norm(ratio * u - c * v, axis=-1)
