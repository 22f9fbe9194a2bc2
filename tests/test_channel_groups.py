"""Channel groups: which layers lose a unit with a layer, and pruning across them."""

import keras
import numpy as np
import pytest

from keras_rank import models
from keras_rank.analysis.pruning import prune_units
from keras_rank.core.channel_groups import channel_group
from keras_rank.core.compressible import compressible_layers
from keras_rank.core.errors import ConfigError
from keras_rank.core.graph import ModelGraph


def _zoo(name):
    return models.build_model(name, (12, 12, 1), 10)


def _group(model, name):
    editable = {layer.name for layer in compressible_layers(model)}
    return channel_group(ModelGraph(model), model.get_layer(name), editable)


def _names(layers):
    return sorted(layer.name for layer in layers)


def _mobile_net():
    """Stem -> BN -> hard-swish (tensor arithmetic) -> depthwise -> BN ->
    squeeze-excite gate (Multiply) -> 1x1 projection -> BN -> residual Add
    with the stem's output -> GAP -> Dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((9, 9, 2))
    x = keras.layers.Conv2D(6, 3, use_bias=False, name="stem")(inputs)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = x * keras.ops.relu6(x + 3.0) / 6.0
    y = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    y = keras.layers.BatchNormalization(name="dw_bn")(y)
    gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(y)
    gate = keras.layers.Conv2D(3, 1, activation="relu", name="se_reduce")(gate)
    gate = keras.layers.Conv2D(6, 1, activation="sigmoid", name="se_expand")(gate)
    y = keras.layers.Multiply(name="excite")([y, gate])
    y = keras.layers.Conv2D(6, 1, name="project")(y)
    y = keras.layers.BatchNormalization(name="project_bn")(y)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(4, name="logits")(x)
    model = keras.Model(inputs, outputs)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # Moving statistics away from 0 and 1.
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights(
                [rng.normal(size=w.shape) ** 2 + 0.5 for w in layer.get_weights()]
            )
    return model


def test_a_residual_add_ties_the_channels_of_every_branch():
    model = models.build_model("resnet20", (12, 12, 1), 10)
    group = _group(model, "stage1_block2_conv_2")
    assert _names(group.producers) == [
        "stage1_block1_conv_2", "stage1_block2_conv_2", "stage1_block3_conv_2",
        "stem_conv",
    ]  # fmt: skip
    assert _names(reader.layer for reader in group.readers) == [
        "stage1_block1_conv_1", "stage1_block2_conv_1", "stage1_block3_conv_1",
        "stage2_block1_conv_1", "stage2_block1_shortcut_conv",
    ]  # fmt: skip
    assert _names(group.sliced) == [
        "stage1_block1_bn_2",
        "stage1_block2_bn_2",
        "stage1_block3_bn_2",
        "stem_bn",
    ]
    assert group.blocked == ""
    inner = _group(model, "stage1_block2_conv_1")
    assert _names(inner.producers) == ["stage1_block2_conv_1"]
    assert _names(r.layer for r in inner.readers) == ["stage1_block2_conv_2"]


def test_depthwise_gates_and_tensor_arithmetic_carry_the_channels():
    model = _mobile_net()
    group = _group(model, "stem")
    assert _names(group.producers) == ["project", "se_expand", "stem"]
    assert _names(group.sliced) == ["dw", "dw_bn", "project_bn", "stem_bn"]
    assert _names(r.layer for r in group.readers) == ["logits", "project", "se_reduce"]
    assert group.blocked == ""


@pytest.mark.parametrize(
    "make, layer, blocked",
    [
        ("output", "logits", "they reach a model output"),
        ("norm", "conv", "they are read by layer 'norm' (LayerNormalization)"),
        ("shared_bn", "conv", "layer 'bn' (BatchNormalization) is shared"),
        ("input_add", "conv", "they are channels of a model input"),
        ("attention", "conv", "layer 'mul' (Multiply) combines them with other widths"),
    ],
)
def test_channels_that_cannot_go_say_why(make, layer, blocked):
    inputs = keras.Input((5, 5, 3))
    if make != "attention":
        x = keras.layers.Conv2D(3, 1, name="conv")(inputs)
    if make == "norm":
        x = keras.layers.LayerNormalization(name="norm")(x)
    if make == "shared_bn":
        bn = keras.layers.BatchNormalization(name="bn")
        x = keras.layers.Add(name="sum")([bn(x), bn(inputs)])
    if make == "input_add":
        x = keras.layers.Add(name="sum")([x, inputs])
    if make == "attention":  # One channel, broadcast over three.
        attention = keras.layers.Conv2D(1, 1, name="conv")(inputs)
        x = keras.layers.Conv2D(3, 1, name="features")(inputs)
        x = keras.layers.Multiply(name="mul")([x, attention])
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(x))
    assert _group(model, layer).blocked == blocked


def _zeroed_at_readers(model, group_layer, channels):
    """A copy of `model` whose readers of `group_layer`'s channels ignore `channels`."""
    copy = keras.Model.from_config(model.get_config())
    copy.set_weights(model.get_weights())
    for reader in _group(model, group_layer).readers:
        kernel = copy.get_layer(reader.layer.name).kernel
        value = keras.ops.convert_to_numpy(kernel)
        value[..., reader.rows[channels].ravel(), :] = 0
        kernel.assign(value)
    return copy


