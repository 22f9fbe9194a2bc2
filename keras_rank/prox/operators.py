"""Proximal operators of compression-aware training (Alvarez & Salzmann 2017).

Pure maths on tensors, section 3 and 3.1 of the paper. Per layer, with M its
weight matrix, training minimises the task loss plus

    r(M) = tau ||M||_*                                                 (2)
         + (1 - alpha) lam sqrt(P) sum_n ||m_n||_2 + alpha lam ||M||_1  (5)

by proximal stochastic gradient descent: ordinary steps of learning rate rho
on the task loss, then the proximal operator of ``rho r``, layer by layer.

Layout (shared by every method, see ``keras_rank.layers``): M is (a x b),
a = input side, b = output side. A Dense kernel is M; a Conv2D kernel K
(dh, dw, c, n) has ``M = reshape(K, (dh dw c, n))`` (conv scheme 1), the
transpose of the paper's K x (C dH dW) matrix, with the same singular values.
A layer's units (the paper's groups theta_l^n, one per output unit or
filter, each of P = a parameters) are the COLUMNS of M. Biases are not part
of M and are never shrunk.

Every SVD is ``tf.linalg.svd``: eagerly through
``keras_rank.core.linalg.robust_svd`` (float64 retry when the float32 SVD
raises or returns NaN/inf); inside ``tf.function`` directly, in the matrix's
dtype (the retry branches on eager values). The hyperparameters are Python
numbers (or eager scalars), checked when called; the matrix may be a tensor,
a variable or an array.
"""

import math
import numbers
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from keras_rank.core.errors import ConfigError
from keras_rank.core.linalg import robust_svd

Matrix = tf.Tensor | tf.Variable | np.ndarray


class SingularValueProx(NamedTuple):
    """The nuclear-norm proximal step of one matrix.

    Attributes:
        matrix: ``U diag((s - t)_+) V^T``, the matrix's shape and dtype.
        singular_values: ``(s - t)_+``, descending: the result's singular
            values, so its nuclear norm and rank need no second SVD.
    """

    matrix: tf.Tensor
    singular_values: tf.Tensor


class GroupLassoProx(NamedTuple):
    """The sparse group Lasso proximal step of one matrix.

    Attributes:
        matrix: The shrunk matrix, same shape and dtype.
        zero_units: bool (b,): True for the columns (units) that are exactly
            zero in ``matrix``.
    """

    matrix: tf.Tensor
    zero_units: tf.Tensor


class CompressionProx(NamedTuple):
    """Both proximal steps of section 3.1, one after the other.

    Attributes:
        matrix: The result, same shape and dtype as the input.
        singular_values: The result's singular values, descending.
        zero_units: bool (b,): the units the group Lasso step zeroed; they
            are exactly zero in ``matrix``.
    """

    matrix: tf.Tensor
    singular_values: tf.Tensor
    zero_units: tf.Tensor


def _check_number(name: str, value: object, upper: float = math.inf) -> float:
    """Returns ``value`` as a float if it is a finite number in ``[0, upper]``.

    A Python or NumPy real (not a bool), or an eager scalar tensor.
    """
    number = math.nan
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        number = float(value)
    elif tf.is_tensor(value) and value.shape.rank == 0 and tf.executing_eagerly():
        number = float(value)
    if not (math.isfinite(number) and 0 <= number <= upper):
        allowed = f"{name} >= 0" if upper == math.inf else f"{name} in [0, {upper:g}]"
        raise ConfigError(
            f"Expected {allowed}, a finite number. Received: {name}={value!r}"
        )
    return number


def _check_matrix(matrix: Matrix) -> tf.Tensor:
    """Returns ``matrix`` as a tensor if it is a 2-D float matrix."""
    matrix = tf.convert_to_tensor(matrix)
    if matrix.shape.rank != 2 or not matrix.dtype.is_floating:
        raise ConfigError(
            "Expected matrix: a 2-D float tensor (inputs x units). Received: "
            f"matrix of shape {matrix.shape} and dtype {matrix.dtype.name}"
        )
    return matrix


