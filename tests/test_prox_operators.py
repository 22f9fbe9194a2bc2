"""Tests of keras_rank.prox.operators against NumPy closed forms and argmins."""

import keras
import numpy as np
import pytest
import scipy.optimize
import tensorflow as tf

from keras_rank.core import layer_matrices
from keras_rank.core.errors import ConfigError
from keras_rank.prox import operators as ops

SHAPES = [(5, 5), (3, 7), (8, 4)]  # a == b, a < b, a > b
PERTURBATION_SCALES = [1e-4, 1e-3, 1e-2, 1e-1, 1.0]


def random_matrix(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).normal(size=shape).astype(dtype)


def numpy_singular_value_threshold(matrix, threshold):
    u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
    shrunk = np.maximum(s - threshold, 0.0)
    return (u * shrunk) @ vt, shrunk


def numpy_sparse_group_lasso(matrix, step_size, group_lambda, alpha):
    soft = np.sign(matrix) * np.maximum(
        np.abs(matrix) - step_size * alpha * group_lambda, 0
    )
    group_threshold = step_size * (1 - alpha) * group_lambda * np.sqrt(matrix.shape[0])
    norms = np.linalg.norm(soft, axis=0)
    scale = np.maximum(1 - group_threshold / np.where(norms > 0, norms, 1.0), 0.0)
    return soft * np.where(norms > 0, scale, 0.0)


def nuclear_objective(x, matrix, threshold):
    """1/2 ||X - M||_F^2 + t ||X||_*."""
    return 0.5 * np.sum((x - matrix) ** 2) + threshold * np.sum(
        np.linalg.svd(x, compute_uv=False)
    )


def group_lasso_objective(x, matrix, step_size, group_lambda, alpha):
    """1/2 ||X - M||_F^2 + rho ((1-alpha) lam sqrt(P) sum ||x_n|| + alpha lam |X|_1)."""
    groups = np.sqrt(matrix.shape[0]) * np.sum(np.linalg.norm(x, axis=0))
    penalty = (1 - alpha) * group_lambda * groups + alpha * group_lambda * np.sum(
        np.abs(x)
    )
    return 0.5 * np.sum((x - matrix) ** 2) + step_size * penalty


def assert_no_perturbation_does_better(objective, x, seed, directions=None, count=200):
    """Random perturbations of x over several scales never lower the objective.

    Half of them are Gaussian; with ``directions = (u, v)`` the other half are
    ``u diag(r) v^T``, r Gaussian: they only move singular values, which a
    Gaussian perturbation, dominated by the penalty of the new directions,
    hardly tests.
    """
    rng = np.random.default_rng(seed)
    best = objective(x)
    for i in range(count):
        scale = PERTURBATION_SCALES[i % len(PERTURBATION_SCALES)]
        if directions is not None and i % 2:
            u, v = directions
            step = (u * rng.normal(size=u.shape[1])) @ v.T
        else:
            step = rng.normal(size=x.shape)
        perturbed = objective(x + scale * step)
        assert perturbed >= best - 1e-12, (scale, perturbed, best)


def median_singular_value(matrix):
    return float(np.median(np.linalg.svd(matrix, compute_uv=False)))


# ------------------------------------------------- soft_threshold_singular_values


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("shape", SHAPES)
def test_singular_value_threshold_equals_numpy(shape, dtype, tolerance):
    matrix = random_matrix(shape, 1, dtype)
    threshold = median_singular_value(matrix)  # about half the values vanish
    result = ops.soft_threshold_singular_values(matrix, threshold)
    expected, expected_s = numpy_singular_value_threshold(matrix, threshold)
    assert result.matrix.dtype == result.singular_values.dtype == dtype
    np.testing.assert_allclose(result.matrix.numpy(), expected, atol=tolerance)
    np.testing.assert_allclose(
        result.singular_values.numpy(), expected_s, atol=tolerance
    )
    assert 0 < np.count_nonzero(expected_s) < min(shape)


