"""The BatchNormalization cost rule says "folded" exactly where LiteRT folds it."""

import keras
import numpy as np
import pytest

from keras_rank.core.costs import layer_cost
from keras_rank.core.tflite_file import read_summary
from keras_rank.export.litert import export_litert

GRAPHS = {
    "conv": ((8, 8, 3), lambda x: keras.layers.Conv2D(4, 3)(x), True),
    "dense": ((5,), lambda x: keras.layers.Dense(3)(x), True),
    "depthwise": ((8, 8, 3), lambda x: keras.layers.DepthwiseConv2D(3)(x), True),
    "separable": ((8, 8, 3), lambda x: keras.layers.SeparableConv2D(4, 3)(x), True),
    "conv1d": ((10, 3), lambda x: keras.layers.Conv1D(4, 3)(x), True),
    "depthwise1d": ((10, 3), lambda x: keras.layers.DepthwiseConv1D(3)(x), True),
    "conv_relu": (
        (8, 8, 3),
        lambda x: keras.layers.Conv2D(4, 3, activation="relu")(x),
        False,
    ),
    "conv3d": ((6, 6, 6, 2), lambda x: keras.layers.Conv3D(4, 3)(x), False),
    "input": ((8, 8, 3), lambda x: x, False),
}


def _model(name):
    shape, producer, _ = GRAPHS[name]
    inputs = keras.Input(shape)
    bn = keras.layers.BatchNormalization(name="bn")
    outputs = bn(producer(inputs))
    return keras.Model(inputs, outputs), bn


def _model_with_a_second_consumer():
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(4, 3)(inputs)
    bn = keras.layers.BatchNormalization(name="bn")
    return keras.Model(inputs, keras.layers.Add()([bn(conv), conv])), bn


def _trained_statistics(bn):
    rng = np.random.default_rng(0)
    channels = bn.gamma.shape[0]
    bn.set_weights(
        [rng.uniform(0.5, 1.5, channels), rng.normal(size=channels)]
        + [rng.normal(size=channels), rng.uniform(0.5, 1.5, channels)]
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", [*GRAPHS, "second_consumer"])
def test_the_note_matches_the_converter(name, tmp_path):
    if name == "second_consumer":
        model, bn = _model_with_a_second_consumer()
        expect_folded = False
    else:
        model, bn = _model(name)
        expect_folded = GRAPHS[name][2]
    _trained_statistics(bn)
    path = tmp_path / "model.tflite"
    export_litert(model, path, "float32")
    ops = set(read_summary(path).ops)
    # A normalization left in the file is a MUL (scale) beside an ADD (shift).
    converter_folded = "MUL" not in ops
    cost = layer_cost(bn)
    assert converter_folded == expect_folded, ops
    assert cost.note.startswith("folded") == expect_folded
    assert (cost.macs == 0) == expect_folded