def soft_threshold_singular_values(
    matrix: Matrix, threshold: float, name: str | None = None
) -> SingularValueProx:
    """Returns the proximal operator of ``t ||.||_*`` at ``matrix`` (eq. 3-4).

    With the thin SVD ``M = U diag(s) V^T`` (Cai et al. 2010),

        argmin_X 1/2 ||X - M||_F^2 + t ||X||_* = U diag((s - t)_+) V^T.

    In proximal training ``t = rho * tau``, rho the learning rate. Computed in
    the matrix's dtype (float32 stays float32). ``t = 0`` returns the matrix
    itself, not its rounded reconstruction.

    Args:
        matrix: 2-D float (a x b), any a, b.
        threshold: ``t >= 0``.
        name: The layer's name, for the error of a failed SVD.

    Returns:
        A :class:`SingularValueProx`: the result and its singular values.

    Raises:
        ConfigError: ``threshold < 0`` or ``matrix`` not a 2-D float matrix.
        keras_rank.core.linalg.SVDError: The SVD failed in the matrix's dtype and in
            float64 (eager only).
    """
    matrix = _check_matrix(matrix)
    threshold = _check_number("threshold", threshold)
    if tf.executing_eagerly():
        s, u, v = robust_svd(matrix, name)
    else:
        s, u, v = tf.linalg.svd(matrix, full_matrices=False)
    if threshold == 0:
        return SingularValueProx(matrix, s)
    shrunk = tf.nn.relu(s - tf.constant(threshold, s.dtype))
    return SingularValueProx(tf.matmul(u * shrunk, v, transpose_b=True), shrunk)


def sparse_group_lasso_prox(
    matrix: Matrix, step_size: float, group_lambda: float, alpha: float
) -> GroupLassoProx:
    """Returns the proximal operator of rho times eq. (5)'s group Lasso term.

    Solves, with rho = ``step_size``, lam = ``group_lambda`` and P = a (the
    size of a unit, a column m_n of M),

        argmin_X 1/2 ||X - M||_F^2
                 + rho ((1 - alpha) lam sqrt(P) sum_n ||x_n||_2
                        + alpha lam ||X||_1)

    in closed form (Simon et al. 2013), column by column: first the
    element-wise soft threshold ``z = sign(m) (|m| - rho alpha lam)_+``, then
    the group shrinkage ``x = (1 - rho (1 - alpha) lam sqrt(P) / ||z||_2)_+ z``.
    A unit vanishes exactly when ``||z||_2 <= rho (1 - alpha) lam sqrt(P)``.
    ``alpha = 0`` is the group Lasso, ``alpha = 1`` the Lasso (element-wise
    soft threshold), ``lam = 0`` or ``rho = 0`` return the matrix unchanged.

    Args:
        matrix: 2-D float (a x b), units as columns.
        step_size: rho >= 0, the learning rate of the last gradient steps.
        group_lambda: lam >= 0, the layer's lambda_l.
        alpha: In [0, 1]: weight of element sparsity against group sparsity.

    Returns:
        A :class:`GroupLassoProx`: the result and its zero units.

    Raises:
        ConfigError: An argument outside the allowed values, or ``matrix``
            not a 2-D float matrix.
    """
    matrix = _check_matrix(matrix)
    step_size = _check_number("step_size", step_size)
    group_lambda = _check_number("group_lambda", group_lambda)
    alpha = _check_number("alpha", alpha, upper=1.0)
    element_threshold = tf.constant(step_size * alpha * group_lambda, matrix.dtype)
    unit_size = tf.cast(tf.shape(matrix)[0], matrix.dtype)
    group_threshold = step_size * (1 - alpha) * group_lambda * tf.sqrt(unit_size)
    soft = tf.sign(matrix) * tf.nn.relu(tf.abs(matrix) - element_threshold)
    # A zero column has norm 0 and stays 0 whatever its scale: divide_no_nan.
    scale = tf.nn.relu(
        1 - tf.math.divide_no_nan(group_threshold, tf.norm(soft, axis=0))
    )
    shrunk = soft * scale
    return GroupLassoProx(shrunk, zero_units(shrunk))