@pytest.mark.parametrize("shape", SHAPES)
def test_singular_value_threshold_is_the_argmin_of_its_objective(shape):
    matrix = random_matrix(shape, 2)
    threshold = median_singular_value(matrix)
    x = ops.soft_threshold_singular_values(matrix, threshold).matrix.numpy()
    u, _, vt = np.linalg.svd(matrix, full_matrices=False)
    assert_no_perturbation_does_better(
        lambda y: nuclear_objective(y, matrix, threshold), x, 3, (u, vt.T)
    )


@pytest.mark.parametrize("shape", SHAPES)
def test_singular_value_threshold_zero_returns_the_matrix(shape):
    matrix = random_matrix(shape, 4, np.float32)
    result = ops.soft_threshold_singular_values(matrix, 0.0)
    np.testing.assert_array_equal(result.matrix.numpy(), matrix)
    np.testing.assert_allclose(
        result.singular_values.numpy(),
        np.linalg.svd(matrix, compute_uv=False),
        rtol=1e-5,
    )


def test_singular_value_threshold_above_every_value_gives_zero():
    matrix = random_matrix((4, 6), 5)
    top = np.linalg.svd(matrix, compute_uv=False)[0]
    result = ops.soft_threshold_singular_values(matrix, top)
    np.testing.assert_array_equal(result.singular_values.numpy(), np.zeros(4))
    np.testing.assert_array_equal(result.matrix.numpy(), np.zeros((4, 6)))


def test_singular_value_threshold_in_tf_function_and_on_variables_matches_eager():
    matrix = random_matrix((6, 4), 6, np.float32)
    eager = ops.soft_threshold_singular_values(matrix, 0.5)
    compiled = tf.function(lambda m: ops.soft_threshold_singular_values(m, 0.5))
    for value in (tf.constant(matrix), tf.Variable(matrix), keras.Variable(matrix)):
        for result in (compiled(value), ops.soft_threshold_singular_values(value, 0.5)):
            np.testing.assert_allclose(
                result.matrix.numpy(), eager.matrix.numpy(), atol=1e-6
            )
            np.testing.assert_allclose(
                result.singular_values.numpy(), eager.singular_values.numpy(), atol=1e-6
            )


@pytest.mark.parametrize(
    "step_size",
    [np.float32(0.5), tf.constant(0.5), tf.Variable(0.5), keras.Variable(0.5)],
)
def test_hyperparameters_may_be_numpy_or_eager_scalars(step_size):
    matrix = random_matrix((6, 4), 20, np.float32)
    expected = ops.low_rank_group_sparse_prox(matrix, 0.5, 1.0, 0.8, 0.2)
    result = ops.low_rank_group_sparse_prox(matrix, step_size, 1.0, 0.8, 0.2)
    np.testing.assert_array_equal(result.matrix.numpy(), expected.matrix.numpy())


def test_singular_value_threshold_retries_a_failed_float32_svd_in_float64(monkeypatch):
    matrix = random_matrix((5, 3), 7, np.float32)
    real_svd = tf.linalg.svd
    calls = []

    def svd(tensor, full_matrices=True, compute_uv=True, name=None):
        calls.append(tensor.dtype)
        if tensor.dtype == tf.float32:
            raise tf.errors.InvalidArgumentError(None, None, "SVD did not converge")
        return real_svd(tensor, full_matrices=full_matrices, compute_uv=compute_uv)

    monkeypatch.setattr(tf.linalg, "svd", svd)
    result = ops.soft_threshold_singular_values(matrix, 0.3)
    assert calls == [tf.float32, tf.float64]
    assert result.matrix.dtype == tf.float32
    expected, _ = numpy_singular_value_threshold(matrix, 0.3)
    np.testing.assert_allclose(result.matrix.numpy(), expected, atol=1e-5)


# --------------------------------------------------------- sparse_group_lasso_prox

