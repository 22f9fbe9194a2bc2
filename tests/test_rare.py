"""Tests of keras_rank.dlra.rare against NumPy references."""

import numpy as np
import pytest
import tensorflow as tf

from keras_rank.dlra import rare

EPS = 1e-12


def np_abs_cos(u, v):
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    if nu == 0 or nv == 0:
        return 0.0
    return abs(float(u @ v) / (nu * nv))


def np_sin2(u, v):
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    return 1.0 - (u @ v) ** 2 / ((u @ u + EPS) * (v @ v + EPS))


def np_sin2_grad(u, v):
    """Analytic gradient of np_sin2 with respect to u and v."""
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    dot, uu, vv = u @ v, u @ u + EPS, v @ v + EPS
    du = -2 * dot * v / (uu * vv) + 2 * dot**2 * u / (uu**2 * vv)
    dv = -2 * dot * u / (uu * vv) + 2 * dot**2 * v / (uu * vv**2)
    return du, dv


def live_pairs(mask):
    live = np.flatnonzero(mask)
    return [(i, j) for a, i in enumerate(live) for j in live[a + 1 :]]


def np_rare(vectors, mask):
    """Returns (value, i, j) of the minimum squared sine over live pairs."""
    pairs = live_pairs(mask)
    if not pairs:
        return 0.0, None, None
    values = [np_sin2(vectors[i], vectors[j]) for i, j in pairs]
    best = int(np.argmin(values))
    return values[best], *pairs[best]


def random_vectors(seed, k=7, d=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(k, d)).astype(np.float32)


def test_squared_sine_random_pairs_match_numpy():
    rng = np.random.default_rng(0)
    u = rng.normal(size=(10, 6)).astype(np.float32)
    v = rng.normal(size=(10, 6)).astype(np.float32)
    got = rare.squared_sine(u, v).numpy()
    want = [np_sin2(a, b) for a, b in zip(u, v, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_squared_sine_parallel_and_opposite_are_zero():
    u = np.array([1.0, -2.0, 0.5], np.float32)
    for v in (3.0 * u, -0.25 * u):
        assert abs(float(rare.squared_sine(u, v))) < 1e-6


@pytest.mark.parametrize(
    "u, v",
    [
        ([0.0, 0.0, 0.0], [1.0, 2.0, 3.0]),
        ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0]),
        ([1.0, 2.0, 3.0], [2.0, 4.0, 6.0]),
        ([1.0, 2.0, 3.0], [-1.0, -2.0, -3.0]),
        ([1e-20, 0.0, 0.0], [1.0, 0.0, 0.0]),
    ],
)
def test_squared_sine_degenerate_vectors_value_and_gradient_finite(u, v):
    u = tf.Variable(np.array(u, np.float32))
    v = tf.Variable(np.array(v, np.float32))
    with tf.GradientTape() as tape:
        value = rare.squared_sine(u, v)
    grads = tape.gradient(value, [u, v])
    assert np.isfinite(value.numpy())
    for grad in grads:
        assert np.all(np.isfinite(grad.numpy()))


def test_pairwise_abs_cosine_matches_numpy_and_marks_dead_and_diagonal():
    vectors = random_vectors(1)
    mask = np.array([1, 1, 0, 1, 1, 0, 1], np.float32)
    got = rare.pairwise_abs_cosine(vectors, mask).numpy()
    assert got.shape == (7, 7)
    for i in range(7):
        for j in range(7):
            if i == j or mask[i] == 0 or mask[j] == 0:
                assert got[i, j] == -1.0
            else:
                assert got[i, j] == pytest.approx(
                    np_abs_cos(vectors[i], vectors[j]), abs=1e-6
                )
    np.testing.assert_array_equal(got, got.T)


def test_pairwise_abs_cosine_zero_vector_gives_zero_not_nan():
    vectors = np.array([[0.0, 0.0], [1.0, 2.0], [2.0, 4.0]], np.float32)
    got = rare.pairwise_abs_cosine(vectors, np.ones(3)).numpy()
    assert np.all(np.isfinite(got))
    assert got[0, 1] == 0.0 and got[0, 2] == 0.0
    assert got[1, 2] == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_most_parallel_pair_matches_brute_force(seed):
    vectors = random_vectors(seed, k=9, d=4)
    rng = np.random.default_rng(100 + seed)
    mask = (rng.uniform(size=9) > 0.3).astype(np.float32)
    mask[:2] = 1.0
    i, j, value = rare.most_parallel_pair(vectors, mask)
    pairs = live_pairs(mask)
    values = [np_abs_cos(vectors[a], vectors[b]) for a, b in pairs]
    best = int(np.argmax(values))
    assert (int(i), int(j)) == pairs[best]
    assert int(i) < int(j)
    assert float(value) == pytest.approx(values[best], abs=1e-6)


