"""The one registry of layer matrices: every layer's M in one orientation."""

import keras
import numpy as np
import pytest

from keras_rank.core.compressible import compressible_layers, why_not_compressible
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import (
    kernel_as_matrix,
    kernel_from_matrix,
    layer_matrix,
    unit_matrix,
)
from keras_rank.layers import (
    FactorizedConv2D,
    FactorizedDense,
    LowRankConv2D,
    LowRankDense,
)


def _dense(units=4, inputs=6):
    layer = keras.layers.Dense(units, name="d")
    layer.build((None, inputs))
    return layer


def _conv(filters=5, kernel=(3, 2), channels=3, **kwargs):
    layer = keras.layers.Conv2D(filters, kernel, name="c", **kwargs)
    layer.build((None, 8, 8, channels))
    return layer


def test_dense_and_conv_matrices_are_inputs_by_units():
    dense, conv = _dense(), _conv()
    np.testing.assert_array_equal(layer_matrix(dense), dense.kernel.numpy())
    kernel = conv.kernel.numpy()
    np.testing.assert_array_equal(layer_matrix(conv), kernel.reshape(3 * 2 * 3, 5))
    # Heitmann's unit matrix is the transpose: one row per unit.
    np.testing.assert_array_equal(unit_matrix(conv.kernel), layer_matrix(conv).T)
    np.testing.assert_array_equal(unit_matrix(dense.kernel), layer_matrix(dense).T)


@pytest.mark.parametrize("scheme", [1, 2])
def test_kernel_from_matrix_inverts_kernel_as_matrix(scheme):
    kernel = _conv().kernel
    matrix = kernel_as_matrix(kernel, scheme)
    expected = {1: (18, 5), 2: (9, 10)}[scheme]
    assert tuple(matrix.shape) == expected
    restored = kernel_from_matrix(matrix, tuple(kernel.shape), scheme)
    np.testing.assert_array_equal(restored.numpy(), kernel.numpy())


def test_full_rank_low_rank_layers_have_the_plain_layers_matrix():
    dense = _dense()
    low = LowRankDense.from_dense(dense, rank=4)
    np.testing.assert_allclose(layer_matrix(low), dense.kernel.numpy(), atol=1e-5)
    conv = _conv()
    for scheme, rank in ((1, 5), (2, 9)):
        low_conv = LowRankConv2D.from_conv2d(conv, rank, scheme=scheme)
        # Always scheme 1, whatever scheme the layer computes in.
        np.testing.assert_allclose(
            layer_matrix(low_conv), layer_matrix(conv), atol=1e-5
        )


def test_a_low_rank_layers_matrix_has_its_rank():
    low = LowRankConv2D.from_conv2d(_conv(), 2, scheme=2)
    assert (
        np.linalg.matrix_rank(
            kernel_as_matrix(
                kernel_from_matrix(layer_matrix(low), (3, 2, 3, 5)), 2
            ).numpy(),
            tol=1e-5,
        )
        == 2
    )


def test_factorized_layers_have_their_plain_forms_matrix():
    dense, conv = _dense(), _conv(padding="same")
    for layer, plain in (
        (FactorizedDense.from_dense(dense), dense),
        (FactorizedConv2D.from_conv2d(conv), conv),
    ):
        np.testing.assert_allclose(layer_matrix(layer), layer_matrix(plain), atol=1e-6)


def test_a_layer_without_a_matrix_is_refused_by_name():
    layer = keras.layers.BatchNormalization(name="bn")
    layer.build((None, 4))
    with pytest.raises(ConfigError, match="layer 'bn' of type BatchNormalization"):
        layer_matrix(layer)


def test_the_one_compressible_rule():
    assert why_not_compressible(_dense()) is None
    assert why_not_compressible(_conv()) is None
    assert "groups" in why_not_compressible(_conv(channels=4, groups=2, filters=4))
    assert "dilation" in why_not_compressible(_conv(dilation_rate=2))
    assert "Flatten" in why_not_compressible(keras.layers.Flatten())
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Softmax()(inputs), name="no_weights")
    assert compressible_layers(model, required=False) == []
    with pytest.raises(ConfigError, match="no layer LC can compress"):
        compressible_layers(model)