# The 3 x 2 case: column 0 survives with its small last entry zeroed (element
# threshold 0.02), column 1 vanishes (||soft|| = 0.036 <= group threshold 0.139).
SMALL = np.array([[1.0, 0.05], [-0.5, -0.02], [0.01, 0.04]])
SMALL_ARGS = {"step_size": 0.5, "group_lambda": 0.2, "alpha": 0.2}


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.7, 1.0])
@pytest.mark.parametrize("shape", SHAPES)
def test_sparse_group_lasso_equals_its_numpy_closed_form(shape, alpha):
    matrix = random_matrix(shape, 8, np.float32)
    result = ops.sparse_group_lasso_prox(matrix, 0.5, 0.6, alpha)
    expected = numpy_sparse_group_lasso(matrix.astype(np.float64), 0.5, 0.6, alpha)
    assert result.matrix.dtype == tf.float32
    np.testing.assert_allclose(result.matrix.numpy(), expected, atol=1e-6)
    expected_zero = ~np.any(expected, axis=0)
    np.testing.assert_array_equal(result.zero_units.numpy(), expected_zero)


def test_sparse_group_lasso_zeroes_the_small_unit_and_the_small_entry():
    result = ops.sparse_group_lasso_prox(SMALL, **SMALL_ARGS)
    np.testing.assert_array_equal(result.zero_units.numpy(), [False, True])
    np.testing.assert_array_equal(result.matrix.numpy()[:, 1], 0.0)
    assert result.matrix.numpy()[2, 0] == 0.0
    assert np.all(result.matrix.numpy()[:2, 0] != 0.0)


def minimize_sparse_group_lasso(matrix, step_size, group_lambda, alpha):
    """The argmin found by Powell's method, started from the matrix."""
    solution = scipy.optimize.minimize(
        lambda x: group_lasso_objective(
            x.reshape(matrix.shape), matrix, step_size, group_lambda, alpha
        ),
        matrix.ravel(),
        method="Powell",
        options={"xtol": 1e-12, "ftol": 1e-15, "maxfev": 100_000},
    )
    assert solution.success, solution.message
    return solution.x.reshape(matrix.shape)


@pytest.mark.parametrize("alpha", [0.0, 0.2, 1.0])
def test_sparse_group_lasso_equals_a_numerical_argmin(alpha):
    args = {**SMALL_ARGS, "alpha": alpha}
    result = ops.sparse_group_lasso_prox(SMALL, **args).matrix.numpy()
    np.testing.assert_allclose(
        result, minimize_sparse_group_lasso(SMALL, **args), atol=1e-5
    )
    assert_no_perturbation_does_better(
        lambda y: group_lasso_objective(y, SMALL, **args), result, seed=9
    )


@pytest.mark.parametrize("alpha", [0.0, 0.2, 0.5, 1.0])
def test_sparse_group_lasso_satisfies_the_subgradient_optimality_conditions(alpha):
    """0 in X - M + rho (1-alpha) lam sqrt(P) d||x_n|| + rho alpha lam d|X|_1."""
    matrix = random_matrix((6, 8), 10) * np.linspace(0.1, 2.0, 8)  # small to big units
    step_size, group_lambda = 0.5, 0.8
    x = ops.sparse_group_lasso_prox(
        matrix, step_size, group_lambda, alpha
    ).matrix.numpy()
    group_threshold = step_size * (1 - alpha) * group_lambda * np.sqrt(6)
    element_threshold = step_size * alpha * group_lambda
    kept = np.any(x, axis=0)
    if alpha < 1:
        assert 0 < kept.sum() < 8  # both cases below are exercised
    for n in range(8):
        m, xn = matrix[:, n], x[:, n]
        if kept[n]:
            on = xn != 0
            gradient = group_threshold * xn / np.linalg.norm(xn)
            residual = m - xn - gradient - element_threshold * np.sign(xn)
            np.testing.assert_allclose(residual[on], 0.0, atol=1e-5)
            assert np.all(np.abs(m[~on]) <= element_threshold + 1e-12)
        else:
            soft = np.sign(m) * np.maximum(np.abs(m) - element_threshold, 0)
            assert np.linalg.norm(soft) <= group_threshold + 1e-12


def test_sparse_group_lasso_alpha_zero_is_the_group_lasso():
    matrix = random_matrix((4, 5), 11)
    x = ops.sparse_group_lasso_prox(matrix, 0.5, 0.5, 0.0).matrix.numpy()
    norms = np.linalg.norm(matrix, axis=0)
    expected = matrix * np.maximum(1 - 0.5 * 0.5 * 2.0 / norms, 0)  # sqrt(P) = 2
    np.testing.assert_allclose(x, expected, atol=1e-12)