def test_most_parallel_pair_finds_opposite_pair():
    vectors = random_vectors(3, k=6, d=5)
    vectors[4] = -2.0 * vectors[1]
    i, j, value = rare.most_parallel_pair(vectors, np.ones(6))
    assert (int(i), int(j)) == (1, 4)
    assert float(value) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mask", [[0, 0, 0], [0, 1, 0]])
def test_most_parallel_pair_fewer_than_two_live_returns_minus_one(mask):
    vectors = random_vectors(4, k=3)
    i, j, value = rare.most_parallel_pair(vectors, np.array(mask, np.float32))
    assert float(value) == -1.0
    assert (int(i), int(j)) == (0, 0)


@pytest.mark.parametrize("seed", range(4))
def test_rare_value_matches_numpy_minimum(seed):
    vectors = random_vectors(seed, k=8, d=3)
    mask = np.ones(8, np.float32)
    mask[seed] = 0.0
    want, _, _ = np_rare(vectors, mask)
    assert float(rare.rare(vectors, mask)) == pytest.approx(want, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_rare_gradient_flows_through_minimising_pair_only(seed):
    vectors = random_vectors(10 + seed, k=6, d=4)
    mask = np.array([1, 1, 1, 0, 1, 1], np.float32)
    _, i, j = np_rare(vectors, mask)
    var = tf.Variable(vectors)
    with tf.GradientTape() as tape:
        value = rare.rare(var, mask)
    grad = tape.gradient(value, var).numpy()
    want = np.zeros_like(vectors, dtype=np.float64)
    want[i], want[j] = np_sin2_grad(vectors[i], vectors[j])
    np.testing.assert_allclose(grad, want, rtol=1e-4, atol=1e-6)


def test_rare_gradient_matches_finite_differences():
    vectors = random_vectors(20, k=5, d=3).astype(np.float64)
    mask = np.ones(5)
    var = tf.Variable(vectors.astype(np.float32))
    with tf.GradientTape() as tape:
        value = rare.rare(var, mask)
    grad = tape.gradient(value, var).numpy()
    step = 1e-6
    numeric = np.zeros_like(vectors)
    for idx in np.ndindex(vectors.shape):
        plus, minus = vectors.copy(), vectors.copy()
        plus[idx] += step
        minus[idx] -= step
        numeric[idx] = (np_rare(plus, mask)[0] - np_rare(minus, mask)[0]) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3, atol=1e-4)


def test_rare_respects_mask():
    vectors = random_vectors(5, k=5, d=6)
    vectors[3] = 1.5 * vectors[0]
    assert float(rare.rare(vectors, np.ones(5))) == pytest.approx(0.0, abs=1e-6)
    mask = np.array([1, 1, 1, 0, 1], np.float32)
    want, _, _ = np_rare(vectors, mask)
    got = float(rare.rare(vectors, mask))
    assert got == pytest.approx(want, abs=1e-6)
    assert got > 1e-3


def test_rare_opposite_pair_gives_zero_like_parallel_pair():
    base = random_vectors(6, k=4, d=5)
    parallel, opposite = base.copy(), base.copy()
    parallel[2] = 0.7 * base[1]
    opposite[2] = -0.7 * base[1]
    assert float(rare.rare(parallel, np.ones(4))) == pytest.approx(0.0, abs=1e-6)
    assert float(rare.rare(opposite, np.ones(4))) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("kind", ["zero", "parallel", "all_zero"])
def test_rare_degenerate_vectors_no_nan(kind):
    vectors = random_vectors(7, k=4, d=3)
    if kind == "zero":
        vectors[1] = 0.0
    elif kind == "parallel":
        vectors[2] = 2.0 * vectors[0]
    else:
        vectors[:] = 0.0
    var = tf.Variable(vectors)
    with tf.GradientTape() as tape:
        value = rare.rare(var, np.ones(4))
    grad = tape.gradient(value, var)
    assert np.isfinite(value.numpy())
    assert np.all(np.isfinite(grad.numpy()))


