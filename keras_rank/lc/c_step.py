"""The C step of LC rank selection (Idelbayev & Carreira-Perpinan 2020, eq. 4-5).

Per layer, with W the weight matrix, beta its Lagrange multipliers and mu the
penalty parameter, the C step solves

    min_{Theta, r}  lam * C(r) + mu / 2 * ||W - beta / mu - Theta||_F^2,
                    rank(Theta) = r,

exactly: one SVD of ``M = W - beta / mu`` gives ``||M - M_r||_F^2 =
sum_{i > r} s_i^2`` for every rank r at once (Eckart-Young), so the rank is
found by enumerating eq. 5 and Theta is the rank-r truncation of M.

Cost of a layer (docs/methods/lc.md): ``C(r) = min(offset + alpha * r,
dense_cost)``. The rank-r factorization costs ``offset + alpha * r`` (alpha
= parameters, MACs or microseconds per unit of rank; the offset is 0 but for
the latency criterion, where it is the fixed time of the two ops); once that
is not below ``dense_cost`` the layer is kept as a full matrix (no
truncation) and charged ``dense_cost``. The C step therefore also
weighs a "dense" option: cost ``dense_cost``, error 0.

The L step adds ``penalty`` to the training loss; after each C step the
multipliers move by ``multiplier_update`` and mu grows by ``mu_schedule``.
Rank selection runs in NumPy float64 (a vector of singular values); SVDs,
Theta, the penalty and the multipliers are TensorFlow tensors.
"""

import dataclasses
import math

import numpy as np
import tensorflow as tf

from keras_rank.core.errors import ConfigError
from keras_rank.core.linalg import check_rank_multiple, robust_svd


@dataclasses.dataclass(frozen=True)
class RankSelection:
    """The solution of eq. 5 for one layer.

    Attributes:
        rank: The selected rank; ``R = len(singular_values)`` when ``dense``.
        dense: True when the layer stays a full matrix (charged ``dense_cost``).
        objective: ``lam * cost + mu / 2 * error``, the minimum of eq. 5.
        cost: ``C(rank)``: ``offset + alpha * rank``, or ``dense_cost`` when
            ``dense``.
        error: ``sum_{i > rank} s_i^2`` (0 when ``dense``), the squared
            Frobenius distance of the matrix to its rank-``rank`` truncation.
    """

    rank: int
    dense: bool
    objective: float
    cost: float
    error: float


@dataclasses.dataclass(frozen=True)
class CStepResult(RankSelection):
    """The outcome of one C step on one layer: the selection, Theta and logs.

    Attributes:
        theta: The compressed matrix: the rank-``rank`` truncation of the C
            step's matrix, or the matrix itself when ``dense``. Same shape and
            dtype as the matrix; ``||matrix - theta||_F^2 = error``.
        collapse_mu: ``2 * lam * alpha / s_1^2``; see :func:`collapse_mu`.
        singular_values: The matrix's singular values, descending (for logs).
    """

    theta: tf.Tensor
    collapse_mu: float
    singular_values: tf.Tensor


def _check(condition: bool, expectation: str, name: str, value: object) -> None:
    if not condition:
        raise ConfigError(f"Expected {expectation}. Received: {name}={value!r}")


def _is_real(value: object) -> bool:
    return isinstance(value, (int, float, np.number)) and math.isfinite(value)


def check_rank_cost(alpha: float, dense_cost: float, offset: float = 0.0) -> None:
    """Raises ConfigError unless ``alpha > 0``, ``dense_cost > 0``, ``offset >= 0``.

    Args:
        alpha: Cost per unit of rank.
        dense_cost: Cost of the layer kept as a full matrix.
        offset: Fixed cost of the low-rank form.
    """
    _check(_is_real(alpha) and alpha > 0, "alpha > 0", "alpha", alpha)
    _check(
        _is_real(dense_cost) and dense_cost > 0,
        "dense_cost > 0",
        "dense_cost",
        dense_cost,
    )
    _check(_is_real(offset) and offset >= 0, "offset >= 0", "offset", offset)


def rank_cost(
    rank: int | np.ndarray, alpha: float, dense_cost: float, offset: float = 0.0
) -> np.ndarray:
    """Returns ``C(r) = min(offset + alpha * r, dense_cost)``, the cost of rank r.

    ``offset + alpha * r`` while the factorization is cheaper than the full
    matrix, ``dense_cost`` from then on (the layer stays full).

    Args:
        rank: A rank or an integer array of ranks.
        alpha: Cost per unit of rank.
        dense_cost: Cost of the full matrix.
        offset: Fixed cost of the low-rank form.

    Returns:
        float64, the shape of ``rank``.
    """
    return np.minimum(offset + alpha * np.asarray(rank, np.float64), dense_cost)