def test_sparse_group_lasso_alpha_one_is_the_element_wise_soft_threshold():
    matrix = random_matrix((4, 5), 12)
    x = ops.sparse_group_lasso_prox(matrix, 0.5, 0.6, 1.0).matrix.numpy()
    expected = np.sign(matrix) * np.maximum(np.abs(matrix) - 0.3, 0)
    np.testing.assert_allclose(x, expected, atol=1e-12)


def test_sparse_group_lasso_without_penalty_returns_the_matrix_exactly():
    matrix = random_matrix((4, 5), 13, np.float32)
    np.testing.assert_array_equal(
        ops.sparse_group_lasso_prox(matrix, 0.5, 0.0, 0.2).matrix.numpy(), matrix
    )


# ---------------------------------------------------------------- composition


@pytest.mark.parametrize("shape", SHAPES)
def test_singular_value_threshold_keeps_zero_columns_zero(shape):
    matrix = random_matrix(shape, 14)
    matrix[:, [0, 2]] = 0.0  # rank deficient: zero singular values exist
    threshold = median_singular_value(matrix)
    x = ops.soft_threshold_singular_values(matrix, threshold).matrix.numpy()
    np.testing.assert_allclose(x[:, [0, 2]], 0.0, atol=1e-12)
    assert np.any(x)


