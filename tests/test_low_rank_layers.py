"""LowRankDense / LowRankConv2D: equivalence, truncation, plain export, costs."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_contract import check_layer_contract

from keras_rank.core.costs import layer_cost, model_cost
from keras_rank.core.errors import ConfigError
from keras_rank.layers import (
    LowRankConv2D,
    LowRankDense,
    conv2d_rank_costs,
    conv_kernel_as_matrix,
    conv_kernel_from_matrix,
    dense_rank_costs,
    low_rank_to_plain_model,
    truncated_factors,
)

RNG = np.random.default_rng(0)
ATOL = 1e-5
IMAGES = (2, 7, 6, 3)  # batch, height, width, channels


def _normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def _tail_norm(matrix, rank):
    """sqrt(sum_{i > rank} s_i^2) of a matrix, in float64 NumPy."""
    singular = np.linalg.svd(np.asarray(matrix, np.float64), compute_uv=False)
    return np.sqrt(np.sum(singular[rank:] ** 2))


def _built_dense(units, input_shape, **kwargs):
    dense = keras.layers.Dense(units, **kwargs)
    dense.build((None, *input_shape))
    if dense.use_bias:
        dense.bias.assign(_normal(units))
    return dense


def _built_conv(filters, kernel_size, input_shape=IMAGES[1:], **kwargs):
    conv = keras.layers.Conv2D(filters, kernel_size, **kwargs)
    conv.build((None, *input_shape))
    if conv.use_bias:
        conv.bias.assign(_normal(filters))
    return conv


def _full_rank(conv, scheme):
    return min(conv_kernel_as_matrix(conv.kernel, scheme).shape)


def _low_rank_matrix(layer):
    return _numpy(layer.u) @ _numpy(layer.v).T


# Pure maths ---------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 2, 4])
def test_truncated_factors_are_balanced_and_meet_eckart_young(rank):
    matrix = _normal(6, 4)
    u, v = (_numpy(factor) for factor in truncated_factors(matrix, rank))
    singular = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
    assert u.shape == (6, rank) and v.shape == (4, rank)
    # sqrt(S) on each side: u^T u = v^T v = diag(s_1..s_r).
    np.testing.assert_allclose(u.T @ u, np.diag(singular[:rank]), atol=ATOL)
    np.testing.assert_allclose(v.T @ v, np.diag(singular[:rank]), atol=ATOL)
    error = np.linalg.norm(matrix - u @ v.T)
    np.testing.assert_allclose(error, _tail_norm(matrix, rank), atol=ATOL)


def test_conv_kernel_matrix_layouts_follow_lc_spec():
    kernel = _normal(3, 2, 4, 5)  # dh, dw, c, n
    first = _numpy(conv_kernel_as_matrix(kernel, 1))
    second = _numpy(conv_kernel_as_matrix(kernel, 2))
    assert first.shape == (3 * 2 * 4, 5) and second.shape == (3 * 4, 2 * 5)
    for h, w, c, n in np.ndindex(kernel.shape):
        assert first[(h * 2 + w) * 4 + c, n] == kernel[h, w, c, n]
        assert second[h * 4 + c, w * 5 + n] == kernel[h, w, c, n]
    for scheme, matrix in ((1, first), (2, second)):
        back = conv_kernel_from_matrix(matrix, kernel.shape, scheme)
        np.testing.assert_array_equal(_numpy(back), kernel)


# Equivalence at full rank and truncation ------------------------------------


@pytest.mark.parametrize("input_shape", [(5,), (3, 5)])
@pytest.mark.parametrize("use_bias", [True, False])
def test_from_dense_at_full_rank_computes_what_dense_did(input_shape, use_bias):
    dense = _built_dense(4, input_shape, activation="tanh", use_bias=use_bias)
    layer = LowRankDense.from_dense(dense, rank=4)
    x = _normal(8, *input_shape)
    assert layer.name == dense.name
    assert layer.u.shape == (5, 4) and layer.v.shape == (4, 4)
    np.testing.assert_allclose(layer(x), dense(x), atol=ATOL)
    assert layer.compute_output_shape(x.shape) == tuple(dense(x).shape)


@pytest.mark.parametrize("scheme", [1, 2])
@pytest.mark.parametrize("kernel_size", [(3, 3), (2, 2), (3, 2)])
@pytest.mark.parametrize("strides", [(1, 1), (2, 1), (1, 2)])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_from_conv2d_at_full_rank_computes_what_conv2d_did(
    scheme, kernel_size, strides, padding
):
    conv = _built_conv(
        4, kernel_size, strides=strides, padding=padding, activation="relu"
    )
    layer = LowRankConv2D.from_conv2d(conv, _full_rank(conv, scheme), scheme=scheme)
    x = _normal(*IMAGES)
    expected = conv(x)
    np.testing.assert_allclose(layer(x), expected, atol=ATOL)
    assert layer.compute_output_shape(x.shape) == tuple(expected.shape)


def _dense_truncation(rank):
    dense = _built_dense(6, (5,))
    return dense, dense.kernel, LowRankDense.from_dense(dense, rank)


def _conv_truncation(rank, scheme):
    conv = _built_conv(4, (3, 2), strides=(2, 1), padding="same")
    layer = LowRankConv2D.from_conv2d(conv, rank, scheme=scheme)
    return conv, conv_kernel_as_matrix(conv.kernel, scheme), layer


@pytest.mark.parametrize(
    "make",
    [
        lambda: _dense_truncation(2),
        lambda: _conv_truncation(2, scheme=1),
        lambda: _conv_truncation(3, scheme=2),
    ],
    ids=["dense", "conv-scheme-1", "conv-scheme-2"],
)
def test_truncation_error_equals_tail_singular_values(make):
    plain, matrix, layer = make()
    approximation = _low_rank_matrix(layer)
    error = np.linalg.norm(_numpy(matrix) - approximation)
    np.testing.assert_allclose(error, _tail_norm(matrix, layer.rank), atol=ATOL)
    assert error > 1e-2  # really truncated
    # The layer computes the plain layer with the truncated kernel.
    if isinstance(layer, LowRankConv2D):
        approximation = conv_kernel_from_matrix(
            approximation, plain.kernel.shape, layer.scheme
        )
    plain.kernel.assign(approximation)
    x = _normal(*IMAGES) if isinstance(layer, LowRankConv2D) else _normal(4, 5)
    np.testing.assert_allclose(layer(x), plain(x), atol=ATOL)


def test_from_dense_factors_the_given_matrix_and_takes_a_name():
    dense = _built_dense(6, (5,))
    theta = _normal(5, 6)
    layer = LowRankDense.from_dense(dense, 2, matrix=theta, name="low")
    assert layer.name == "low"
    u, v = truncated_factors(theta, 2)
    np.testing.assert_allclose(
        _low_rank_matrix(layer), _numpy(u) @ _numpy(v).T, atol=ATOL
    )
    np.testing.assert_array_equal(_numpy(layer.bias), _numpy(dense.bias))


def test_from_conv2d_factors_the_given_matrix_in_its_scheme():
    conv = _built_conv(4, (3, 2))
    theta = _normal(3 * 3, 2 * 4)  # scheme 2: (dh c) x (dw n)
    layer = LowRankConv2D.from_conv2d(conv, 3, scheme=2, matrix=theta)
    u, v = truncated_factors(theta, 3)
    np.testing.assert_allclose(
        _low_rank_matrix(layer), _numpy(u) @ _numpy(v).T, atol=ATOL
    )


# Plain layers and models ----------------------------------------------------


def test_dense_to_plain_is_two_dense_layers_computing_the_same():
    dense = _built_dense(6, (3, 5), activation="relu")
    layer = LowRankDense.from_dense(dense, 2, name="fc")
    first, second = layer.to_plain()
    assert type(first) is keras.layers.Dense and type(second) is keras.layers.Dense
    assert (first.name, second.name) == ("fc_u", "fc_v")
    assert (first.units, first.use_bias, second.units) == (2, False, 6)
    x = _normal(4, 3, 5)
    np.testing.assert_allclose(second(first(x)), layer(x), atol=ATOL)


@pytest.mark.parametrize(
    "scheme, first_kernel, second_kernel",
    [(1, (3, 2, 3, 2), (1, 1, 2, 4)), (2, (3, 1, 3, 2), (1, 2, 2, 4))],
)
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_to_plain_is_two_conv2d_layers_computing_the_same(
    scheme, first_kernel, second_kernel, padding
):
    conv = _built_conv(4, (3, 2), strides=(2, 2), padding=padding, activation="relu")
    layer = LowRankConv2D.from_conv2d(conv, 2, scheme=scheme)
    first, second = layer.to_plain()
    assert type(first) is keras.layers.Conv2D and type(second) is keras.layers.Conv2D
    assert (first.use_bias, second.use_bias) == (False, True)
    assert tuple(first.kernel.shape) == first_kernel
    assert tuple(second.kernel.shape) == second_kernel
    x = _normal(*IMAGES)
    np.testing.assert_allclose(second(first(x)), layer(x), atol=ATOL)


def _low_rank_functional():
    """Low-rank conv -> flatten -> two branches added -> hard-swish written as
    tensor arithmetic (operations, not layers) -> low-rank classifier."""
    inputs = keras.Input(IMAGES[1:])
    conv = _built_conv(4, (3, 2), strides=(2, 1), padding="same", name="conv")
    dense = _built_dense(8, (4 * 6 * 4,), activation="relu", name="hidden")
    classifier = _built_dense(5, (8,), name="classifier")
    z = LowRankConv2D.from_conv2d(conv, 2, scheme=2)(inputs)
    z = keras.layers.Flatten(name="flatten")(z)
    side = keras.layers.Dense(8, name="side")(z)
    z = keras.layers.Add(name="sum")([LowRankDense.from_dense(dense, 3)(z), side])
    z = z * keras.ops.relu6(z + 3.0) / 6.0
    outputs = LowRankDense.from_dense(classifier, 2)(z)
    return keras.Model(inputs, outputs, name="net")


def _low_rank_sequential():
    conv = _built_conv(4, (2, 2), padding="valid", name="conv")
    dense = _built_dense(5, (6 * 5 * 4,), name="classifier")
    return keras.Sequential(
        [
            keras.Input(IMAGES[1:]),
            LowRankConv2D.from_conv2d(conv, 3, scheme=1),
            keras.layers.Flatten(name="flatten"),
            LowRankDense.from_dense(dense, 2),
        ],
        name="seq",
    )


def _layer_names(model):
    return [
        layer.name
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
    ]


@pytest.mark.parametrize(
    "make, plain_names",
    [
        (
            _low_rank_functional,
            {
                "conv_u", "conv_v", "flatten", "side", "hidden_u", "hidden_v",
                "sum", "classifier_u", "classifier_v",
            },
        ),
        (
            _low_rank_sequential,
            ["conv_u", "conv_v", "flatten", "classifier_u", "classifier_v"],
        ),
    ],
    ids=["functional", "sequential"],
)  # fmt: skip
def test_low_rank_to_plain_model_computes_the_same(make, plain_names):
    model = make()
    plain = low_rank_to_plain_model(model)
    assert type(plain) is type(model) and plain.name == model.name
    names = _layer_names(plain)
    assert (set(names) if isinstance(plain_names, set) else names) == plain_names
    x = _normal(*IMAGES)
    np.testing.assert_allclose(plain(x), model(x), atol=ATOL)
    # Copies, not the same layers: training the plain model leaves `model` alone.
    assert not set(map(id, plain.weights)) & set(map(id, model.weights))


# Runs in a fresh interpreter in which `import keras_rank` fails.
_LOAD_WITHOUT_KERAS_RANK = textwrap.dedent(
    """
    import json, sys
    sys.modules["keras_rank"] = None  # any import of keras_rank now fails
    import keras
    import numpy as np
    plain_path, low_rank_path, images, outputs, report = sys.argv[1:]
    model = keras.saving.load_model(plain_path)
    np.save(outputs, keras.ops.convert_to_numpy(model(np.load(images))))
    try:
        keras.saving.load_model(low_rank_path)
        low_rank_error = None
    except Exception as error:
        low_rank_error = str(error)
    with open(report, "w") as file:
        json.dump(
            {
                "classes": sorted({type(layer).__name__ for layer in model.layers}),
                "low_rank_error": low_rank_error,
            },
            file,
        )
    """
)


@pytest.mark.slow
def test_plain_model_loads_in_a_fresh_process_without_keras_rank(tmp_path):
    model = _low_rank_functional()
    x = _normal(*IMAGES)
    np.save(tmp_path / "images.npy", x)
    model.save(tmp_path / "low_rank.keras")
    low_rank_to_plain_model(model).save(tmp_path / "plain.keras")
    subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_WITHOUT_KERAS_RANK,
            *(
                str(tmp_path / name)
                for name in (
                    "plain.keras",
                    "low_rank.keras",
                    "images.npy",
                    "outputs.npy",
                    "report.json",
                )
            ),
        ],
        cwd=tmp_path,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
        timeout=300,
    )
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["classes"] == ["Add", "Conv2D", "Dense", "Flatten", "InputLayer"]
    # The same process cannot load the low-rank model: keras_rank is blocked.
    assert "Could not locate class 'LowRankConv2D'" in report["low_rank_error"]
    np.testing.assert_allclose(np.load(tmp_path / "outputs.npy"), model(x), atol=ATOL)


# Keras contract ---------------------------------------------------------------


_CONFIGURED = dict(
    activation="relu",
    kernel_initializer="he_normal",
    bias_initializer="ones",
    kernel_regularizer=keras.regularizers.L2(0.01),
    bias_regularizer=keras.regularizers.L1(0.02),
    activity_regularizer=keras.regularizers.L2(0.03),
)


@pytest.mark.parametrize(
    ("make_layer", "input_shape", "output_shape", "params", "config"),
    [
        (
            lambda: LowRankDense(6, 2, use_bias=False, name="d", **_CONFIGURED),
            (4, 3, 5),
            (4, 3, 6),
            2 * (5 + 6),
            dict(units=6, rank=2, use_bias=False),
        ),
        (
            lambda: LowRankDense.from_dense(
                _built_dense(8, (4 * 6 * 4,), activation="relu", name="hidden"), 3
            ),
            (2, 4 * 6 * 4),
            (2, 8),
            3 * (4 * 6 * 4 + 8) + 8,
            dict(units=8, rank=3),
        ),
        (
            lambda: LowRankDense.from_dense(_built_dense(5, (8,), name="fc"), 2),
            (2, 8),
            (2, 5),
            2 * (8 + 5) + 5,
            dict(units=5, rank=2),
        ),
        (
            lambda: LowRankConv2D(
                4, (3, 2), 2, scheme=2, strides=(2, 1), padding="same", **_CONFIGURED
            ),
            IMAGES,
            (2, 4, 6, 4),
            2 * (3 * 3 + 2 * 4) + 4,
            dict(filters=4, rank=2, scheme=2, strides=(2, 1), padding="same"),
        ),
        (
            lambda: LowRankConv2D.from_conv2d(
                _built_conv(4, (3, 2), strides=(2, 1), padding="same", name="conv"),
                2,
                scheme=2,
            ),
            IMAGES,
            (2, 4, 6, 4),
            2 * (3 * 3 + 2 * 4) + 4,
            dict(rank=2, scheme=2, kernel_size=(3, 2)),
        ),
        (
            lambda: LowRankConv2D.from_conv2d(
                _built_conv(4, (2, 2), padding="valid", name="conv"), 3, scheme=1
            ),
            IMAGES,
            (2, 6, 5, 4),
            3 * (2 * 2 * 3 + 4) + 4,
            dict(rank=3, scheme=1, kernel_size=(2, 2)),
        ),
    ],
    ids=[
        "dense-configured",
        "dense-from_dense-rank-3",
        "dense-from_dense-rank-2",
        "conv-configured",
        "conv-from_conv2d-scheme-2",
        "conv-from_conv2d-scheme-1",
    ],
)
def test_layer_contract(
    make_layer, input_shape, output_shape, params, config, tmp_path
):
    contract = check_layer_contract(
        make_layer,
        input_shape,
        tmp_path,
        expected_output_shape=output_shape,
        expected_params=params,
    )
    assert {key: contract.config[key] for key in config} == config
    assert {key: getattr(contract.loaded, key) for key in config} == config
    if contract.layer.activity_regularizer is not None:
        assert contract.copy.losses


def test_layers_are_exported_by_the_package():
    import keras_rank

    assert keras_rank.LowRankDense is LowRankDense
    assert keras_rank.LowRankConv2D is LowRankConv2D


# Costs -------------------------------------------------------------------------


def test_dense_params_and_macs_follow_lc_spec():
    dense = _built_dense(6, (3, 5))  # 3 positions, m = 5, n = 6
    layer = LowRankDense.from_dense(dense, 2)
    assert layer.count_params() == 2 * (5 + 6) + 6
    cost = layer_cost(layer)
    assert cost.params == layer.count_params()
    assert cost.macs == 2 * 3 * (5 + 6)
    rank_costs = dense_rank_costs(dense)
    assert rank_costs == dense_rank_costs(layer)
    assert (rank_costs.params_per_rank, rank_costs.macs_per_rank) == (11, 33)
    assert rank_costs.dense_params == 5 * 6
    assert rank_costs.dense_macs == layer_cost(dense).macs == 3 * 5 * 6


@pytest.mark.parametrize("scheme", [1, 2])
@pytest.mark.parametrize("padding", ["valid", "same"])
def test_conv_params_and_macs_follow_lc_spec(scheme, padding):
    (dh, dw), c, n, rank = (3, 2), IMAGES[3], 4, 2
    conv = _built_conv(n, (dh, dw), strides=(2, 2), padding=padding)
    layer = LowRankConv2D.from_conv2d(conv, rank, scheme=scheme)
    _, h_out, w_out, _ = layer.compute_output_shape((None, *IMAGES[1:]))
    w_in = IMAGES[2]
    if scheme == 1:
        per_rank_params = dh * dw * c + n
        per_rank_macs = h_out * w_out * (dh * dw * c + n)
    else:
        per_rank_params = dh * c + dw * n
        per_rank_macs = h_out * w_in * dh * c + h_out * w_out * dw * n
    assert layer.count_params() == rank * per_rank_params + n
    cost = layer_cost(layer)
    assert (cost.params, cost.macs) == (layer.count_params(), rank * per_rank_macs)
    rank_costs = conv2d_rank_costs(conv, scheme)
    assert rank_costs == conv2d_rank_costs(layer, scheme)
    assert (rank_costs.params_per_rank, rank_costs.macs_per_rank) == (
        per_rank_params,
        per_rank_macs,
    )
    assert rank_costs.dense_params == dh * dw * c * n
    assert rank_costs.dense_macs == layer_cost(conv).macs


@pytest.mark.parametrize(
    "make", [_low_rank_functional, _low_rank_sequential], ids=["func", "seq"]
)
def test_low_rank_costs_equal_those_of_the_plain_model(make):
    model = make()
    low_rank, plain = model_cost(model), model_cost(low_rank_to_plain_model(model))
    assert low_rank.uncounted == plain.uncounted == ()
    assert (low_rank.macs, low_rank.params) == (plain.macs, plain.params)


# Training ----------------------------------------------------------------------


def test_training_moves_both_factors_of_every_layer():
    model = _low_rank_sequential()
    x, labels = _normal(*IMAGES), np.array([0, 3])
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.SGD(0.1)
    factors = [w for w in model.trainable_weights if w.name in ("u", "v")]
    assert len(factors) == 4
    before = [_numpy(w) for w in factors]
    losses = []
    for _ in range(3):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(x))
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply(grads, model.trainable_weights)
        losses.append(float(loss))
    assert losses[-1] < losses[0]
    for weight, old in zip(factors, before, strict=True):
        assert np.abs(_numpy(weight) - old).max() > 1e-4, weight.path


# Bad input ---------------------------------------------------------------------


def _dense():
    return _built_dense(4, (3,))


def _conv():
    return _built_conv(4, (3, 2))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: LowRankDense(4, 0), r"Expected rank >= 1. Received: rank=0"),
        (lambda: LowRankDense(4, True), r"rank >= 1. Received: rank=True"),
        (
            lambda: LowRankDense(4, 4).build((None, 3)),
            r"Expected 1 <= rank <= 3 = min\(3, 4\).*Received: rank=4",
        ),
        (
            lambda: LowRankDense.from_dense(_dense(), 5),
            r"1 <= rank <= 3.*Received: rank=5",
        ),
        (
            lambda: LowRankConv2D.from_conv2d(_conv(), 9, scheme=2),
            r"1 <= rank <= 8 = min\(9, 8\).*Received: rank=9",
        ),
        (
            lambda: LowRankConv2D(4, 3, 2, scheme=3),
            r"Expected scheme in \(1, 2\). Received: scheme=3",
        ),
        (
            lambda: LowRankConv2D.from_conv2d(_conv(), 2, scheme=0),
            r"scheme in \(1, 2\). Received: scheme=0",
        ),
        (
            lambda: LowRankConv2D(4, 3, 2, padding="causal"),
            r"padding in \('valid', 'same'\). Received: padding='causal'",
        ),
        (
            lambda: LowRankConv2D(4, (3, 0), 2),
            r"kernel_size.*Received: kernel_size=\(3, 0\)",
        ),
        (
            lambda: LowRankDense.from_dense(_dense(), 2, matrix=np.ones((4, 3))),
            r"Expected matrix of shape \(3, 4\).*Received: matrix.shape=\(4, 3\)",
        ),
        (
            lambda: conv_kernel_from_matrix(np.ones((6, 8)), (3, 2, 3, 4), 1),
            r"Expected matrix of shape \(18, 4\)",
        ),
        (
            lambda: truncated_factors(np.ones((3, 2)), 3),
            r"1 <= rank <= 2.*Received: rank=3",
        ),
        (lambda: LowRankDense.from_dense(_conv(), 2), r"from_dense expects"),
        (
            lambda: LowRankConv2D.from_conv2d(
                _built_conv(4, 3, dilation_rate=2), 2, scheme=1
            ),
            r"dilation_rate=\(2, 2\)",
        ),
        (lambda: LowRankDense(4, 2).to_plain(), r"is not built"),
    ],
)
def test_bad_input_raises_config_error_naming_the_argument(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_plain_model_of_a_subclassed_model_is_refused():
    class Net(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ConfigError, match="subclassed"):
        low_rank_to_plain_model(Net())