def truncation_errors(singular_values: tf.Tensor | np.ndarray) -> np.ndarray:
    """Returns ``e[r] = sum_{i > r} s_i^2`` for r = 0, ..., R (1-based s_i).

    By Eckart-Young, ``e[r]`` is the squared Frobenius distance of a matrix
    with these singular values to its best rank-r approximation. Summed from
    the smallest singular value up, so small tails keep their digits, ``e`` is
    exactly non-increasing and ``e[R] = 0``.

    Args:
        singular_values: 1-D, non-negative, descending.

    Returns:
        float64 array of length R + 1.
    """
    squares = np.square(np.asarray(singular_values, np.float64))
    return np.append(np.cumsum(squares[::-1])[::-1], 0.0)


def select_rank(
    singular_values: tf.Tensor | np.ndarray,
    alpha: float,
    dense_cost: float,
    lam: float,
    mu: float,
    min_rank: int = 0,
    offset: float = 0.0,
    rank_multiple: int = 1,
) -> RankSelection:
    """Solves eq. 5 exactly by enumeration.

    Minimises ``lam * C(r) + mu / 2 * sum_{i > r} s_i^2`` over the ranks
    ``r in {min_rank, ..., R}`` that are multiples of `rank_multiple` (or R)
    and cheaper than dense (``offset + alpha * r < dense_cost``)
    and the dense option (cost ``dense_cost``, error 0; always allowed). A
    rank with ``offset + alpha * r >= dense_cost`` is not a separate candidate: the
    dense option has its cost or less and no error.

    Ties (equal objectives in float64) go to the lower cost: the lower rank,
    and a rank before dense (every candidate rank is cheaper than dense). So
    ``lam = 0`` keeps every singular value: rank R if that is cheaper than
    dense, else dense.

    Args:
        singular_values: 1-D, non-negative, in descending order (as returned
            by an SVD); R = its length.
        alpha: Cost per unit of rank, > 0.
        dense_cost: Cost of the full matrix, > 0.
        lam: Weight of the cost, >= 0.
        mu: Penalty parameter, > 0.
        min_rank: Smallest rank allowed for a factorization, in [0, R].
        offset: Fixed cost of the low-rank form, >= 0.
        rank_multiple: Ranks allowed are its multiples and R, >= 1 (8 suits
            the tiles of LiteRT's CPU kernels).

    Returns:
        The optimal :class:`RankSelection`.
    """
    s = np.asarray(singular_values, np.float64)
    _check(s.ndim == 1, "1-D singular_values", "singular_values.shape", s.shape)
    check_rank_cost(alpha, dense_cost, offset)
    _check(_is_real(lam) and lam >= 0, "lambda >= 0", "lambda", lam)
    _check(_is_real(mu) and mu > 0, "mu > 0", "mu", mu)
    _check(
        isinstance(min_rank, (int, np.integer)) and 0 <= min_rank <= len(s),
        f"min_rank in [0, {len(s)}]",
        "min_rank",
        min_rank,
    )
    check_rank_multiple(rank_multiple)
    ranks = np.arange(min_rank, len(s) + 1)
    ranks = ranks[(ranks % rank_multiple == 0) | (ranks == len(s))]
    ranks = ranks[offset + alpha * ranks < dense_cost]
    # Candidates in increasing cost: the cheaper ranks, then dense.
    costs = np.append(offset + alpha * ranks.astype(np.float64), dense_cost)
    errors = np.append(truncation_errors(s)[ranks], 0.0)
    objectives = lam * costs + 0.5 * mu * errors
    best = int(np.argmin(objectives))  # first minimum: the lowest cost
    dense = best == len(ranks)
    return RankSelection(
        rank=len(s) if dense else int(ranks[best]),
        dense=dense,
        objective=float(objectives[best]),
        cost=float(costs[best]),
        error=float(errors[best]),
    )


