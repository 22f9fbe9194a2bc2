"""Tests of keras_rank.lc.baselines (section 4.1's rank heuristics)."""

import itertools

import keras
import numpy as np
import pytest

from keras_rank.core.errors import ConfigError
from keras_rank.core.linalg import stays_dense
from keras_rank.layers.rank_specs import layer_specs, low_rank_model
from keras_rank.lc import baselines
from keras_rank.lc.c_step import rank_cost
from keras_rank.lc.run import baseline_choices


def random_spectra(rng, sizes):
    return [np.sort(rng.gamma(1.0, size=n))[::-1] for n in sizes]


def total_cost(ranks, alphas, dense_costs, offsets=None):
    offsets = offsets or [0.0] * len(ranks)
    return sum(
        float(rank_cost(r, a, d, o))
        for r, a, d, o in zip(ranks, alphas, dense_costs, offsets, strict=True)
    )


def kept_value(spectra, ranks, alphas, dense_costs):
    """Sum of kept singular values; a layer that stays dense keeps them all."""
    return sum(
        s.sum() if stays_dense(r, a, d) else s[:r].sum()
        for s, r, a, d in zip(spectra, ranks, alphas, dense_costs, strict=True)
    )


def random_layers(seed):
    """Three layers with storage-like costs: dense_cost < alpha * R."""
    rng = np.random.default_rng(seed)
    shapes = [tuple(rng.integers(2, 9, size=2)) for _ in range(3)]
    spectra = random_spectra(rng, [min(a, b) for a, b in shapes])
    alphas = [float(a + b) for a, b in shapes]
    dense_costs = [float(a * b) for a, b in shapes]
    return spectra, alphas, dense_costs


# ------------------------------------------------------------ baseline 1


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("offset_share", [0.0, 0.2])
@pytest.mark.parametrize("multiple", [1, 3])
def test_greedy_respects_budget_and_cannot_grow_any_layer(seed, offset_share, multiple):
    spectra, alphas, dense_costs = random_layers(seed)
    offsets = [offset_share * cost for cost in dense_costs]
    smallest = [min(multiple, len(s)) for s in spectra]
    least = total_cost(smallest, alphas, dense_costs, offsets)
    full = sum(dense_costs)
    for budget in np.linspace(least, full, 7):
        ranks = baselines.greedy_ranks_under_budget(
            spectra, alphas, dense_costs, budget, offsets, multiple
        )
        spent = total_cost(ranks, alphas, dense_costs, offsets)
        assert spent <= budget + 1e-9
        for k, (s, r) in enumerate(zip(spectra, ranks, strict=True)):
            assert 1 <= r <= len(s)
            assert r % multiple == 0 or r == len(s)
            if r < len(s):  # its next rank must not fit
                grown = list(ranks)
                grown[k] = min(r + multiple, len(s))
                assert total_cost(grown, alphas, dense_costs, offsets) > budget
    assert ranks == [len(s) for s in spectra]  # the full budget keeps everything


@pytest.mark.parametrize("seed", range(6))
def test_greedy_equals_brute_force_with_equal_costs_per_rank(seed):
    # Equal alphas and no dense cap: keeping the largest singular values is
    # optimal, so the greedy must find the brute-force maximum.
    rng = np.random.default_rng(100 + seed)
    spectra = random_spectra(rng, [4, 3, 5])
    alphas, dense_costs = [2.0] * 3, [1e6] * 3
    for budget in [6.0, 9.0, 14.0, 20.0, 24.0]:
        ranks = baselines.greedy_ranks_under_budget(
            spectra, alphas, dense_costs, budget
        )
        best_value, best_ranks = max(
            (kept_value(spectra, r, alphas, dense_costs), list(r))
            for r in itertools.product(*(range(1, len(s) + 1) for s in spectra))
            if total_cost(r, alphas, dense_costs) <= budget
        )
        assert ranks == best_ranks
        assert kept_value(spectra, ranks, alphas, dense_costs) == best_value


def test_greedy_takes_the_largest_singular_value_not_value_per_cost():
    # A's next value 4 costs 10, B's next three values 3 cost 1 each. The
    # paper's rule takes 4 (budget 21 - 11 = 10 left: exactly A's next
    # rank), after which B cannot grow; value per cost would give [1, 4].
    spectra = [np.array([5.0, 4.0]), np.array([5.0, 3.0, 3.0, 3.0])]
    ranks = baselines.greedy_ranks_under_budget(spectra, [10.0, 1.0], [1e3] * 2, 21)
    assert ranks == [2, 1]