def low_rank_group_sparse_prox(
    matrix: Matrix,
    step_size: float,
    tau: float,
    group_lambda: float,
    alpha: float,
    name: str | None = None,
) -> CompressionProx:
    """Returns one incremental proximal step of the whole eq. (5) regulariser.

    Incremental proximal descent (Bertsekas 2011, the paper's [39]) applies
    the proximal operators of the terms one after the other:

        X = S_{rho tau}(G(M)),

    G = :func:`sparse_group_lasso_prox` (step rho), S =
    :func:`soft_threshold_singular_values` (threshold rho tau).

    Why this order: the singular-value step keeps every zero column of G(M)
    zero, so the result has both the zeroed units and the low rank. Proof:
    ``S_t(M) = H M`` with ``H = sum_{s_i > 0} ((s_i - t)_+ / s_i) u_i u_i^T``,
    so ``M e_n = 0`` gives ``S_t(M) e_n = H M e_n = 0``. (In floating point
    that column is of the order of the rounding error; it is set to exactly
    zero here.) The other order would break the low rank: the element-wise
    soft threshold of G does not keep a matrix's rank. Element-wise zeros of
    G(M) are not kept by the SVD step; only whole zero columns (and rows)
    are.

    Args:
        matrix: 2-D float (a x b), units as columns.
        step_size: rho >= 0, the learning rate of the last gradient steps.
        tau: The layer's nuclear-norm weight, >= 0.
        group_lambda: The layer's lambda_l, >= 0 (0: no group Lasso).
        alpha: In [0, 1], element against group sparsity.
        name: The layer's name, for the error of a failed SVD.

    Returns:
        A :class:`CompressionProx`. ``zero_units`` are the units the group
        Lasso zeroed; a unit zeroed only by the singular-value step (its
        column in the span of the dropped singular vectors) is not in it,
        :func:`zero_units` with a tolerance finds those.

    Raises:
        ConfigError: An argument outside the allowed values, or ``matrix``
            not a 2-D float matrix.
        keras_rank.core.linalg.SVDError: The SVD failed (eager only).
    """
    tau = _check_number("tau", tau)
    sparse = sparse_group_lasso_prox(matrix, step_size, group_lambda, alpha)
    low_rank = soft_threshold_singular_values(sparse.matrix, step_size * tau, name)
    result = tf.where(
        sparse.zero_units, tf.zeros_like(low_rank.matrix), low_rank.matrix
    )
    return CompressionProx(result, low_rank.singular_values, sparse.zero_units)


def nuclear_norm(singular_values: tf.Tensor) -> tf.Tensor:
    """Returns ``||M||_* = sum_i s_i`` from M's singular values.

    Args:
        singular_values: 1-D, non-negative (as returned by the proxes).
    """
    return tf.reduce_sum(singular_values)


def effective_rank(singular_values: tf.Tensor, rtol: float) -> tf.Tensor:
    """Returns how many singular values exceed ``rtol`` times the largest.

    ``#{i : s_i > rtol * max_j s_j}``, an int32 scalar. Strictly greater:
    with ``rtol = 0`` it counts the non-zero singular values, and the zero
    matrix has rank 0. The proxes return exact zeros for the singular values
    they removed, so any small ``rtol`` counts the same for their output.

    Args:
        singular_values: 1-D, non-negative.
        rtol: Relative tolerance, >= 0 (``ProxConfig.rank_tolerance``).

    Raises:
        ConfigError: ``rtol < 0``.
    """
    rtol = _check_number("rtol", rtol)
    singular_values = tf.convert_to_tensor(singular_values)
    cutoff = tf.constant(rtol, singular_values.dtype) * tf.reduce_max(singular_values)
    return tf.math.count_nonzero(singular_values > cutoff, dtype=tf.int32)


def zero_units(matrix: Matrix, atol: float = 0.0) -> tf.Tensor:
    """Returns which units (columns of M) have ``||m_n||_2 <= atol``.

    Args:
        matrix: 2-D float (a x b), units as columns.
        atol: Absolute tolerance on the column norm, >= 0. The default 0
            finds the columns that are exactly zero (as the proxes leave the
            units they remove).

    Returns:
        bool (b,).

    Raises:
        ConfigError: ``atol < 0`` or ``matrix`` not a 2-D float matrix.
    """
    matrix = _check_matrix(matrix)
    atol = _check_number("atol", atol)
    return tf.norm(matrix, axis=0) <= tf.constant(atol, matrix.dtype)