@pytest.mark.parametrize("mask", [[0, 0, 0], [0, 0, 1]])
def test_rare_fewer_than_two_live_is_zero_with_zero_gradient(mask):
    var = tf.Variable(random_vectors(8, k=3))
    with tf.GradientTape() as tape:
        value = rare.rare(var, np.array(mask, np.float32))
    grad = tape.gradient(value, var)
    assert float(value) == 0.0
    np.testing.assert_array_equal(grad.numpy(), 0.0)


def test_rare_inside_tf_function_matches_eager():
    vectors = random_vectors(9, k=6, d=4)
    mask = tf.constant([1, 1, 0, 1, 1, 1], tf.float32)
    compiled = tf.function(rare.rare)
    assert float(compiled(vectors, mask)) == pytest.approx(
        float(rare.rare(vectors, mask)), abs=1e-7
    )
    i, j, _ = tf.function(rare.most_parallel_pair)(vectors, mask)
    assert i.dtype == tf.int32 and j.dtype == tf.int32


def np_euclidean_gap(u, v):
    u = np.asarray(u, np.float64)
    v = np.asarray(v, np.float64)
    c = -1.0 if u @ v < 0 else 1.0
    return np.linalg.norm(np.linalg.norm(v) / np.linalg.norm(u) * u - c * v)


def test_euclidean_gap_random_pairs_match_numpy():
    rng = np.random.default_rng(11)
    for _ in range(10):
        u = rng.normal(size=5).astype(np.float32)
        v = rng.normal(size=5).astype(np.float32)
        got = float(rare.euclidean_gap(u, v))
        assert got == pytest.approx(np_euclidean_gap(u, v), rel=1e-5)


def test_euclidean_gap_parallel_and_opposite_scaled_vectors_are_zero():
    u = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    for factor in (4.0, -4.0, 0.1, -0.1):
        assert float(rare.euclidean_gap(u, factor * u)) == pytest.approx(0.0, abs=1e-5)


def test_euclidean_gap_opposite_noisy_vectors_match_numpy():
    u = np.array([1.0, -2.0, 0.5, 3.0], np.float32)
    v = -3.0 * u + np.array([0.1, 0.0, -0.2, 0.05], np.float32)
    got = float(rare.euclidean_gap(u, v))
    assert got == pytest.approx(np_euclidean_gap(u, v), rel=1e-5)
    assert got > 0.1


def test_euclidean_gap_orthogonal_uses_plus_sign():
    u = np.array([1.0, 0.0], np.float32)
    v = np.array([0.0, 2.0], np.float32)
    assert float(rare.euclidean_gap(u, v)) == pytest.approx(np.sqrt(8.0), rel=1e-6)


def test_euclidean_gap_zero_u_is_norm_of_v():
    v = np.array([3.0, 4.0], np.float32)
    assert float(rare.euclidean_gap(np.zeros(2, np.float32), v)) == pytest.approx(5.0)


def test_pair_statistics_match_squared_sine_and_euclidean_gap():
    rng = np.random.default_rng(3)
    u = rng.standard_normal((6, 9)).astype(np.float32)
    v = rng.standard_normal((6, 9)).astype(np.float32)
    v[0] = -2.5 * u[0] + 1e-3 * v[0]  # nearly opposite
    v[1] = 0.3 * u[1]  # parallel
    sin2, gap, distance = rare.pair_statistics(
        np.sum(u * u, 1), np.sum(v * v, 1), np.sum(u * v, 1)
    )
    np.testing.assert_allclose(sin2, rare.squared_sine(u, v), atol=1e-6)
    cos = np.sum(u * v, 1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
    np.testing.assert_allclose(gap, 1 - np.abs(cos), atol=1e-6)
    want = np.array([np_euclidean_gap(a, b) for a, b in zip(u, v, strict=True)])
    # float32 resolves 1 - |cos| to ~6e-8, so D_euc to ~3.5e-4 |v|: far below
    # the fusion threshold's scale.
    assert np.all(np.abs(distance - want) <= 1e-3 * np.linalg.norm(v, axis=1))
    assert np.all(np.abs(distance[2:] - want[2:]) <= 1e-5 * want[2:])