@pytest.mark.parametrize(
    "make, layer, channels",
    [
        (lambda: _mobile_net(), "stem", [1, 4]),
        (lambda: _mobile_net(), "se_reduce", [0]),
        (lambda: _zoo("resnet20"), "stem_conv", [0, 5, 9]),
        (lambda: _zoo("mobilenetv2_small"), "block2_expand_conv", [3, 50]),
    ],
)  # fmt: skip
def test_pruning_a_group_computes_the_model_with_those_channels_zeroed(
    make, layer, channels
):
    model = make()
    pruned = prune_units(model, layer, channels)
    group = _group(model, layer)
    for producer in group.producers:
        assert pruned.get_layer(producer.name).kernel.shape[-1] == group.channels - len(
            channels
        )
    for sliced in group.sliced:
        assert all(
            w.shape[0 if w.ndim == 1 else 2] == group.channels - len(channels)
            for w in pruned.get_layer(sliced.name).get_weights()
        )
    x = np.random.default_rng(1).normal(size=(3, *model.input_shape[1:]))
    expected = _zeroed_at_readers(model, layer, channels)(x)
    np.testing.assert_allclose(pruned(x), expected, atol=2e-5, rtol=1e-5)


def test_pruning_refuses_blocked_channels_with_the_reason():
    model = models.build_model("resnet20", (12, 12, 1), 10)
    with pytest.raises(ConfigError, match="they reach a model output"):
        prune_units(model, "dense_1", [0])


def test_a_reader_shared_by_two_tied_branches_reads_the_group_at_every_call():
    inputs = keras.Input((6,))
    a = keras.layers.Dense(4, name="a")(inputs)
    b = keras.layers.Dense(4, name="b")(inputs)
    shared = keras.layers.Dense(3, name="shared")
    x = keras.layers.Add(name="sum")([shared(a), shared(b)])
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    # a and b are separate groups, each read by one call of `shared`.
    assert "is shared and reads other channels" in _group(model, "a").blocked
    tied = keras.layers.Add(name="tie")([a, b])
    x = keras.layers.Add(name="sum2")([shared(tied), shared(a)])
    model = keras.Model(inputs, keras.layers.Dense(2, name="out2")(x))
    group = _group(model, "a")  # b joins through the tie: both calls read it.
    assert group.blocked == "" and _names(group.producers) == ["a", "b"]


def test_pruning_a_layer_no_method_edits_says_what_can_be_pruned():
    inputs = keras.Input((7, 7, 2))
    x = keras.layers.Conv2D(3, 3, dilation_rate=2, name="dilated")(inputs)
    x = keras.layers.Conv2D(3, 1, name="next")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(x))
    with pytest.raises(ConfigError, match="units cannot go: it is not Dense, and"):
        prune_units(model, "dilated", [0])
