import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from layer_contract import check_layer_contract

from keras_rank.core.costs import layer_cost, model_cost, register_params
from keras_rank.core.errors import ConfigError
from keras_rank.layers import FactorizedConv2D, FactorizedDense, FactorState
from keras_rank.layers._factorized import masked_kernel

RNG = np.random.default_rng(0)
ATOL = 1e-5


def _normal(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def _ints(values):
    return np.asarray(values, dtype=np.int32)


def _floats(values):
    return np.asarray(values, dtype=np.float32)


def _with_features(state_kwargs, outputs, factors, p_index, p_coef):
    """Feature h = factors[h] * original output outputs[h]."""
    outputs = np.asarray(outputs)
    state_kwargs["feature_group"] = _ints(np.asarray(p_index)[outputs])
    state_kwargs["feature_scale"] = _floats(
        np.asarray(factors) * np.asarray(p_coef)[outputs]
    )
    return state_kwargs


def _state(frobenius_norm, groups_in, groups_out, **arrays):
    return FactorState(
        kernel=_normal(groups_in, groups_out),
        bias=_normal(groups_out),
        gain=_floats(1.7) if frobenius_norm else None,
        norm0=_floats(2.5) if frobenius_norm else None,
        **arrays,
    )


# Dense: n = 6 original inputs read from features_in = 5 actual channels,
# m = 5 outputs in groups_out = 4 row groups, groups_in = 4 column groups.
DENSE_FEATURE_OUTPUTS = [0, 1, 3, 2, 4]
DENSE_FEATURE_FACTORS = [1.0, 1.0, 1.0, 0.5, 1.0]


def _dense_state(frobenius_norm=False):
    p_index, p_coef = [0, 1, 2, 1, 3], [1.0, 1.0, 1.0, -1.5, 1.0]
    arrays = dict(
        col_mask=_floats([1, 1, 1, 0]),  # column group 3 fused away
        row_mask=_floats([1, 1, 1, 0]),  # row group 3 fused away
        q_index=_ints([0, 1, 2, 1, 3, 0]),  # coordinates 0+5 and 1+3 merged
        q_coef=_floats([1.0, 1.0, 1.0, 0.5, 1.0, -2.0]),
        p_index=_ints(p_index),  # outputs 1 and 3 merged
        p_coef=_floats(p_coef),
        in_index=_ints([0, 1, 2, 3, 2, 4]),  # inputs 2 and 4 read channel 2
        in_scale=_floats([1.0, 1.0, 1.0, 1.0, -0.5, 1.0]),
    )
    _with_features(
        arrays, DENSE_FEATURE_OUTPUTS, DENSE_FEATURE_FACTORS, p_index, p_coef
    )
    return _state(frobenius_norm, 4, 4, **arrays)


def _effective_np(state):
    kernel = state.kernel * state.col_mask[:, None] * state.row_mask[None, :]
    if state.gain is not None:
        kernel = kernel * state.gain * state.norm0 / np.linalg.norm(kernel)
    return kernel


def _explicit_p_w_q(state):
    """Dense W = P W' Q (m x n), bias P b', and input map S (n x features_in)."""
    kernel = _effective_np(state).astype(np.float64)
    groups_in, groups_out = kernel.shape
    n, m = len(state.q_index), len(state.p_index)
    q = np.zeros((groups_in, n))
    q[state.q_index, np.arange(n)] = state.q_coef
    p = np.zeros((m, groups_out))
    p[np.arange(m), state.p_index] = state.p_coef
    features_in = state.in_index.max() + 1
    s = np.zeros((len(state.in_index), features_in))
    s[np.arange(len(state.in_index)), state.in_index] = state.in_scale
    return p @ kernel.T @ q, p @ (state.bias * state.row_mask), s


def _dense_reference(state, x, outputs, factors):
    w, b, s = _explicit_p_w_q(state)
    y = (x @ s.T) @ w.T + b
    return y[:, outputs] * np.asarray(factors)


# Conv: 2x3 window, cin = 3 original channels read from 2 actual channels,
# n = 18 coordinates in 10 column groups, m = 4 filters in 3 row groups.
CONV_FEATURE_OUTPUTS = [3, 0, 1, 2]
CONV_FEATURE_FACTORS = [-1.0, 1.0, 2.0, 1.0]


def _conv_state(frobenius_norm=False):
    p_index, p_coef = [0, 1, 2, 1], [1.0, 1.0, 1.0, 0.5]
    q_coef = np.where(np.arange(18) % 3 == 0, -0.7, 1.3)
    arrays = dict(
        col_mask=_floats([1, 1, 1, 1, 1, 1, 0, 1, 1, 1]),
        row_mask=_floats([1, 1, 0]),
        q_index=_ints(np.arange(18) % 10),  # coordinates k and k + 10 merged
        q_coef=_floats(q_coef),
        p_index=_ints(p_index),
        p_coef=_floats(p_coef),
        in_index=_ints([0, 1, 0]),  # channels 0 and 2 read actual channel 0
        in_scale=_floats([1.0, 1.0, -2.0]),
    )
    _with_features(arrays, CONV_FEATURE_OUTPUTS, CONV_FEATURE_FACTORS, p_index, p_coef)
    return _state(frobenius_norm, 10, 3, **arrays)


def _conv_reference(state, x, outputs, factors, strides, padding):
    w, b, s = _explicit_p_w_q(state)
    full_kernel = w.T.reshape(2, 3, 3, len(state.p_index))
    u = x.astype(np.float64) @ s.T
    y = tf.nn.conv2d(u, full_kernel, strides=strides, padding=padding).numpy() + b
    return y[..., outputs] * np.asarray(factors)


def _assert_states_equal(a, b):
    for field in dataclasses.fields(FactorState):
        x, y = getattr(a, field.name), getattr(b, field.name)
        if x is None or y is None:
            assert x is None and y is None, field.name
        else:
            np.testing.assert_array_equal(x, y, err_msg=field.name)


def _built_dense(units, input_dim, **kwargs):
    dense = keras.layers.Dense(units, **kwargs)
    dense.build((None, input_dim))
    dense.bias.assign(_normal(units))
    return dense


def _built_conv(filters, input_shape, **kwargs):
    conv = keras.layers.Conv2D(filters, **kwargs)
    conv.build((None, *input_shape))
    conv.bias.assign(_normal(filters))
    return conv


@pytest.mark.parametrize("frobenius_norm", [False, True])
def test_from_dense_gives_identical_outputs(frobenius_norm):
    dense = _built_dense(5, 3, activation="relu", name="d")
    layer = FactorizedDense.from_dense(dense, frobenius_norm=frobenius_norm)
    x = _normal(8, 3)
    np.testing.assert_allclose(layer(x), dense(x), atol=ATOL)
    sequence = _normal(2, 4, 3)
    np.testing.assert_allclose(layer(sequence), dense(sequence), atol=ATOL)
    assert (layer.name, layer.units, layer.use_bias) == ("d", 5, True)
    assert layer.activation is dense.activation
    if frobenius_norm:
        state = layer.factor_state()
        assert state.gain == 1.0
        np.testing.assert_allclose(state.norm0, np.linalg.norm(dense.kernel.numpy()))


def test_from_dense_without_bias():
    dense = keras.layers.Dense(4, use_bias=False)
    dense.build((None, 3))
    layer = FactorizedDense.from_dense(dense)
    x = _normal(5, 3)
    np.testing.assert_allclose(layer(x), dense(x), atol=ATOL)
    assert layer.factor_state().bias is None


@pytest.mark.parametrize("frobenius_norm", [False, True])
def test_from_conv2d_gives_identical_outputs(frobenius_norm):
    conv = _built_conv(
        4, (7, 8, 3), kernel_size=(3, 2), strides=2, padding="same", activation="relu"
    )
    layer = FactorizedConv2D.from_conv2d(conv, frobenius_norm=frobenius_norm)
    x = _normal(2, 7, 8, 3)
    np.testing.assert_allclose(layer(x), conv(x), atol=ATOL)
    assert layer.compute_output_shape((2, 7, 8, 3)) == tuple(conv(x).shape)
    assert layer.factor_state().q_index.shape == (3 * 2 * 3,)


@pytest.mark.parametrize("frobenius_norm", [False, True])
def test_dense_non_trivial_state_matches_explicit_p_w_q(frobenius_norm):
    state = _dense_state(frobenius_norm)
    layer = FactorizedDense.from_state(state, name="fd")
    assert layer.features_in == 5
    x = _normal(7, 5)
    expected = _dense_reference(
        state, x.astype(np.float64), DENSE_FEATURE_OUTPUTS, DENSE_FEATURE_FACTORS
    )
    np.testing.assert_allclose(layer(x), expected, atol=ATOL)
    assert layer.compute_output_shape((7, 5)) == (7, 5)


def _identity_dense(frobenius_norm):
    """Every index the identity; masks, coefficients and scales are not."""
    arange = _ints(np.arange(4))
    state = _state(
        frobenius_norm,
        4,
        4,
        col_mask=_floats([1, 0, 1, 1]),
        row_mask=_floats([1, 1, 0, 1]),
        q_index=arange,
        q_coef=_floats([1.0, 0.5, -2.0, 1.0]),
        p_index=arange,
        p_coef=_floats(np.ones(4)),
        in_index=arange,
        in_scale=_floats([0.3, 1.0, 1.0, 2.0]),
        feature_group=arange,
        feature_scale=_floats([1.0, -1.5, 1.0, 0.25]),
    )
    return FactorizedDense.from_state(state)


@pytest.mark.parametrize("frobenius_norm", [False, True])
@pytest.mark.parametrize(
    ("make_layer", "input_shape"),
    [
        (lambda fn: FactorizedDense.from_state(_dense_state(fn)), (7, 5)),
        (lambda fn: FactorizedDense.from_state(_dense_state(fn)), (2, 3, 5)),
        (_identity_dense, (7, 4)),
    ],
    ids=["mapped", "mapped-3d", "identity"],
)
def test_dense_activation_side_path_matches_kernel_fold(
    make_layer, input_shape, frobenius_norm
):
    """Dense applies P and Q to activations; the base folds them into the kernel.

    Values and gradients (kernel, bias, gain, input) must agree, both on the
    gather path of a fused state and on the identity fast path.
    """
    layer = make_layer(frobenius_norm)
    x = tf.constant(_normal(*input_shape))
    weights = tf.constant(_normal(*input_shape[:-1], layer.features_out))

    def outputs_and_grads(pre_activation):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = pre_activation(layer, x, layer.kernel_scale())
            loss = tf.reduce_sum(y * weights)
        return [y, *tape.gradient(loss, [x, *layer.trainable_weights])]

    def kernel_fold(layer, inputs, scale):
        kernel = masked_kernel(layer.kernel, layer.col_mask, layer.row_mask)
        if layer.frobenius_norm:
            kernel = kernel * scale
        z = tf.tensordot(inputs, layer._fold_kernel(kernel), 1)
        z = z + layer.bias * layer.row_mask
        return tf.gather(z, layer.feature_group, axis=-1) * layer.feature_scale

    got = outputs_and_grads(FactorizedDense._pre_activation)
    want = outputs_and_grads(kernel_fold)
    assert len(got) == 4 + layer.frobenius_norm  # y, x, kernel, bias (, gain)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=ATOL)


def test_dense_features_pass_through_activation():
    state = _dense_state()
    layer = FactorizedDense.from_state(state, activation="relu", features_in=5)
    x = _normal(7, 5)
    expected = _dense_reference(
        state, x.astype(np.float64), DENSE_FEATURE_OUTPUTS, DENSE_FEATURE_FACTORS
    )
    np.testing.assert_allclose(layer(x), np.maximum(expected, 0), atol=ATOL)


@pytest.mark.parametrize("frobenius_norm", [False, True])
@pytest.mark.parametrize(("strides", "padding"), [((1, 1), "valid"), ((2, 1), "same")])
def test_conv_non_trivial_state_matches_explicit_kernel(
    frobenius_norm, strides, padding
):
    state = _conv_state(frobenius_norm)
    layer = FactorizedConv2D.from_state(
        state, kernel_size=(2, 3), strides=strides, padding=padding, name="fc"
    )
    assert (layer.features_in, layer.input_channels, layer.filters) == (2, 3, 4)
    x = _normal(2, 6, 7, 2)
    expected = _conv_reference(
        state,
        x,
        CONV_FEATURE_OUTPUTS,
        CONV_FEATURE_FACTORS,
        strides,
        padding.upper(),
    )
    outputs = layer(x)
    np.testing.assert_allclose(outputs, expected, atol=ATOL)
    assert layer.compute_output_shape(x.shape) == tuple(outputs.shape)


@pytest.mark.parametrize("frobenius_norm", [False, True])
def test_effective_kernel_matches_factor_state(frobenius_norm):
    for layer in (
        FactorizedDense.from_state(_dense_state(frobenius_norm)),
        FactorizedConv2D.from_state(_conv_state(frobenius_norm), kernel_size=(2, 3)),
    ):
        state = layer.factor_state()
        np.testing.assert_allclose(
            layer.effective_kernel(), state.effective_kernel, rtol=1e-6, atol=1e-7
        )
        np.testing.assert_allclose(
            state.effective_kernel, _effective_np(state), rtol=1e-6, atol=1e-7
        )


def test_frobenius_normalization_ignores_kernel_scale():
    layer = FactorizedDense.from_state(_dense_state(frobenius_norm=True))
    x = _normal(3, 5)
    before = layer(x)
    layer.kernel.assign(layer.kernel * 10.0)
    np.testing.assert_allclose(layer(x), before, atol=ATOL)


@pytest.mark.parametrize("frobenius_norm", [False, True])
def test_dense_to_plain_computes_the_same(frobenius_norm):
    layer = FactorizedDense.from_state(
        _dense_state(frobenius_norm), activation="tanh", name="fd"
    )
    plain = layer.to_plain()
    assert isinstance(plain, keras.layers.Dense)
    assert (plain.name, plain.units, plain.activation) == ("fd", 5, layer.activation)
    x = _normal(6, 5)
    np.testing.assert_allclose(plain(x), layer(x), atol=ATOL)
    assert plain.count_params() == 5 * 5 + 5  # features_in * features_out + bias


def test_conv_to_plain_computes_the_same():
    layer = FactorizedConv2D.from_state(
        _conv_state(True), kernel_size=(2, 3), strides=(1, 2), padding="same"
    )
    plain = layer.to_plain()
    assert isinstance(plain, keras.layers.Conv2D)
    x = _normal(2, 5, 6, 2)
    np.testing.assert_allclose(plain(x), layer(x), atol=ATOL)
    assert plain.count_params() == 2 * 3 * 2 * 4 + 4


@pytest.mark.parametrize(
    ("make_layer", "input_shape", "output_shape", "trainable_params", "config"),
    [
        (
            lambda: FactorizedDense(
                3, activation="relu", frobenius_norm=True, name="a"
            ),
            (4, 5),
            (4, 3),
            5 * 3 + 3 + 1,
            {},
        ),
        (
            lambda: FactorizedDense.from_state(_dense_state(True), name="b"),
            (4, 5),
            (4, 5),
            4 * 4 + 4 + 1,
            dict(units=5, input_dim=6, features_out=5, groups_in=4, groups_out=4),
        ),
        (
            lambda: FactorizedDense.from_state(_dense_state(True), activation="relu"),
            (2, 3, 5),
            (2, 3, 5),
            4 * 4 + 4 + 1,
            {},
        ),
        (
            lambda: FactorizedDense.from_dense(_built_dense(4, 5), frobenius_norm=True),
            (4, 5),
            (4, 4),
            5 * 4 + 4 + 1,
            {},
        ),
        (
            lambda: FactorizedConv2D(2, 3, strides=2, padding="same", name="c"),
            (2, 6, 7, 3),
            (2, 3, 4, 2),
            3 * 3 * 3 * 2 + 2,
            {},
        ),
        (
            lambda: FactorizedConv2D.from_state(
                _conv_state(), kernel_size=(2, 3), name="e"
            ),
            (2, 5, 6, 2),
            (2, 4, 4, 4),
            10 * 3 + 3,
            dict(input_channels=3, groups_in=10, groups_out=3, features_out=4),
        ),
        (
            lambda: FactorizedConv2D.from_state(
                _conv_state(True), kernel_size=(2, 3), padding="same", activation="relu"
            ),
            (2, 5, 6, 2),
            (2, 5, 6, 4),
            10 * 3 + 3 + 1,
            {},
        ),
    ],
    ids=[
        "dense-unbuilt",
        "dense-from_state",
        "dense-from_state-relu-3d",
        "dense-from_dense",
        "conv-unbuilt",
        "conv-from_state",
        "conv-from_state-relu-same",
    ],
)
def test_layer_contract(
    make_layer, input_shape, output_shape, trainable_params, config, tmp_path
):
    contract = check_layer_contract(
        make_layer,
        input_shape,
        tmp_path,
        expected_output_shape=output_shape,
        expected_trainable_params=trainable_params,
    )
    assert {key: contract.config[key] for key in config} == config
    _assert_states_equal(contract.loaded.factor_state(), contract.layer.factor_state())


_BOOKKEEPING = (
    "norm0",
    "col_mask",
    "row_mask",
    "q_index",
    "q_coef",
    "p_index",
    "p_coef",
    "in_index",
    "in_scale",
    "feature_group",
    "feature_scale",
)


@pytest.mark.parametrize(
    ("make_layer", "input_shape"),
    [
        (lambda: FactorizedDense.from_state(_dense_state(True)), (5,)),
        (
            lambda: FactorizedConv2D.from_state(
                _conv_state(True), kernel_size=(2, 3), padding="same"
            ),
            (4, 4, 2),
        ),
    ],
    ids=["dense", "conv"],
)
def test_fit_moves_only_trainable_factors(make_layer, input_shape):
    layer = make_layer()
    assert [w.name for w in layer.trainable_weights] == ["kernel", "bias", "gain"]
    assert {w.name for w in layer.non_trainable_weights} == set(_BOOKKEEPING)
    for name in ("q_index", "p_index", "in_index", "feature_group"):
        assert getattr(layer, name).dtype == "int32"
    model = keras.Sequential([keras.Input(input_shape), layer])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    before = layer.factor_state()
    x = _normal(16, *input_shape)
    y = _normal(16, *model.output_shape[1:])
    model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    after = layer.factor_state()
    assert not np.allclose(after.kernel, before.kernel)
    assert after.gain != before.gain
    for name in _BOOKKEEPING:
        np.testing.assert_array_equal(getattr(after, name), getattr(before, name))
    # Masked groups get no gradient, so Adam leaves them where they were.
    dead_cols = before.col_mask == 0
    np.testing.assert_array_equal(after.kernel[dead_cols], before.kernel[dead_cols])


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: FactorizedDense(0), r"units >= 1.*units=0"),
        (lambda: FactorizedDense(3, groups_in=0), r"groups_in=0"),
        (lambda: FactorizedDense(3, groups_out=-1), r"groups_out=-1"),
        (lambda: FactorizedDense(3, features_out=0), r"features_out=0"),
        (lambda: FactorizedConv2D(0, 3), r"filters=0"),
        (lambda: FactorizedConv2D(2, 3, padding="full"), r"padding='full'"),
        (lambda: FactorizedConv2D(2, (3, 0)), r"kernel_size=\(3, 0\)"),
        (
            lambda: FactorizedConv2D(2, 3, data_format="channels_first"),
            r"data_format='channels_first'",
        ),
    ],
)
def test_bad_arguments_raise_config_error(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_assign_factor_state_wrong_shape_names_field_and_shapes():
    layer = FactorizedDense.from_state(_dense_state())
    before = layer.factor_state()
    state = before.copy()
    state.kernel = state.kernel + 1.0  # would change, but must not be assigned
    state.q_index = _ints([0, 1, 2])
    with pytest.raises(ConfigError, match=r"'q_index'.*\(3,\).*\(6,\)"):
        layer.assign_factor_state(state)
    _assert_states_equal(layer.factor_state(), before)


def test_assign_factor_state_skips_fields_equal_to_unchanged():
    layer = FactorizedDense.from_state(_dense_state())
    before = layer.factor_state()
    state = dataclasses.replace(before, kernel=before.kernel + 1.0)
    layer.bias.assign(np.zeros(4, np.float32))  # behind the state's back
    layer.assign_factor_state(state, unchanged=before)
    np.testing.assert_array_equal(layer.kernel.numpy(), before.kernel + 1.0)
    np.testing.assert_array_equal(layer.bias.numpy(), np.zeros(4))  # skipped
    layer.assign_factor_state(state)
    np.testing.assert_array_equal(layer.bias.numpy(), before.bias)


def test_assign_factor_state_rejects_missing_bias_and_bad_indices():
    layer = FactorizedDense.from_state(_dense_state())
    state = layer.factor_state()
    with pytest.raises(ConfigError, match="'bias'.*use_bias=True"):
        layer.assign_factor_state(dataclasses.replace(state, bias=None))
    with pytest.raises(ConfigError, match="'gain'.*frobenius_norm=False"):
        layer.assign_factor_state(dataclasses.replace(state, gain=_floats(1.0)))
    bad = dataclasses.replace(state, feature_group=_ints([0, 1, 4, 2, 3]))
    with pytest.raises(ConfigError, match="'feature_group'.*groups_out=4"):
        layer.assign_factor_state(bad)


def test_from_conv2d_rejects_dilation():
    conv = keras.layers.Conv2D(2, 3, dilation_rate=2)
    conv.build((None, 9, 9, 1))
    with pytest.raises(ConfigError, match="dilation"):
        FactorizedConv2D.from_conv2d(conv)


def test_conv_from_state_needs_kernel_size():
    with pytest.raises(ConfigError, match="kernel_size"):
        FactorizedConv2D.from_state(_conv_state())


@pytest.mark.parametrize(("frobenius_norm", "expected"), [(False, 20), (True, 21)])
def test_params_count_only_trainable_factors(frobenius_norm, expected):
    layer = FactorizedDense.from_dense(_built_dense(5, 3), frobenius_norm)
    assert layer_cost(layer).params == expected
    assert layer_cost(layer).macs == 3 * 5  # P = Q = I cost nothing
    model = keras.Sequential([keras.Input((3,)), layer])
    assert model_cost(model).params == expected


def test_macs_of_states_with_fewer_groups():
    dense = FactorizedDense.from_state(_dense_state())
    # W' 4x4, plus Q over 6 inputs (4 < 6), plus P over 5 outputs (4 < 5).
    assert layer_cost(dense).macs == 4 * 4 + 6 + 5
    assert layer_cost(dense).params == 4 * 4 + 4
    conv = FactorizedConv2D.from_state(
        _conv_state(), kernel_size=(2, 3), input_shape=(None, 5, 6, 2)
    )
    model = keras.Sequential([keras.Input((5, 6, 2)), conv])
    # 4 x 4 output positions; W' 10x3, Q over 2*3*3 = 18, P over 4 filters.
    assert model_cost(model).macs == 4 * 4 * (10 * 3 + 18 + 4)
    assert model_cost(model).params == 10 * 3 + 3


def test_register_params_rejects_non_layer_classes():
    with pytest.raises(ConfigError, match="register_params.*keras.layers.Layer"):
        register_params(int)
