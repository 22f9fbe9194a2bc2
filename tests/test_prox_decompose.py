"""Post-processing of a trained model: zero-unit removal and energy decomposition."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_rank.core import costs
from keras_rank.core.errors import ConfigError
from keras_rank.layers import LowRankConv2D, LowRankDense
from keras_rank.layers.deployable import deployable_model
from keras_rank.prox.decompose import decompose, energy_rank, remove_zero_units

L = keras.layers
ZEROED = [1, 3]  # the units of layer "p" whose kernel columns are set to zero


def _singular_values(matrix) -> np.ndarray:
    return tf.linalg.svd(tf.constant(matrix, tf.float64), compute_uv=False).numpy()


def _orthonormal(rows: int, cols: int, rng) -> np.ndarray:
    return np.linalg.qr(rng.normal(size=(rows, cols)))[0]


def _kernel_with_spectrum(shape, spectrum, rng) -> np.ndarray:
    """A kernel whose matrix (scheme 1 for conv) has the given singular values."""
    rows, cols, k = math.prod(shape[:-1]), shape[-1], len(spectrum)
    matrix = _orthonormal(rows, k, rng) * spectrum @ _orthonormal(cols, k, rng).T
    return matrix.reshape(shape).astype(np.float32)


def _randomize(model, rng, zero_units=(), zero_bias=False):
    """Random weights; the `zero_units` of layer "p" get a zero kernel column."""
    for layer in model.layers:
        if not isinstance(layer, L.Dense | L.Conv2D):
            continue
        kernel = rng.normal(size=layer.kernel.shape) / math.sqrt(
            math.prod(layer.kernel.shape[:-1])
        )
        sign = rng.choice([-1.0, 1.0], size=layer.bias.shape)
        bias = rng.uniform(0.2, 0.8, size=layer.bias.shape) * sign
        if layer.name == "p":
            zero = list(zero_units)
            kernel[..., zero] = 0.0
            bias[zero] = 0.0 if zero_bias else np.resize([0.7, -0.4], len(zero))
        layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return model


def _outputs(model, inputs) -> np.ndarray:
    return keras.ops.convert_to_numpy(model(inputs, training=False))


def _entry(report, name):
    return next(entry for entry in report if entry.name == name)


# ------------------------------------------------------------ energy_rank
@pytest.mark.parametrize("energy", [1, 33.3, 50, 80, 90, 99.5, 100])
def test_energy_rank_keeps_the_energy_and_one_less_would_not(energy):
    s = np.sort(np.random.default_rng(0).uniform(0.1, 2.0, 25))[::-1]
    rank = energy_rank(s, energy)
    target = energy / 100 * s.sum()
    assert s[:rank].sum() >= target * (1 - 1e-12)
    assert s[: rank - 1].sum() < target


def test_energy_rank_reads_unsorted_singular_values():
    assert energy_rank([1.0, 4.0, 2.0, 3.0], 65) == 2  # 4 + 3 = 7 of 10


def test_energy_rank_at_100_percent_is_the_rank_of_a_deficient_matrix():
    rng = np.random.default_rng(1)
    matrix = (rng.normal(size=(12, 3)) @ rng.normal(size=(3, 9))).astype(np.float32)
    s = tf.linalg.svd(matrix, compute_uv=False)
    assert energy_rank(s, 100) == 3
    assert energy_rank(np.zeros(4), 100) == 0


@pytest.mark.parametrize("energy", [0, -5, 100.01, float("nan"), "90", True, None])
def test_bad_energy_raises_config_error_naming_energy(energy):
    model = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    with pytest.raises(ConfigError, match=r"energy in \(0, 100\]"):
        energy_rank([1.0, 0.5], energy)
    with pytest.raises(ConfigError, match=r"Received: energy="):
        decompose(model, energy)


def test_bad_tolerance_raises_config_error_naming_tolerance():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3)])
    with pytest.raises(ConfigError, match=r"tolerance in \[0, 1\)"):
        remove_zero_units(model, tolerance=-1e-3)


# ---------------------------------------------------------- decomposition
def _low_rank_convnet(rng):
    """Conv2D ranks 2 and 3, Dense rank 4, then a full-rank output 40 x 5."""
    inputs = keras.Input((10, 10, 3))
    x = L.Conv2D(16, 3, activation="relu", name="c1")(inputs)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(12, 3, padding="same", activation="relu", name="c2")(x)
    x = L.Flatten()(x)
    x = L.Dense(40, activation="relu", name="d1")(x)
    model = keras.Model(inputs, L.Dense(5, name="out")(x))
    _randomize(model, rng)
    for name, rank in [("c1", 2), ("c2", 3), ("d1", 4)]:
        layer = model.get_layer(name)
        spectrum = rng.uniform(0.5, 1.5, rank) * math.sqrt(layer.kernel.shape[-1])
        layer.kernel.assign(_kernel_with_spectrum(layer.kernel.shape, spectrum, rng))
    return model


def test_decompose_at_full_energy_computes_the_same_outputs_with_fewer_params():
    rng = np.random.default_rng(0)
    model = _low_rank_convnet(rng)
    inputs = rng.normal(size=(4, 10, 10, 3)).astype(np.float32)
    result, report = decompose(model, 100)
    np.testing.assert_allclose(
        _outputs(result, inputs), _outputs(model, inputs), atol=1e-5
    )
    assert [(e.name, e.rank, e.low_rank) for e in report] == [
        ("c1", 2, True),
        ("c2", 3, True),
        ("d1", 4, True),
        ("out", 5, False),
    ]
    assert all(e.params_after < e.params_before for e in report if e.low_rank)
    assert all(e.macs_after < e.macs_before for e in report if e.low_rank)
    assert costs.model_cost(result).params < costs.model_cost(model).params
    plain = deployable_model(result)
    assert {type(layer) for layer in plain.layers if layer.weights} <= {
        L.Dense,
        L.Conv2D,
    }
    np.testing.assert_allclose(
        _outputs(plain, inputs), _outputs(model, inputs), atol=1e-5
    )
    assert costs.model_cost(plain).params == costs.model_cost(result).params


def test_decompose_removes_zero_units_before_splitting():
    rng = np.random.default_rng(2)
    model = _low_rank_convnet(rng)
    c1 = model.get_layer("c1")
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in c1.weights)
    kernel[..., [0, 5]], bias[[0, 5]] = 0.0, -0.3  # relu(-0.3) = 0 reaches c2
    c1.set_weights([kernel, bias])
    inputs = rng.normal(size=(3, 10, 10, 3)).astype(np.float32)
    result, report = decompose(model, 100)
    np.testing.assert_allclose(
        _outputs(result, inputs), _outputs(model, inputs), atol=1e-5
    )
    entry = _entry(report, "c1")
    assert (entry.units_before, entry.units_after, entry.rank) == (16, 14, 2)
    assert result.get_layer("c1").v.shape == (14, 2)


def _spectrum_mlp_and_convnet(rng):
    """Layers with known, decaying spectra: Dense 20 -> 30 -> 25, Conv2D 3x3x4 -> 8."""
    spectra = {}
    inputs = keras.Input((6, 6, 4))
    x = L.Conv2D(8, 3, activation="tanh", name="conv")(inputs)
    x = L.Flatten()(x)
    x = L.Dense(30, activation="tanh", name="hidden")(x)
    model = keras.Model(inputs, L.Dense(25, name="out")(x))
    _randomize(model, rng)
    for name in ("conv", "hidden", "out"):
        layer = model.get_layer(name)
        rows = math.prod(layer.kernel.shape[:-1])
        spectra[name] = 3.0 * 0.75 ** np.arange(min(rows, layer.kernel.shape[-1]))
        layer.kernel.assign(
            _kernel_with_spectrum(layer.kernel.shape, spectra[name], rng)
        )
    return model, spectra


@pytest.mark.parametrize("energy", [50, 80, 95])
def test_decompose_keeps_the_stated_energy_of_every_layer(energy):
    model, spectra = _spectrum_mlp_and_convnet(np.random.default_rng(3))
    result, report = decompose(model, energy)
    assert any(entry.low_rank for entry in report)
    for entry in report:
        s = spectra[entry.name]
        target = energy / 100 * s.sum()
        assert s[: entry.rank].sum() >= target * (1 - 1e-6)
        assert s[: entry.rank - 1].sum() < target
        assert entry.kept_energy >= energy - 1e-6
        layer = result.get_layer(entry.name)
        if not entry.low_rank:  # not cheaper: the layer stays as it was
            rows, cols = math.prod(layer.kernel.shape[:-1]), layer.kernel.shape[-1]
            assert entry.rank * (rows + cols) >= rows * cols
            np.testing.assert_array_equal(
                layer.kernel, model.get_layer(entry.name).kernel
            )
            continue
        assert isinstance(layer, LowRankDense | LowRankConv2D)
        assert layer.rank == entry.rank
        kept = _singular_values(layer.u.numpy() @ layer.v.numpy().T)
        np.testing.assert_allclose(kept[: entry.rank], s[: entry.rank], rtol=1e-4)
        np.testing.assert_allclose(kept[entry.rank :], 0.0, atol=1e-5)


@pytest.mark.parametrize("multiple", [3, 4])
def test_decompose_rounds_each_energy_rank_up_to_the_rank_multiple(multiple):
    model, spectra = _spectrum_mlp_and_convnet(np.random.default_rng(3))
    _, free = decompose(model, 80)
    result, report = decompose(model, 80, rank_multiple=multiple)
    assert any(entry.low_rank for entry in report)
    for entry, free_entry in zip(report, free, strict=True):
        expected = min(-(-free_entry.rank // multiple) * multiple, entry.max_rank)
        assert entry.rank == expected and entry.kept_energy >= 80 - 1e-6
        if entry.low_rank:
            assert result.get_layer(entry.name).rank == entry.rank
            s = spectra[entry.name]
            assert entry.kept_energy == pytest.approx(
                100 * s[: entry.rank].sum() / s.sum(), rel=1e-4
            )
    inputs = np.random.default_rng(4).normal(size=(2, 6, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(
        _outputs(decompose(model, 100, rank_multiple=multiple)[0], inputs),
        _outputs(model, inputs),
        atol=1e-4,
    )


@pytest.mark.parametrize("multiple", [0, 2.0, True])
def test_a_bad_rank_multiple_is_refused_naming_it(multiple):
    model, _ = _spectrum_mlp_and_convnet(np.random.default_rng(3))
    with pytest.raises(ConfigError, match="Expected rank_multiple an integer >= 1"):
        decompose(model, 80, rank_multiple=multiple)


def test_a_layer_where_low_rank_is_not_cheaper_stays_a_plain_layer():
    rng = np.random.default_rng(4)
    inputs = keras.Input((5, 5, 3))
    x = L.Conv2D(4, 1, name="conv")(inputs)  # 3 x 4: r (3 + 4) < 12 only for r = 1
    x = L.Flatten()(x)
    model = keras.Model(inputs, L.Dense(6, name="out")(x))  # 75 x 6 of rank 2
    _randomize(model, rng)
    conv, out = model.get_layer("conv"), model.get_layer("out")
    conv.kernel.assign(_kernel_with_spectrum(conv.kernel.shape, [3.0, 2.0, 1.0], rng))
    out.kernel.assign(_kernel_with_spectrum(out.kernel.shape, [2.0, 1.0], rng))
    result, report = decompose(model, 100)
    assert [(e.name, e.rank, e.low_rank, e.kept_energy) for e in report] == [
        ("conv", 3, False, 100.0),
        ("out", 2, True, 100.0),
    ]
    assert type(result.get_layer("conv")) is L.Conv2D
    np.testing.assert_array_equal(result.get_layer("conv").kernel, conv.kernel)
    assert _entry(report, "conv").params_after == _entry(report, "conv").params_before
    assert isinstance(result.get_layer("out"), LowRankDense)


# ------------------------------------------------------------- zero units
def _dense_dropout_dense(sequential=False):
    layers = [
        keras.Input((6,)),
        L.Dense(5, activation="sigmoid", name="p"),
        L.Dropout(0.3),
        L.Dense(4, activation="tanh", name="n"),
        L.Dense(3, name="out"),
    ]
    if sequential:
        return keras.Sequential(layers)
    x = layers[0]
    for layer in layers[1:]:
        x = layer(x)
    return keras.Model(layers[0], x)


def _conv_pool_conv():
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="p")(inputs)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(5, 3, activation="relu", name="n")(x)
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x))


def _conv_flatten_dense():
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(6, 3, activation="sigmoid", name="p")(inputs)
    x = L.Flatten()(x)
    x = L.Dropout(0.2)(x)
    x = L.Dense(7, activation="relu", name="n")(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x))


def _conv_relu_same_average_pool_flatten():
    inputs = keras.Input((5, 5, 2))
    x = L.Conv2D(6, 3, padding="same", name="p")(inputs)
    x = L.ReLU()(x)
    x = L.AveragePooling2D(2, padding="same")(x)  # 3 x 3, partial windows
    x = L.Flatten()(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x))


def _conv_global_pool_dense():
    inputs = keras.Input((5, 5, 2))
    x = L.Conv2D(6, 3, activation="tanh", name="p")(inputs)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x))


ARCHITECTURES = {
    "dense_dropout_dense": _dense_dropout_dense,
    "sequential_dense_dropout_dense": lambda: _dense_dropout_dense(sequential=True),
    "conv_maxpool_conv": _conv_pool_conv,
    "conv_flatten_dense": _conv_flatten_dense,
    "conv_relu_same_avgpool_flatten": _conv_relu_same_average_pool_flatten,
    "conv_globalpool_dense": _conv_global_pool_dense,
}


@pytest.mark.parametrize("zero_bias", [True, False], ids=["zero_bias", "bias"])
@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_removing_zero_units_leaves_outputs_unchanged(architecture, zero_bias):
    rng = np.random.default_rng(6)
    model = _randomize(ARCHITECTURES[architecture](), rng, ZEROED, zero_bias)
    inputs = rng.normal(size=(4, *model.input_shape[1:])).astype(np.float32)
    pruned, report = remove_zero_units(model)
    np.testing.assert_allclose(
        _outputs(pruned, inputs), _outputs(model, inputs), atol=1e-5
    )
    p = _entry(report, "p")
    assert (p.removed, p.kept, p.units_after) == (tuple(ZEROED), (), p.units_before - 2)
    assert pruned.get_layer("p").kernel.shape[-1] == p.units_before - 2
    assert all(e.removed == () for e in report if e.name != "p")
    assert pruned.output_shape == model.output_shape
    assert costs.model_cost(pruned).params < costs.model_cost(model).params


def test_units_that_read_only_removed_units_are_removed_in_turn():
    rng = np.random.default_rng(7)
    model = _randomize(_dense_dropout_dense(), rng, ZEROED)
    n = model.get_layer("n")
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in n.weights)
    kernel[:, 2] = 0.0
    kernel[ZEROED, 2] = [0.9, -0.6]  # unit 2 of n reads only p's zero units
    n.set_weights([kernel, bias])
    inputs = rng.normal(size=(4, 6)).astype(np.float32)
    pruned, report = remove_zero_units(model)
    np.testing.assert_allclose(
        _outputs(pruned, inputs), _outputs(model, inputs), atol=1e-5
    )
    assert _entry(report, "n").removed == (2,)
    assert pruned.get_layer("n").units == 3


def test_a_nonzero_constant_is_not_folded_into_a_same_padded_conv():
    rng = np.random.default_rng(8)
    inputs = keras.Input((6, 6, 2))
    x = L.Conv2D(5, 3, activation="relu", name="p")(inputs)
    x = L.Conv2D(4, 3, padding="same", name="n")(x)
    x = L.Flatten()(x)
    model = _randomize(keras.Model(inputs, L.Dense(3, name="out")(x)), rng, ZEROED)
    images = rng.normal(size=(3, 6, 6, 2)).astype(np.float32)
    pruned, report = remove_zero_units(model)
    np.testing.assert_allclose(
        _outputs(pruned, images), _outputs(model, images), atol=1e-5
    )
    p = _entry(report, "p")  # unit 1: relu(0.7) = 0.7; unit 3: relu(-0.4) = 0
    assert p.removed == (3,)
    assert [index for index, _ in p.kept] == [1] and "padding='same'" in p.kept[0][1]


def _branch_two_readers():
    inputs = keras.Input((6,))
    p = L.Dense(5, activation="sigmoid", name="p")(inputs)
    x = L.Add()([L.Dense(4, name="a")(p), L.Dense(4, name="b")(p)])
    return keras.Model(inputs, L.Dense(3, name="out")(x))


def _branch_add():
    inputs = keras.Input((6,))
    p = L.Dense(5, activation="sigmoid", name="p")(inputs)
    x = L.Add()([p, L.Dense(5, name="q")(inputs)])
    return keras.Model(inputs, L.Dense(3, name="out")(x))


def _into_batch_normalization():
    inputs = keras.Input((6,))
    x = L.Dense(5, activation="sigmoid", name="p")(inputs)
    x = L.BatchNormalization()(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x))


def _into_layer_norm():
    inputs = keras.Input((6,))
    x = L.Dense(5, activation="sigmoid", name="p")(inputs)
    x = L.LayerNormalization(name="norm")(x)
    return keras.Model(inputs, L.Dense(3, name="out")(x))


@pytest.mark.parametrize(
    "build, reason",
    [
        (_branch_two_readers, None),
        (_into_batch_normalization, None),
        (_branch_add, "tied (by a merge) to unit"),
        (_into_layer_norm, "read by layer 'norm' (LayerNormalization)"),
    ],
)
def test_a_zero_unit_leaves_every_reader_or_stays_with_its_reason(build, reason):
    rng = np.random.default_rng(9)
    model = _randomize(build(), rng, ZEROED)
    inputs = rng.normal(size=(4, 6)).astype(np.float32)
    pruned, report = remove_zero_units(model)
    np.testing.assert_allclose(
        _outputs(pruned, inputs), _outputs(model, inputs), atol=1e-5
    )
    p = _entry(report, "p")
    if reason is None:
        assert p.removed == tuple(ZEROED) and p.units_after == 3 and p.kept == ()
    else:
        assert p.removed == () and p.units_after == 5
        assert [index for index, _ in p.kept] == ZEROED
        assert all(reason in why for _, why in p.kept)


def test_the_output_layer_keeps_all_its_units():
    rng = np.random.default_rng(10)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, L.Dense(5, name="p")(L.Dense(4)(inputs)))
    _randomize(model, rng, ZEROED)
    pruned, report = remove_zero_units(model)
    assert pruned.output_shape == (None, 5)
    assert [why for _, why in _entry(report, "p").kept] == [
        "they reach a model output"
    ] * 2


def test_a_layer_whose_units_are_all_zero_keeps_one():
    rng = np.random.default_rng(11)
    model = _randomize(_dense_dropout_dense(), rng, range(5), zero_bias=False)
    inputs = rng.normal(size=(4, 6)).astype(np.float32)
    pruned, report = remove_zero_units(model)
    np.testing.assert_allclose(
        _outputs(pruned, inputs), _outputs(model, inputs), atol=1e-5
    )
    p = _entry(report, "p")
    assert p.units_after == 1 and p.kept == ((4, "a layer keeps at least one unit"),)


def test_zero_channels_of_every_tied_producer_go_through_bn_and_depthwise():
    rng = np.random.default_rng(12)
    inputs = keras.Input((7, 7, 2))
    x = L.Conv2D(5, 3, activation="relu", name="p")(inputs)
    x = L.BatchNormalization(name="bn")(x)
    x = L.DepthwiseConv2D(3, activation="relu", name="dw")(x)
    y = L.Conv2D(5, 5, name="q")(inputs)  # The residual branch, tied to p.
    x = L.Add(name="sum")([x, y])
    x = L.GlobalAveragePooling2D(name="pool")(x)
    model = _randomize(keras.Model(inputs, L.Dense(3, name="out")(x)), rng, ZEROED)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2.0, size=w.shape) for w in bn.get_weights()])
    q = model.get_layer("q")
    kernel, bias = (keras.ops.convert_to_numpy(w) for w in q.weights)
    kernel[..., ZEROED] = 0.0
    q.set_weights([kernel, bias])
    images = rng.normal(size=(3, 7, 7, 2)).astype(np.float32)
    pruned, report = remove_zero_units(model)
    np.testing.assert_allclose(
        _outputs(pruned, images), _outputs(model, images), atol=1e-5
    )
    for name in ("p", "q"):
        assert _entry(report, name).removed == tuple(ZEROED)
    assert pruned.get_layer("dw").kernel.shape[2] == 3
    assert pruned.get_layer("bn").gamma.shape == (3,)
