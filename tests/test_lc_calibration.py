"""LC's lambda scale: the edge where the first C step still keeps every rank."""

import keras
import numpy as np
import pytest

from keras_rank import models
from keras_rank.layers.rank_specs import layer_specs
from keras_rank.lc.c_step import select_rank
from keras_rank.lc.calibration import (
    lambda_keeping_rank,
    lambda_meeting_cost,
    safe_lambda,
)

SPECTRUM = np.array([5.0, 3.0, 2.0, 1.0, 0.5, 0.1])


@pytest.mark.parametrize("rank", [1, 2, 3, 5])
def test_the_edge_is_where_the_c_step_drops_below_the_rank(rank):
    edge = lambda_keeping_rank(SPECTRUM, 10.0, 1000.0, 5e-4, rank)
    assert select_rank(SPECTRUM, 10.0, 1000.0, edge, 5e-4).rank >= rank
    assert select_rank(SPECTRUM, 10.0, 1000.0, edge * (1 + 1e-6), 5e-4).rank < rank


def test_the_edge_scales_with_the_weights_squared_and_inversely_with_cost():
    edge = lambda_keeping_rank(SPECTRUM, 10.0, 1000.0, 5e-4, 3)
    scaled = lambda_keeping_rank(3 * SPECTRUM, 10.0, 1000.0, 5e-4, 3)
    dearer = lambda_keeping_rank(SPECTRUM, 40.0, 4000.0, 5e-4, 3)
    assert scaled == pytest.approx(9 * edge, rel=1e-6)
    assert dearer == pytest.approx(edge / 4, rel=1e-6)


def test_a_layer_that_stays_dense_has_no_edge():
    # Rank 2 already costs as much as dense: the layer is dense or rank 1,
    # and dense (its full rank) wins while lambda is small.
    edge = lambda_keeping_rank(SPECTRUM[:2], 10.0, 15.0, 5e-4, 2)
    assert select_rank(SPECTRUM[:2], 10.0, 15.0, edge, 5e-4).dense
    assert lambda_keeping_rank(np.zeros(3), 1.0, 100.0, 5e-4, 1) == 0.0


def test_a_bad_rank_is_refused():
    with pytest.raises(ValueError, match=r"rank in \[1, 6\]"):
        lambda_keeping_rank(SPECTRUM, 1.0, 100.0, 5e-4, 7)


def _first_c_step_ranks(model, lam, mu0=5e-4):
    ranks = {}
    for spec in layer_specs(model, "flops", 1):
        matrix = spec.matrix(model.get_layer(spec.name).kernel)
        values = np.linalg.svd(keras.ops.convert_to_numpy(matrix), compute_uv=False)
        choice = select_rank(values, spec.alpha, spec.dense_cost, lam, mu0)
        ranks[spec.name] = (choice.rank, min(3, spec.max_rank))
    return ranks


@pytest.mark.parametrize("name", ["lenet300", "mlp", "lenet5"])
def test_at_the_safe_lambda_every_layer_keeps_three_ranks(name):
    keras.utils.set_random_seed(0)
    model = models.build_model(name, (28, 28, 1), 10)
    edge = safe_lambda(model, "flops", 1, 5e-4)["min"]
    # A relative margin of 1e-4: NumPy's SVD here, TensorFlow's in LC.
    below = _first_c_step_ranks(model, edge * (1 - 1e-4)).values()
    assert all(rank >= keep for rank, keep in below)
    above = _first_c_step_ranks(model, edge * (1 + 1e-4)).values()
    assert any(rank < keep for rank, keep in above)


def test_safe_lambda_scales_with_the_weights_squared():
    keras.utils.set_random_seed(0)
    model = models.build_model("lenet300", (28, 28, 1), 10)
    edge = safe_lambda(model, "flops", 1, 5e-4)["min"]
    model.set_weights([2 * weight for weight in model.get_weights()])
    scaled = safe_lambda(model, "flops", 1, 5e-4)["min"]
    assert scaled == pytest.approx(4 * edge, rel=1e-5)


def _c_step_cost(model, lam, mu, min_rank=1, rank_multiple=1):
    total = 0.0
    for spec in layer_specs(model, "flops", 1):
        matrix = spec.matrix(model.get_layer(spec.name).kernel)
        values = np.linalg.svd(keras.ops.convert_to_numpy(matrix), compute_uv=False)
        total += select_rank(
            values, spec.alpha, spec.dense_cost, lam, mu, min_rank, 0.0, rank_multiple
        ).cost
    return total


@pytest.mark.parametrize("fraction", [0.05, 0.25, 0.6])
@pytest.mark.parametrize("multiple", [1, 8])
def test_the_budget_lambda_is_the_smallest_meeting_the_cost(fraction, multiple):
    keras.utils.set_random_seed(0)
    model = models.build_model("lenet300", (28, 28, 1), 10)
    dense = sum(spec.dense_cost for spec in layer_specs(model, "flops", 1))
    lam = lambda_meeting_cost(model, "flops", 1, 2e-3, fraction, rank_multiple=multiple)
    # A relative margin of 1e-3: NumPy's SVD here, TensorFlow's in LC.
    above, below = lam * (1 + 1e-3), lam * (1 - 1e-3)
    assert _c_step_cost(model, above, 2e-3, 1, multiple) <= fraction * dense
    assert _c_step_cost(model, below, 2e-3, 1, multiple) > fraction * dense


def test_the_budget_lambda_grows_with_mu_and_falls_with_the_budget():
    keras.utils.set_random_seed(0)
    model = models.build_model("mlp", (28, 28, 1), 10)
    lam = lambda_meeting_cost(model, "flops", 1, 1e-3, 0.25)
    assert lambda_meeting_cost(model, "flops", 1, 4e-3, 0.25) == pytest.approx(
        4 * lam, rel=1e-4
    )
    assert lambda_meeting_cost(model, "flops", 1, 1e-3, 0.1) > lam


def test_an_unreachable_budget_gives_every_layer_its_lowest_rank():
    keras.utils.set_random_seed(0)
    model = models.build_model("lenet300", (28, 28, 1), 10)
    specs = layer_specs(model, "flops", 1)
    floor = sum(min(spec.alpha * 2, spec.dense_cost) for spec in specs)
    lam = lambda_meeting_cost(model, "flops", 1, 1e-3, 1e-6, min_rank=2)
    assert _c_step_cost(model, lam * (1 + 1e-3), 1e-3, min_rank=2) == floor
    # With ranks in multiples of 8, the lowest rank is 8.
    floor = sum(min(spec.alpha * 8, spec.dense_cost) for spec in specs)
    lam = lambda_meeting_cost(model, "flops", 1, 1e-3, 1e-6, rank_multiple=8)
    assert _c_step_cost(model, lam * (1 + 1e-3), 1e-3, 1, 8) == floor
    assert _c_step_cost(model, lam * (1 - 1e-3), 1e-3, 1, 8) > floor


def test_a_bad_fraction_is_refused():
    with pytest.raises(ValueError, match=r"fraction in \(0, 1\]"):
        lambda_meeting_cost(
            models.build_model("lenet300", (28, 28, 1), 10), "flops", 1, 1e-3, 0
        )