def test_greedy_layer_turning_dense_keeps_every_singular_value():
    spectra = [np.array([4.0, 3.0, 2.0, 1.0])]
    # alpha 10, dense 25: rank 3 costs min(30, 25), the layer stays full.
    assert baselines.greedy_ranks_under_budget(spectra, [10.0], [25.0], 25) == [4]
    assert baselines.greedy_ranks_under_budget(spectra, [10.0], [25.0], 24) == [2]


def test_greedy_budget_below_rank_one_everywhere_is_refused():
    spectra = [np.array([2.0, 1.0]), np.array([3.0, 1.0])]
    with pytest.raises(ConfigError) as error:
        baselines.greedy_ranks_under_budget(spectra, [4.0, 5.0], [8.0, 9.0], 8.5)
    assert str(error.value) == (
        "Expected budget >= 9 (every layer at rank 1). Received: budget=8.5"
    )


# ------------------------------------------------------------ baseline 2


def numpy_energy_rank(matrix, p):
    """Lowest r with ||W - W_r||_F <= (1 - p) ||W||_F, from NumPy truncations."""
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    norm = np.linalg.norm(matrix)
    for r in range(len(s)):
        if np.linalg.norm(matrix - (u[:, :r] * s[:r]) @ vt[:r]) <= (1 - p) * norm:
            return r
    return len(s)  # error 0


def test_energy_ranks_equal_the_numpy_rule():
    rng = np.random.default_rng(0)
    matrices = [
        rng.normal(size=shape) * np.exp(-np.arange(shape[1]) / 3.0)
        for shape in [(9, 6), (5, 12), (10, 10)]
    ]
    spectra = [np.linalg.svd(m, compute_uv=False) for m in matrices]
    for p in [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.99, 1.0]:
        want = [numpy_energy_rank(m, p) for m in matrices]
        assert baselines.energy_ranks(spectra, p) == want, p
    assert baselines.energy_ranks(spectra, 0.0) == [0, 0, 0]
    assert baselines.energy_ranks(spectra, 1.0) == [6, 5, 10]
    assert baselines.energy_ranks(spectra, 1e-9) == [1, 1, 1]


def test_energy_ranks_of_rank_deficient_and_zero_matrices():
    spectra = [np.array([2.0, 1.0, 0.0, 0.0]), np.zeros(3)]
    assert baselines.energy_ranks(spectra, 1.0) == [2, 0]
    assert baselines.energy_ranks(spectra, 0.5) == [1, 0]


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), "0.9"])
def test_energy_ranks_refuses_p_outside_unit_interval(p):
    with pytest.raises(ConfigError, match=r"Expected p in \[0, 1\]. Received: p="):
        baselines.energy_ranks([np.array([1.0])], p)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("offset_share", [0.0, 0.2])
@pytest.mark.parametrize("multiple", [1, 3])
def test_energy_threshold_for_budget_fits_is_best_and_monotone(
    seed, offset_share, multiple
):
    spectra, alphas, dense_costs = random_layers(seed)
    offsets = [offset_share * cost for cost in dense_costs]
    grid = np.linspace(1e-6, 1.0, 2001)
    grid_costs = [
        total_cost(
            baselines.energy_ranks(spectra, p, multiple), alphas, dense_costs, offsets
        )
        for p in grid
    ]
    smallest = [min(multiple, len(s)) for s in spectra]
    least = total_cost(smallest, alphas, dense_costs, offsets)
    previous = None
    for budget in np.linspace(least, sum(dense_costs), 9):
        match = baselines.energy_threshold_for_budget(
            spectra, alphas, dense_costs, budget, offsets, multiple
        )
        assert match.cost <= budget
        assert match.cost == total_cost(match.ranks, alphas, dense_costs, offsets)
        assert baselines.energy_ranks(spectra, match.p, multiple) == match.ranks
        for r, s in zip(match.ranks, spectra, strict=True):
            assert r % multiple == 0 or r == len(s)
        # Closest to the budget: no p of a fine grid does better, and any
        # larger p exceeds it.
        assert match.cost >= max(c for c in grid_costs if c <= budget)
        if match.p < 1.0:
            above = baselines.energy_ranks(
                spectra, np.nextafter(match.p, 2.0), multiple
            )
            assert total_cost(above, alphas, dense_costs, offsets) > budget
        if previous is not None:
            assert match.p >= previous.p and match.cost >= previous.cost
            assert all(a >= b for a, b in zip(match.ranks, previous.ranks, strict=True))
        previous = match
    assert previous.p == 1.0 and previous.ranks == [len(s) for s in spectra]


