"""Pruning criteria (frame potential, magnitude, random) and physical pruning."""

import itertools
import math

import keras
import numpy as np
import pytest

from keras_rank.analysis.pruning import (
    PruningCurve,
    check_counts,
    prune_units,
    pruning_curves,
)
from keras_rank.analysis.pruning_criteria import (
    CRITERIA,
    frame_potential,
    frame_potential_contributions,
    pruning_order,
)
from keras_rank.analysis.units import normalized_rows
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import unit_matrix

L = keras.layers


# ------------------------------------------------------------ criteria
def test_frame_potential_equals_the_closed_form_on_small_matrices():
    # Orthogonal rows: X = I, FP = m. Two parallel rows and one orthogonal:
    # X = [[1,1,0],[1,1,0],[0,0,1]], FP = 5. Rows at 60 degrees: cos = 1/2.
    assert frame_potential(np.eye(3) * [2.0, 5.0, 0.1]) == pytest.approx(3.0)
    parallel = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]])
    assert frame_potential(parallel) == pytest.approx(5.0)
    sixty = np.array([[1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    assert frame_potential(sixty) == pytest.approx(2 + 2 * 0.25)
    np.testing.assert_allclose(frame_potential_contributions(parallel), [2.0, 2.0, 1.0])


def test_frame_potential_is_the_sum_over_pairs_and_invariant_to_row_scaling():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(7, 5))
    direct = sum(
        (np.dot(a, b) / np.linalg.norm(a) / np.linalg.norm(b)) ** 2
        for a, b in itertools.product(matrix, matrix)
    )
    assert frame_potential(matrix) == pytest.approx(direct)
    scaled = matrix * rng.uniform(0.01, 100.0, size=(7, 1))
    assert frame_potential(scaled) == pytest.approx(frame_potential(matrix))
    np.testing.assert_allclose(
        frame_potential_contributions(scaled), frame_potential_contributions(matrix)
    )
    np.testing.assert_allclose(np.linalg.norm(normalized_rows(scaled), axis=1), 1.0)


def test_a_zero_row_is_orthogonal_to_every_other_unit():
    matrix = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    assert frame_potential_contributions(matrix)[1] == pytest.approx(1.0)


def _brute_force_greedy(matrix, remove_largest):
    """Greedy by recomputing every contribution from scratch at every step."""
    remaining, order = list(range(len(matrix))), []
    while remaining:
        contributions = frame_potential_contributions(matrix[remaining])
        pick = np.argmax(contributions) if remove_largest else np.argmin(contributions)
        order.append(remaining.pop(int(pick)))
    return order


@pytest.mark.parametrize("criterion", ["max_frame_potential", "min_frame_potential"])
def test_frame_potential_orders_are_greedy_over_the_remaining_units(criterion):
    rng = np.random.default_rng(1)
    # Clustered units: the greedy choice changes as units go.
    matrix = np.repeat(rng.normal(size=(3, 6)), 4, axis=0) + 0.3 * rng.normal(
        size=(12, 6)
    )
    expected = _brute_force_greedy(matrix, criterion == "min_frame_potential")
    assert pruning_order(matrix, criterion).tolist() == expected


def test_max_frame_potential_keeps_the_largest_potential_at_each_step():
    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(6, 4))
    first = pruning_order(matrix, "max_frame_potential")[0]
    potentials = [frame_potential(np.delete(matrix, i, axis=0)) for i in range(6)]
    assert first == int(np.argmax(potentials))
    first = pruning_order(matrix, "min_frame_potential")[0]
    assert first == int(np.argmin(potentials))


def test_magnitude_orders_and_random_orders():
    matrix = np.diag([3.0, 1.0, 2.0, 0.5]) @ np.ones((4, 2))
    assert pruning_order(matrix, "max_magnitude").tolist() == [3, 1, 2, 0]
    assert pruning_order(matrix, "min_magnitude").tolist() == [0, 2, 1, 3]
    first, again = (pruning_order(matrix, "random", seed=5) for _ in range(2))
    assert sorted(first) == [0, 1, 2, 3] and first.tolist() == again.tolist()
    others = {tuple(pruning_order(np.ones((8, 2)), "random", seed=s)) for s in range(4)}
    assert len(others) > 1


def test_criteria_errors_name_the_argument():
    with pytest.raises(ConfigError, match="criterion in"):
        pruning_order(np.ones((3, 2)), "largest")
    with pytest.raises(ConfigError, match="matrix"):
        frame_potential(np.ones(3))


# ------------------------------------------------------------ physical pruning
def _randomized(model, seed=0):
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(
                [
                    rng.normal(size=w.shape).astype(np.float32) * 0.3
                    for w in layer.weights
                ]
            )
    return model


def _mlp():
    inputs = keras.Input((6,))
    x = L.Dense(8, activation="relu", name="a")(inputs)
    x = L.Dropout(0.2)(x)
    x = L.Dense(5, activation="tanh", name="b")(x)
    outputs = L.Dense(3, activation="softmax", name="out")(x)
    return _randomized(keras.Model(inputs, outputs))


def _convnet():
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(4, 3, activation="relu", name="c1")(inputs)
    x = L.MaxPooling2D()(x)
    x = L.Conv2D(5, 2, activation="relu", name="c2")(x)
    x = L.Flatten()(x)
    outputs = L.Dense(3, name="out")(x)
    return _randomized(keras.Model(inputs, outputs))


def _zero_outgoing(model, layer, units):
    """The original model with the units' outgoing weights zeroed."""
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    successor = {"a": "b", "b": "out", "c1": "c2", "c2": "out"}[layer]
    kernel, bias = copy.get_layer(successor).get_weights()
    if layer == "c2":  # Flatten: channel n is every coordinate p * C + n.
        channels = model.get_layer("c2").kernel.shape[-1]
        rows = [
            p * channels + n for p in range(kernel.shape[0] // channels) for n in units
        ]
        kernel[rows, :] = 0.0
    else:
        kernel[..., units, :] = 0.0
    copy.get_layer(successor).set_weights([kernel, bias])
    return copy


@pytest.mark.parametrize(
    "build, layer, units",
    [
        (_mlp, "a", [0, 5, 6]),
        (_mlp, "b", [4]),
        (_convnet, "c1", [1, 2]),
        (_convnet, "c2", [0, 3]),
    ],
)
def test_pruned_model_computes_the_original_with_outgoing_weights_zeroed(
    build, layer, units
):
    model = build()
    inputs = np.random.default_rng(3).normal(size=(4, *model.input_shape[1:]))
    pruned = prune_units(model, layer, units)
    width = model.get_layer(layer).kernel.shape[-1]
    assert pruned.get_layer(layer).kernel.shape[-1] == width - len(units)
    expected = _zero_outgoing(model, layer, units)(inputs, training=False)
    np.testing.assert_allclose(pruned(inputs, training=False), expected, atol=1e-5)
    kept = [n for n in range(width) if n not in units]
    np.testing.assert_array_equal(
        unit_matrix(pruned.get_layer(layer).kernel),
        unit_matrix(model.get_layer(layer).kernel)[kept],
    )


def test_a_pruned_model_saves_and_loads(tmp_path):
    model = _convnet()
    pruned = prune_units(model, "c1", [0])
    pruned.save(tmp_path / "pruned.keras")
    loaded = keras.models.load_model(tmp_path / "pruned.keras")
    inputs = np.ones((2, 8, 8, 2), np.float32)
    np.testing.assert_allclose(loaded(inputs), pruned(inputs), atol=1e-6)
    assert loaded.count_params() < model.count_params()


def test_pruning_zero_units_leaves_the_model_unchanged():
    model = _mlp()
    pruned = prune_units(model, "a", [])
    inputs = np.ones((2, 6), np.float32)
    np.testing.assert_allclose(pruned(inputs), model(inputs), atol=1e-6)


@pytest.mark.parametrize(
    "layer, units, message",
    [
        ("nope", [0], "no such layer"),
        ("dropout", [0], "it is a Dropout"),
        ("out", [0], "model output"),
        ("a", [8], r"in \[0, 7\]"),
        ("a", list(range(8)), "fewer than the layer's 8"),
        ("a", [1, 1], "distinct"),
        ("a", [0.5], r"in \[0, 7\]"),
    ],
)
def test_bad_pruning_requests_get_one_clear_error(layer, units, message):
    model = _mlp()
    name = {"dropout": model.layers[2].name}.get(layer, layer)
    with pytest.raises(ConfigError, match=message):
        prune_units(model, name, units)


def test_check_counts_refuses_the_whole_layer():
    assert check_counts([0, 3], 4) == (0, 3)
    with pytest.raises(ConfigError, match="has 4 units"):
        check_counts([4], 4)


# ------------------------------------------------------------ curves
def test_pruning_curves_evaluate_each_order_and_average_random_seeds():
    model = _mlp()
    seen = []

    def units_left(pruned):
        seen.append(pruned.get_layer("a").kernel.shape[-1])
        return float(pruned.get_layer("a").kernel.shape[-1])

    curves = pruning_curves(model, "a", [0, 2, 5], units_left, seeds=3)
    assert [curve.criterion for curve in curves] == list(CRITERIA)
    for curve in curves:
        assert curve.accuracy == (8.0, 6.0, 3.0)
    random = curves[-1]
    assert random.seeds == (0, 1, 2) and random.std == (0.0, 0.0, 0.0)
    assert curves[0].std is None and curves[0].at(2) == 6.0
    # One evaluation per distinct set of pruned units: count 0 (all 8 units
    # left) once, not once per order.
    matrix = unit_matrix(model.get_layer("a").kernel)
    sets = {
        frozenset(pruning_order(matrix, criterion, seed)[:p].tolist())
        for criterion in CRITERIA
        for seed in (range(3) if criterion == "random" else (0,))
        for p in (0, 2, 5)
    }
    assert seen.count(8) == 1 and len(seen) == len(sets) > 2 * len(CRITERIA)


def test_pruning_curves_follow_the_criterion():
    # Unit 0 of layer "a" is the only one the output needs: magnitude pruning
    # (smallest first) keeps it, min-magnitude pruning removes it first.
    model = _mlp()
    kernel, bias = model.get_layer("a").get_weights()
    kernel[:, 1:] *= 0.01
    model.get_layer("a").set_weights([kernel, bias])

    def has_unit_zero(pruned):
        return float(
            np.any(
                np.all(
                    np.isclose(
                        unit_matrix(pruned.get_layer("a").kernel),
                        unit_matrix(kernel)[0],
                    ),
                    axis=1,
                )
            )
        )

    curves = {
        curve.criterion: curve
        for curve in pruning_curves(
            model,
            "a",
            [1, 7],
            has_unit_zero,
            criteria=("max_magnitude", "min_magnitude"),
        )
    }
    assert curves["max_magnitude"].accuracy == (1.0, 1.0)
    assert curves["min_magnitude"].accuracy == (0.0, 0.0)
    assert PruningCurve(**curves["min_magnitude"].as_dict()) == curves["min_magnitude"]


def test_pruning_curves_errors():
    model = _mlp()
    with pytest.raises(ConfigError, match="criteria"):
        pruning_curves(model, "a", [1], float, criteria=("largest",))
    with pytest.raises(ConfigError, match="seeds"):
        pruning_curves(model, "a", [1], float, seeds=0)
    with pytest.raises(ConfigError, match="has 8 units"):
        pruning_curves(model, "a", [9], float)