@pytest.mark.parametrize("shape", SHAPES)
def test_composition_is_group_lasso_then_singular_value_threshold(shape):
    matrix = random_matrix(shape, 15, np.float32) * np.linspace(0.1, 2.0, shape[1])
    step_size, tau, group_lambda, alpha = 0.5, 1.0, 0.8, 0.2
    result = ops.low_rank_group_sparse_prox(matrix, step_size, tau, group_lambda, alpha)
    sparse = numpy_sparse_group_lasso(
        matrix.astype(np.float64), step_size, group_lambda, alpha
    )
    expected, expected_s = numpy_singular_value_threshold(sparse, step_size * tau)
    zero = ~np.any(sparse, axis=0)
    assert zero.any()
    np.testing.assert_allclose(result.matrix.numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(result.singular_values.numpy(), expected_s, atol=1e-5)
    np.testing.assert_array_equal(result.zero_units.numpy(), zero)
    np.testing.assert_array_equal(result.matrix.numpy()[:, zero], 0.0)  # exactly


def test_composition_in_tf_function_matches_eager():
    matrix = random_matrix((6, 4), 16, np.float32)
    args = (0.5, 1.0, 0.8, 0.2)
    eager = ops.low_rank_group_sparse_prox(matrix, *args)
    compiled = tf.function(lambda m: ops.low_rank_group_sparse_prox(m, *args))(matrix)
    for got, want in zip(compiled, eager, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "kernel_shape, matrix_shape", [((3, 3, 2, 4), (18, 4)), ((7, 5), (7, 5))]
)
def test_kernel_matrix_prox_kernel_round_trip(kernel_shape, matrix_shape):
    kernel = random_matrix(kernel_shape, 17, np.float32)
    matrix = layer_matrices.kernel_as_matrix(kernel)
    assert tuple(matrix.shape) == matrix_shape
    identity = ops.low_rank_group_sparse_prox(matrix, 0.5, 0.0, 0.0, 0.2).matrix
    np.testing.assert_array_equal(
        layer_matrices.kernel_from_matrix(identity, kernel_shape), kernel
    )
    shrunk = ops.low_rank_group_sparse_prox(matrix, 0.5, 2.0, 0.5, 0.2).matrix
    restored = layer_matrices.kernel_from_matrix(shrunk, kernel_shape)
    assert tuple(restored.shape) == kernel_shape


def test_conv_units_are_filters():
    kernel = random_matrix((3, 3, 2, 4), 18, np.float32)
    kernel[..., 1] = 0.0
    units = ops.zero_units(layer_matrices.kernel_as_matrix(kernel)).numpy()
    np.testing.assert_array_equal(units, [False, True, False, False])


# -------------------------------------------------------------------- logging


def test_nuclear_norm_is_the_sum_of_singular_values():
    matrix = random_matrix((5, 3), 19)
    s = ops.soft_threshold_singular_values(matrix, 0.0).singular_values
    np.testing.assert_allclose(
        ops.nuclear_norm(s).numpy(), np.linalg.norm(matrix, ord="nuc"), rtol=1e-12
    )


@pytest.mark.parametrize(
    "values, rtol, expected",
    [
        ([3.0, 1e-2, 1e-5, 0.0], 1e-3, 2),
        ([3.0, 1e-2, 1e-5, 0.0], 0.0, 3),
        ([3.0, 3e-3, 1e-5, 0.0], 1e-3, 1),  # 3e-3 is not above 1e-3 * 3
        ([0.0, 0.0], 0.0, 0),
    ],
)
def test_effective_rank_counts_values_above_rtol_times_the_largest(
    values, rtol, expected
):
    assert int(ops.effective_rank(tf.constant(values), rtol)) == expected


def test_zero_units_uses_the_column_norm():
    matrix = np.array([[0.0, 3e-4, 1.0], [0.0, 4e-4, 0.0]])  # norms 0, 5e-4, 1
    np.testing.assert_array_equal(ops.zero_units(matrix).numpy(), [True, False, False])
    np.testing.assert_array_equal(
        ops.zero_units(matrix, atol=5e-4).numpy(), [True, True, False]
    )


# ---------------------------------------------------------------------- errors

MATRIX = np.ones((3, 2), np.float32)
BAD_CALLS = {
    "threshold": lambda: ops.soft_threshold_singular_values(MATRIX, -0.1),
    "step_size": lambda: ops.sparse_group_lasso_prox(MATRIX, -1.0, 0.1, 0.2),
    "group_lambda": lambda: ops.sparse_group_lasso_prox(MATRIX, 0.1, -0.1, 0.2),
    "alpha": lambda: ops.sparse_group_lasso_prox(MATRIX, 0.1, 0.1, 1.5),
    "tau": lambda: ops.low_rank_group_sparse_prox(MATRIX, 0.1, -1.0, 0.1, 0.2),
    "rtol": lambda: ops.effective_rank(tf.ones(2), -1e-3),
    "atol": lambda: ops.zero_units(MATRIX, float("nan")),
}


@pytest.mark.parametrize("name", BAD_CALLS)
def test_bad_number_raises_config_error_naming_it(name):
    with pytest.raises(ConfigError, match=f"Expected {name} .*Received: {name}="):
        BAD_CALLS[name]()


@pytest.mark.parametrize("alpha", [-0.1, 1.1, True, "0.2"])
def test_alpha_outside_zero_one_is_refused(alpha):
    with pytest.raises(ConfigError, match=r"alpha in \[0, 1\]"):
        ops.low_rank_group_sparse_prox(MATRIX, 0.1, 1.0, 0.1, alpha)


@pytest.mark.parametrize(
    "matrix",
    [np.ones((2, 3, 4), np.float32), np.ones(3, np.float32), np.ones((2, 2), np.int32)],
)
def test_matrix_not_2d_float_raises_config_error(matrix):
    for call in (
        lambda: ops.soft_threshold_singular_values(matrix, 0.1),
        lambda: ops.sparse_group_lasso_prox(matrix, 0.1, 0.1, 0.2),
        lambda: ops.zero_units(matrix),
    ):
        with pytest.raises(ConfigError, match="Expected matrix: a 2-D float"):
            call()


def test_kernel_that_cannot_be_reshaped_raises_config_error():
    with pytest.raises(ConfigError, match="Expected kernel: a Dense kernel"):
        layer_matrices.kernel_as_matrix(np.ones((2, 3, 4), np.float32))
    with pytest.raises(ConfigError, match="Expected kernel_shape"):
        layer_matrices.kernel_from_matrix(np.ones((2, 3), np.float32), (3, 2))