def collapse_mu(largest_singular_value: float, alpha: float, lam: float) -> float:
    """Returns ``2 * lam * alpha / s_1^2``, the mu below which rank 0 wins.

    For the linear cost ``alpha * r``, rank 0 has eq. 5's objective
    ``mu / 2 * ||M||^2`` and rank r pays ``lam * alpha * r`` to remove at
    most ``mu / 2 * r * s_1^2`` of it. Hence, writing mu_c for this value:

    * ``mu < mu_c``: rank 0 has a lower objective than every rank r >= 1
      (the layer collapses to rank 0 unless the dense option or
      ``min_rank`` overrides it);
    * ``mu == mu_c``: rank 0 ties with rank 1 and wins the tie (lower cost),
      up to float rounding;
    * ``mu > mu_c``: rank 1 beats rank 0, so rank 0 is never selected.

    It assumes rank 1 is cheaper than dense (``alpha < dense_cost``). A zero
    matrix (``s_1 = 0``) collapses at every mu: ``inf``.

    Args:
        largest_singular_value: s_1 of the C step's matrix.
        alpha: Cost per unit of rank.
        lam: Weight of the cost.
    """
    s1_squared = float(largest_singular_value) ** 2
    if s1_squared == 0.0:
        return math.inf
    return 2.0 * lam * alpha / s1_squared


def c_step(
    matrix: tf.Tensor | np.ndarray,
    alpha: float,
    dense_cost: float,
    lam: float,
    mu: float,
    min_rank: int = 0,
    name: str | None = None,
    offset: float = 0.0,
    rank_multiple: int = 1,
) -> CStepResult:
    """Solves eq. 4 for one layer: the best rank and its truncation.

    ``min_{Theta, r} lam * C(r) + mu / 2 * ||matrix - Theta||_F^2`` with
    ``rank(Theta) = r`` (or Theta = matrix, charged ``dense_cost``), by one
    SVD of ``matrix`` and :func:`select_rank`. For the augmented Lagrangian
    the caller passes ``matrix = W - beta / mu``.

    Args:
        matrix: 2-D float tensor or array, the layer in the layout of
            `keras_rank.core.layer_matrices`.
        alpha: Cost per unit of rank, > 0.
        dense_cost: Cost of the full matrix, > 0.
        lam: Weight of the cost, >= 0.
        mu: Penalty parameter, > 0.
        min_rank: Smallest rank allowed for a factorization.
        name: The layer's name, for error messages.
        offset: Fixed cost of the low-rank form, >= 0.
        rank_multiple: Ranks allowed are its multiples and the full rank.

    Returns:
        A :class:`CStepResult`; ``||matrix - theta||_F^2`` equals its
        ``error`` up to float rounding.

    Raises:
        SVDError: The SVD failed in float32 and in float64.
    """
    matrix = tf.convert_to_tensor(matrix)
    s, u, v = robust_svd(matrix, name)
    selection = select_rank(
        s, alpha, dense_cost, lam, mu, min_rank, offset, rank_multiple
    )
    if selection.dense:
        theta = matrix
    else:
        r = selection.rank
        theta = tf.matmul(u[:, :r] * s[:r], v[:, :r], transpose_b=True)
    return CStepResult(
        **dataclasses.asdict(selection),
        theta=theta,
        collapse_mu=collapse_mu(s[0], alpha, lam),
        singular_values=s,
    )


def penalty(
    w: tf.Tensor, theta: tf.Tensor, beta: tf.Tensor, mu: float | tf.Tensor
) -> tf.Tensor:
    """Returns the L step's penalty ``mu / 2 * ||w - theta - beta / mu||_F^2``.

    Its gradient with respect to ``w`` is ``mu * (w - theta - beta / mu)``.
    Plain tensor maths: runs inside ``tf.function``.

    Args:
        w: The layer's weights (any shape).
        theta: The compressed weights, same shape.
        beta: The Lagrange multipliers, same shape.
        mu: Penalty parameter, > 0.

    Returns:
        A scalar in ``w``'s dtype.
    """
    mu = tf.cast(mu, w.dtype)
    return 0.5 * mu * tf.reduce_sum(tf.square(w - theta - beta / mu))


def multiplier_update(
    beta: tf.Tensor, w: tf.Tensor, theta: tf.Tensor, mu: float | tf.Tensor
) -> tf.Tensor:
    """Returns the updated Lagrange multipliers ``beta - mu * (w - theta)``.

    Args:
        beta: The current multipliers.
        w: The weights after the L step, same shape.
        theta: The compressed weights after the C step, same shape.
        mu: The penalty parameter of this LC step.
    """
    return beta - tf.cast(mu, beta.dtype) * (w - theta)


def mu_schedule(mu0: float, mu_growth: float, step: int) -> float:
    """Returns the penalty parameter of LC step j: ``mu0 * mu_growth**j``.

    Args:
        mu0: The first penalty parameter, > 0.
        mu_growth: Growth factor b, > 1.
        step: The LC step j, counted from 0.
    """
    return float(mu0 * mu_growth**step)
