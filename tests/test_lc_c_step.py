"""Tests of keras_rank.lc.c_step against NumPy brute force and closed forms."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_rank.core import linalg
from keras_rank.core.errors import ConfigError
from keras_rank.core.linalg import round_up_to_multiple
from keras_rank.lc import c_step as lc

# (name, shape, alpha, dense_cost). Storage: a dense a x b matrix stores a b
# numbers, a rank-r factorization r (a + b). FLOPs of two conv layers
# (docs/methods/lc.md), where dense is cheaper than the high ranks:
# scheme 1, kernel (3, 3, 2, 7), 5 x 5 output: M is 18 x 7, alpha = 25 (18 + 7),
# dense = 25 * 18 * 7 (ranks >= 6 stay dense);
# scheme 2, kernel (3, 3, 2, 5), 6 x 6 valid input, 4 x 4 output: M is 6 x 15,
# alpha = 4 * 6 * 3 * 2 + 4 * 4 * 3 * 5, dense = 16 * 3 * 3 * 2 * 5 (ranks >= 4).
COSTS = [
    ("storage_tall", (12, 5), 17.0, 60.0),
    ("storage_wide", (4, 11), 15.0, 44.0),
    ("storage_square", (8, 8), 16.0, 64.0),
    ("flops_conv_scheme1", (18, 7), 625.0, 3150.0),
    ("flops_conv_scheme2", (6, 15), 384.0, 1440.0),
]
# lam in units of ||M||^2 / dense_cost, so every regime shows up.
LAM_SCALES = [0.0, 0.003, 0.03, 0.1, 0.3, 1.0, 3.0, 1e6]
MUS = [0.5, 2.0]


def random_matrix(shape, seed):
    rng = np.random.default_rng(seed)
    # Spread singular values so the optimal rank moves with lambda.
    u, _ = np.linalg.qr(rng.normal(size=(shape[0], shape[0])))
    v, _ = np.linalg.qr(rng.normal(size=(shape[1], shape[1])))
    k = min(shape)
    s = np.exp(-np.linspace(0.0, 3.0, k)) * rng.uniform(0.5, 2.0, size=k)
    return (u[:, :k] * np.sort(s)[::-1] @ v[:, :k].T).astype(np.float32)


def brute_force_objectives(matrix, alpha, dense_cost, lam, mu, min_rank=0, offset=0.0):
    """Objective of eq. 4 for every rank r >= min_rank, from NumPy truncations.

    A rank r costs ``offset + alpha r`` (the latency criterion's fixed cost).

    A rank not cheaper than dense keeps the full matrix (cost dense_cost,
    error 0). The dense option itself needs no entry: when rank R is cheaper
    than dense, rank R (error 0) beats it. Returns {rank: objective}.
    """
    m = matrix.astype(np.float64)
    u, s, vt = np.linalg.svd(m, full_matrices=False)
    objectives = {}
    for r in range(min_rank, len(s) + 1):
        if offset + alpha * r >= dense_cost:
            cost, error = dense_cost, 0.0
        else:
            cost = offset + alpha * r
            error = np.linalg.norm(m - (u[:, :r] * s[:r]) @ vt[:r]) ** 2
        objectives[r] = lam * cost + mu / 2 * error
    return objectives


@pytest.mark.parametrize("name,shape,alpha,dense_cost", COSTS)
@pytest.mark.parametrize("min_rank", [0, 1])
@pytest.mark.parametrize("offset_share", [0.0, 0.1])
def test_c_step_rank_beats_every_other_rank_brute_force(
    name, shape, alpha, dense_cost, min_rank, offset_share
):
    offset = offset_share * dense_cost
    ranks_seen = set()
    for seed in range(2):
        matrix = random_matrix(shape, seed)
        norm2 = float(np.sum(matrix.astype(np.float64) ** 2))
        for lam_scale in LAM_SCALES:
            for mu in MUS:
                lam = lam_scale * mu * norm2 / dense_cost
                result = lc.c_step(
                    matrix, alpha, dense_cost, lam, mu, min_rank, offset=offset
                )
                brute = brute_force_objectives(
                    matrix, alpha, dense_cost, lam, mu, min_rank, offset
                )
                best = min(brute.values())
                tol = 1e-5 * (1.0 + abs(best))
                assert result.objective <= best + tol, (lam, mu, result, brute)
                assert brute[result.rank] == pytest.approx(result.objective, abs=tol)
                ranks_seen.add((result.rank, result.dense))
    # The grid reaches full rank, the smallest rank and ranks in between.
    full = min(shape)
    assert (full, offset + alpha * full >= dense_cost) in ranks_seen
    assert (min_rank, False) in ranks_seen
    assert len(ranks_seen) >= 3


@pytest.mark.parametrize("multiple", [1, 3, 8])
def test_round_up_to_multiple_gives_the_least_rank_select_rank_allows(multiple):
    full = 10
    values = np.linspace(10.0, 1.0, full)
    allowed = {
        lc.select_rank(
            values, 1.0, 1e9, 1e9, 1.0, min_rank=r, rank_multiple=multiple
        ).rank
        for r in range(full + 1)
    }
    for rank in range(full + 1):
        rounded = round_up_to_multiple(rank, full, multiple)
        assert rounded == min(r for r in allowed | {full} if r >= rank), rank
    assert round_up_to_multiple(np.array([0, 1, 9]), full, 8).tolist() == [0, 8, 10]


@pytest.mark.parametrize("name,shape,alpha,dense_cost", COSTS)
@pytest.mark.parametrize("min_rank", [0, 1])
def test_c_step_with_a_rank_multiple_beats_every_allowed_rank(
    name, shape, alpha, dense_cost, min_rank
):
    full, ranks_seen = min(shape), set()
    for lam_scale in LAM_SCALES:
        for mu in MUS:
            matrix = random_matrix(shape, 0)
            norm2 = float(np.sum(matrix.astype(np.float64) ** 2))
            lam = lam_scale * mu * norm2 / dense_cost
            result = lc.c_step(
                matrix, alpha, dense_cost, lam, mu, min_rank, rank_multiple=3
            )
            brute = {
                r: objective
                for r, objective in brute_force_objectives(
                    matrix, alpha, dense_cost, lam, mu, min_rank
                ).items()
                if r % 3 == 0 or r == full
            }
            best = min(brute.values())
            tol = 1e-5 * (1.0 + abs(best))
            assert result.rank in brute, (result.rank, sorted(brute))
            assert result.objective <= best + tol
            assert brute[result.rank] == pytest.approx(result.objective, abs=tol)
            ranks_seen.add(result.rank)
    # Both rank 3 and the full rank are chosen somewhere, unless rank 3
    # already costs what dense costs.
    assert len(ranks_seen) >= 2 or alpha * 3 >= dense_cost


@pytest.mark.parametrize("name,shape,alpha,dense_cost", COSTS)
def test_c_step_theta_has_selected_rank_and_error(name, shape, alpha, dense_cost):
    matrix = random_matrix(shape, 3)
    norm2 = float(np.sum(matrix.astype(np.float64) ** 2))
    for lam_scale in LAM_SCALES:
        lam = lam_scale * norm2 / dense_cost
        result = lc.c_step(matrix, alpha, dense_cost, lam, 1.0)
        theta = result.theta.numpy()
        assert theta.shape == matrix.shape and theta.dtype == np.float32
        if result.dense:
            np.testing.assert_array_equal(theta, matrix)
            assert result.error == 0.0 and result.cost == dense_cost
            continue
        assert np.linalg.matrix_rank(theta, tol=1e-4) == result.rank
        error = np.sum((matrix.astype(np.float64) - theta) ** 2)
        assert error == pytest.approx(result.error, rel=1e-4, abs=1e-6)
        assert result.cost == alpha * result.rank


def test_c_step_lambda_zero_keeps_full_rank_and_huge_lambda_min_rank():
    matrix = random_matrix((9, 6), 4)
    # Storage costs: rank 6 costs 90 > 54, so lambda = 0 keeps the matrix.
    kept = lc.c_step(matrix, 15.0, 54.0, 0.0, 1.0)
    assert (kept.rank, kept.dense) == (6, True)
    # With a dense cost above alpha R, rank R itself is the answer.
    full = lc.c_step(matrix, 15.0, 1000.0, 0.0, 1.0)
    assert (full.rank, full.dense) == (6, False)
    np.testing.assert_allclose(full.theta.numpy(), matrix, atol=1e-5)
    for min_rank in (0, 2):
        low = lc.c_step(matrix, 15.0, 54.0, 1e9, 1.0, min_rank=min_rank)
        assert (low.rank, low.dense) == (min_rank, False)


def test_select_rank_ties_go_to_the_lower_cost():
    s = np.array([2.0, 1.0])  # tails 5, 1, 0 (exact in float)
    # mu = 2: objective(r) = lam * r + tail(r); lam = 4 ties r = 0 and r = 1.
    choice = lc.select_rank(s, alpha=1.0, dense_cost=100.0, lam=4.0, mu=2.0)
    assert (choice.rank, choice.dense, choice.objective) == (0, False, 5.0)
    # lam = 0: rank 2 (error 0) ties dense (error 0): the cheaper rank wins.
    choice = lc.select_rank(s, alpha=1.0, dense_cost=2.0 + 1e-9, lam=0.0, mu=2.0)
    assert (choice.rank, choice.dense) == (2, False)
    # A rank whose cost equals dense_cost is dense.
    choice = lc.select_rank(s, alpha=1.0, dense_cost=2.0, lam=0.0, mu=2.0)
    assert (choice.rank, choice.dense, choice.cost) == (2, True, 2.0)


def test_collapse_mu_separates_rank_zero_from_rank_one():
    matrix = random_matrix((10, 7), 5)
    alpha, lam = 17.0, 0.02
    s1 = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)[0]
    result = lc.c_step(matrix, alpha, 1e9, lam, 1.0)
    assert result.collapse_mu == pytest.approx(2 * lam * alpha / s1**2, rel=1e-5)
    below = lc.c_step(matrix, alpha, 1e9, lam, 0.999 * result.collapse_mu)
    above = lc.c_step(matrix, alpha, 1e9, lam, 1.001 * result.collapse_mu)
    assert below.rank == 0
    assert above.rank >= 1
    assert lc.collapse_mu(0.0, alpha, lam) == math.inf


def test_truncation_errors_match_eckart_young():
    s = np.array([3.0, 2.0, 0.5, 0.0])
    np.testing.assert_allclose(lc.truncation_errors(s), [13.25, 4.25, 0.25, 0.0, 0.0])


def test_rank_cost_and_stays_dense():
    np.testing.assert_array_equal(
        lc.rank_cost(np.arange(5), 10.0, 25.0), [0.0, 10.0, 20.0, 25.0, 25.0]
    )
    assert not linalg.stays_dense(2, 10.0, 25.0)
    assert linalg.stays_dense(3, 10.0, 30.0)
    # A fixed cost of the low-rank form moves the break-even rank down.
    np.testing.assert_array_equal(
        lc.rank_cost(np.arange(4), 10.0, 25.0, offset=6.0), [6.0, 16.0, 25.0, 25.0]
    )
    assert linalg.stays_dense(2, 10.0, 25.0, offset=6.0)
    assert not linalg.stays_dense(1, 10.0, 25.0, offset=6.0)


def test_an_offset_keeps_a_layer_dense_that_a_linear_cost_would_split():
    s = np.array([2.0, 1.0, 0.1])  # rank 2 drops 0.01 of the squared norm
    # Linear cost: rank 2 (cost 2) beats dense (cost 3) at lam = 0.5, mu = 2.
    linear = lc.select_rank(s, alpha=1.0, dense_cost=3.0, lam=0.5, mu=2.0)
    assert (linear.rank, linear.dense) == (2, False)
    # Two ops' fixed cost of 1.5: every rank >= 2 costs as much as dense.
    timed = lc.select_rank(s, alpha=1.0, dense_cost=3.0, lam=0.5, mu=2.0, offset=1.5)
    assert (timed.rank, timed.dense, timed.cost) == (3, True, 3.0)
    # A rank whose cost with the offset equals dense_cost is dense.
    s = np.array([2.0, 1.0])
    tied = lc.select_rank(s, alpha=1.0, dense_cost=3.0, lam=0.0, mu=2.0, offset=1.0)
    assert (tied.rank, tied.dense) == (2, True)


# ------------------------------------------------------------------ robust_svd


def fake_svd(real, fail_in):
    """Returns an SVD that fails in the dtypes of `fail_in`, and its call log."""
    calls = []

    def svd(tensor, full_matrices=True, compute_uv=True, name=None):
        calls.append(tensor.dtype)
        if tensor.dtype not in fail_in:
            return real(tensor, full_matrices=full_matrices, compute_uv=compute_uv)
        if fail_in[tensor.dtype] == "raise":
            raise tf.errors.InvalidArgumentError(None, None, "SVD did not converge")
        s, u, v = real(tensor, full_matrices=full_matrices, compute_uv=compute_uv)
        return s * np.nan, u, v

    return svd, calls


@pytest.mark.parametrize("failure", ["nan", "raise"])
def test_robust_svd_retries_in_float64(monkeypatch, failure):
    matrix = random_matrix((7, 4), 6)
    svd, calls = fake_svd(tf.linalg.svd, {tf.float32: failure})
    monkeypatch.setattr(lc.tf.linalg, "svd", svd)
    s, u, v = linalg.robust_svd(matrix, name="dense_1")
    assert calls == [tf.float32, tf.float64]
    assert s.dtype == u.dtype == v.dtype == tf.float32
    np.testing.assert_allclose(
        s.numpy(), np.linalg.svd(matrix, compute_uv=False), rtol=1e-5
    )
    rebuilt = (u.numpy() * s.numpy()) @ v.numpy().T
    np.testing.assert_allclose(rebuilt, matrix, atol=1e-5)


def test_robust_svd_failing_twice_raises_svd_error_naming_the_layer(monkeypatch):
    svd, calls = fake_svd(tf.linalg.svd, {tf.float32: "nan", tf.float64: "raise"})
    monkeypatch.setattr(lc.tf.linalg, "svd", svd)
    with pytest.raises(linalg.SVDError, match="layer 'conv_2'.*float32 and in float64"):
        lc.c_step(random_matrix((5, 5), 7), 10.0, 25.0, 0.1, 1.0, name="conv_2")
    assert calls == [tf.float32, tf.float64]


def test_robust_svd_of_a_nan_matrix_says_so():
    matrix = random_matrix((4, 3), 8)
    matrix[1, 2] = np.nan
    with pytest.raises(linalg.SVDError, match="has NaN/inf entries"):
        linalg.robust_svd(matrix)


def test_robust_svd_refuses_a_vector():
    with pytest.raises(ConfigError, match="Expected a 2-D float matrix"):
        linalg.robust_svd(np.ones(3, np.float32))


# ------------------------------------------- penalty, multipliers, schedule


def test_penalty_gradient_is_mu_times_the_shifted_gap():
    rng = np.random.default_rng(9)
    w = tf.Variable(rng.normal(size=(6, 4)).astype(np.float32))
    theta = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    beta = tf.constant(rng.normal(size=(6, 4)).astype(np.float32))
    mu = 0.7
    with tf.GradientTape() as tape:
        value = lc.penalty(w, theta, beta, mu)
    gradient = tape.gradient(value, w)
    shifted = w.numpy() - theta.numpy() - beta.numpy() / mu
    np.testing.assert_allclose(gradient.numpy(), mu * shifted, rtol=1e-5, atol=1e-6)
    assert float(value) == pytest.approx(mu / 2 * np.sum(shifted**2), rel=1e-5)
    compiled = tf.function(lc.penalty)(w, theta, beta, tf.constant(mu))
    assert float(compiled) == pytest.approx(float(value), rel=1e-6)


def test_penalty_is_zero_at_theta_plus_beta_over_mu():
    rng = np.random.default_rng(10)
    theta = rng.normal(size=(3, 5))
    beta = rng.normal(size=(3, 5))
    w = tf.constant(theta + beta / 0.25)
    assert float(lc.penalty(w, tf.constant(theta), tf.constant(beta), 0.25)) == (
        pytest.approx(0.0, abs=1e-20)
    )


def test_multiplier_update_matches_formula():
    rng = np.random.default_rng(11)
    beta, w, theta = (rng.normal(size=(4, 3)).astype(np.float32) for _ in range(3))
    got = lc.multiplier_update(tf.constant(beta), w, theta, 1.5)
    np.testing.assert_allclose(got.numpy(), beta - 1.5 * (w - theta), rtol=1e-6)


def test_mu_schedule_is_geometric():
    assert [lc.mu_schedule(1e-3, 1.25, j) for j in range(4)] == pytest.approx(
        [1e-3, 1.25e-3, 1.5625e-3, 1.953125e-3]
    )


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"alpha": 0.0}, "Expected alpha > 0. Received: alpha=0.0"),
        ({"dense_cost": -1.0}, "Expected dense_cost > 0. Received: dense_cost=-1.0"),
        ({"lam": -0.5}, "Expected lambda >= 0. Received: lambda=-0.5"),
        ({"mu": 0.0}, "Expected mu > 0. Received: mu=0.0"),
        ({"min_rank": 4}, "Expected min_rank in [0, 3]. Received: min_rank=4"),
        ({"min_rank": -1}, "Expected min_rank in [0, 3]. Received: min_rank=-1"),
        ({"offset": -1.0}, "Expected offset >= 0. Received: offset=-1.0"),
        ({"offset": math.inf}, "Expected offset >= 0. Received: offset=inf"),
        (
            {"rank_multiple": 0},
            "Expected rank_multiple an integer >= 1. Received: rank_multiple=0",
        ),
    ],
)
def test_select_rank_bad_input(kwargs, message):
    args = {"alpha": 1.0, "dense_cost": 5.0, "lam": 0.1, "mu": 1.0} | kwargs
    with pytest.raises(ConfigError) as error:
        lc.select_rank(np.array([3.0, 2.0, 1.0]), **args)
    assert str(error.value) == message