def test_energy_threshold_for_budget_below_rank_one_is_refused():
    spectra = [np.array([2.0, 1.0]), np.array([3.0, 1.0])]
    with pytest.raises(ConfigError, match="Expected budget >= 9 "):
        baselines.energy_threshold_for_budget(spectra, [4.0, 5.0], [8.0, 9.0], 8.0)
    # With a multiple, the least is every layer at that rank (or its full rank).
    spectra = [np.arange(6.0, 0.0, -1.0), np.array([3.0, 1.0])]
    with pytest.raises(
        ConfigError,
        match=r"Expected budget >= 18 \(the smallest p > 0: rank 4 per layer or "
        r"its full rank\)",
    ):
        baselines.energy_threshold_for_budget(
            spectra, [2.0, 5.0], [12.0, 10.0], 17.0, multiple=4
        )


def test_baselines_refuse_mismatched_layer_lists():
    with pytest.raises(
        ConfigError, match="one alpha, one dense_cost and one offset per layer"
    ):
        baselines.greedy_ranks_under_budget([np.ones(2)] * 2, [1.0], [4.0, 4.0], 10)
    with pytest.raises(ConfigError, match="Expected alpha > 0"):
        baselines.energy_threshold_for_budget([np.ones(2)], [0.0], [4.0], 10)
    with pytest.raises(ConfigError, match=r"singular_values\[1\] of shape \(2, 2\)"):
        baselines.energy_ranks([np.ones(2), np.ones((2, 2))], 0.5)


@pytest.mark.parametrize("which", [1, 2])
@pytest.mark.parametrize("multiple", [1, 4])
def test_baseline_choices_of_a_keras_net_fit_the_budget_and_compute_the_truncation(
    which, multiple
):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10)(keras.layers.Dense(40, activation="relu")(x))
    model = keras.Model(inputs, outputs)
    specs = layer_specs(model, "flops", 1)
    budget = 0.4 * sum(spec.dense_cost for spec in specs)
    choices = baseline_choices(model, specs, budget, which, multiple)
    ranks = [choices[spec.name].rank for spec in specs]
    args = (
        [spec.alpha for spec in specs],
        [spec.dense_cost for spec in specs],
        budget,
        None,
        multiple,
    )
    spectra = [
        np.linalg.svd(np.asarray(spec.matrix(model.get_layer(spec.name).kernel)))[1]
        for spec in specs
    ]
    if which == 1:
        expected = baselines.greedy_ranks_under_budget(spectra, *args)
    else:
        expected = baselines.energy_threshold_for_budget(spectra, *args).ranks
    assert ranks == expected
    assert total_cost(ranks, *args[:2]) <= budget
    for rank, s in zip(ranks, spectra, strict=True):
        assert rank % multiple == 0 or rank == len(s)
    assert min(ranks) >= 1 and any(not choice.dense for choice in choices.values())
    # The low-rank net holds each layer's truncated SVD of the reference.
    compact = low_rank_model(model, specs, choices)
    for spec in specs:
        choice = choices[spec.name]
        matrix = np.asarray(spec.matrix(model.get_layer(spec.name).kernel))
        np.testing.assert_array_equal(choice.matrix, matrix)
        u, s, vt = np.linalg.svd(matrix.astype(np.float64), full_matrices=False)
        r = choice.rank
        truncated = (u[:, :r] * s[:r]) @ vt[:r]
        layer = compact.get_layer(spec.name)
        if choice.dense:
            got = np.asarray(spec.matrix(layer.kernel))
        else:
            got = np.asarray(layer.u) @ np.asarray(layer.v).T
        np.testing.assert_allclose(got, truncated, atol=1e-5)


def test_baseline_choices_refuse_an_unknown_baseline():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    with pytest.raises(ConfigError, match="which=1 or 2"):
        baseline_choices(model, layer_specs(model, "flops", 1), 100.0, 3)
