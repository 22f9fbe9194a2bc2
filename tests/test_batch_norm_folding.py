"""Folding BatchNormalization into its producer computes what the model did."""

import keras
import numpy as np
import pytest
from test_costs_batch_norm_export import GRAPHS, _model, _trained_statistics

from keras_rank.core.batch_norm_folding import fold_batch_norms
from keras_rank.core.cloning import clone_replacing
from keras_rank.layers import LowRankConv2D
from keras_rank.layers.deployable import deployable_model
from keras_rank.models import build_model


def _inputs(model, count=4):
    shape = (count, *model.inputs[0].shape[1:])
    return np.random.default_rng(1).normal(size=shape).astype(np.float32)


def _bn_names(model):
    return [
        x.name for x in model.layers if isinstance(x, keras.layers.BatchNormalization)
    ]


@pytest.mark.parametrize("name", GRAPHS)
def test_folds_exactly_where_the_converter_folds(name):
    model, bn = _model(name)
    _trained_statistics(bn)
    folded, names = fold_batch_norms(model)
    x = _inputs(model)
    np.testing.assert_allclose(
        folded(x, training=False), model(x, training=False), rtol=1e-5, atol=1e-5
    )
    expect_folded = GRAPHS[name][2]
    assert names == (("bn",) if expect_folded else ())
    assert _bn_names(folded) == ([] if expect_folded else ["bn"])


@pytest.mark.parametrize(
    "options",
    [{"center": False}, {"scale": False}, {"epsilon": 0.5}],
)
def test_folds_every_normalization_variant_after_a_biased_layer(options):
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.Conv2D(5, 3, use_bias=True, name="conv")(inputs)
    bn = keras.layers.BatchNormalization(name="bn", **options)
    model = keras.Model(inputs, bn(x))
    rng = np.random.default_rng(2)
    bn.set_weights([rng.uniform(0.5, 1.5, 5) for _ in bn.get_weights()])
    model.get_layer("conv").bias.assign(rng.normal(size=5))
    folded, names = fold_batch_norms(model)
    x = _inputs(model)
    assert names == ("bn",)
    np.testing.assert_allclose(folded(x), model(x, training=False), atol=1e-5)


@pytest.mark.parametrize("net", ["resnet20", "mobilenetv2_small"])
def test_zoo_nets_lose_every_normalization_and_compute_the_same(net):
    model = build_model(net)
    rng = np.random.default_rng(3)
    for name in _bn_names(model):
        _trained_statistics(model.get_layer(name))
    folded, names = fold_batch_norms(model)
    assert sorted(names) == sorted(_bn_names(model)) and _bn_names(folded) == []
    assert folded.count_params() < model.count_params()
    x = rng.normal(size=(2, 28, 28, 1)).astype(np.float32)
    expected = model(x, training=False)
    np.testing.assert_allclose(folded(x), expected, rtol=1e-4, atol=1e-4)


def test_a_sequential_model_stays_sequential_and_nothing_to_fold_is_no_copy():
    model = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(3), keras.layers.BatchNormalization()]
    )
    _trained_statistics(model.layers[1])
    folded, names = fold_batch_norms(model)
    assert isinstance(folded, keras.Sequential) and len(names) == 1
    x = _inputs(model)
    np.testing.assert_allclose(folded(x), model(x, training=False), atol=1e-5)
    plain = keras.Sequential([keras.Input((5,)), keras.layers.Dense(3)])
    assert fold_batch_norms(plain) == (plain, ())


def test_a_depthwise_multiplier_scales_each_input_channels_outputs():
    inputs = keras.Input((6, 6, 3))
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(inputs)
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(x))
    _trained_statistics(bn)
    folded, names = fold_batch_norms(model)
    x = _inputs(model)
    assert names == ("bn",)
    np.testing.assert_allclose(folded(x), model(x, training=False), atol=1e-5)


def test_deployable_model_folds_into_the_second_conv_of_a_low_rank_pair():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    conv = keras.layers.Conv2D(6, 3, use_bias=False, name="conv")
    bn = keras.layers.BatchNormalization(name="bn")
    model = keras.Model(inputs, bn(conv(inputs)))
    _trained_statistics(bn)
    low_rank = clone_replacing(
        model,
        lambda layer: LowRankConv2D.from_conv2d(layer, 2) if layer is conv else None,
    )
    plain = deployable_model(low_rank, fold_batch_norm=True)
    assert [type(x).__name__ for x in plain.layers[1:]] == ["Conv2D", "Conv2D"]
    assert plain.layers[2].use_bias and not plain.layers[1].use_bias
    x = _inputs(model)
    np.testing.assert_allclose(plain(x), low_rank(x, training=False), atol=1e-5)
