import json

import keras
import pytest

from keras_rank.core.costs import (
    FLOPS_CONVENTIONS,
    LayerCost,
    ModelCost,
    format_cost_table,
    layer_cost,
    model_cost,
    register_cost,
)
from keras_rank.core.errors import ConfigError
from keras_rank.models import build_model


def _macs_by_name(cost):
    return {layer.name: layer.macs for layer in cost.layers}


def _built(layer, input_shape):
    inputs = keras.Input(shape=input_shape)
    keras.Model(inputs, layer(inputs))
    return layer


def test_mlp_params_and_both_flop_conventions():
    cost = model_cost(build_model("mlp"))
    assert cost.params == 1_399_510
    # 784*500 + 4*500*500 + 500*10: Lee et al. 2021 report 2.79 M FLOPs (2 per MAC).
    assert cost.macs == 784 * 500 + 4 * 500 * 500 + 500 * 10 == 1_397_000
    assert cost.flops_mac1 == 1_397_000
    assert cost.flops_mac2 == 2_794_000
    assert cost.uncounted == ()


def test_mlp_layers_in_order_without_input_layer():
    cost = model_cost(build_model("mlp"))
    assert [layer.name for layer in cost.layers] == [
        "flatten",
        "dense_1",
        "dropout_1",
        "dense_2",
        "dropout_2",
        "dense_3",
        "dropout_3",
        "dense_4",
        "dropout_4",
        "dense_5",
        "dropout_5",
        "dense_6",
    ]
    by_name = {layer.name: layer for layer in cost.layers}
    assert by_name["dense_1"] == LayerCost("dense_1", "Dense", 392_500, 392_000)
    assert by_name["dropout_1"] == LayerCost("dropout_1", "Dropout", 0, 0)
    assert by_name["flatten"] == LayerCost("flatten", "Flatten", 0, 0)


def test_lenet300_macs():
    cost = model_cost(build_model("lenet300"))
    assert cost.params == 266_610
    assert cost.macs == 784 * 300 + 300 * 100 + 100 * 10


def test_lenet5_macs_by_hand():
    cost = model_cost(build_model("lenet5"))
    assert _macs_by_name(cost) == {
        "conv_1": 24 * 24 * 5 * 5 * 1 * 20,  # 28 - 5 + 1 = 24
        "pool_1": 0,
        "conv_2": 8 * 8 * 5 * 5 * 20 * 50,  # 12 - 5 + 1 = 8
        "pool_2": 0,
        "flatten": 0,
        "dense_1": 800 * 500,  # 4 * 4 * 50 = 800
        "dense_2": 500 * 10,
    }
    assert cost.macs == 288_000 + 1_600_000 + 400_000 + 5_000
    assert cost.params == 431_080


def test_conv2d_with_strides_same_padding_and_groups():
    conv = keras.layers.Conv2D(
        16, (3, 5), strides=2, padding="same", groups=4, name="grouped"
    )
    _built(conv, (31, 32, 8))
    cost = layer_cost(conv)
    # 'same' with stride 2: ceil(31/2) x ceil(32/2) = 16 x 16 outputs;
    # each output channel sees 8 / 4 = 2 input channels through a 3x5 window.
    assert cost.macs == 16 * 16 * 3 * 5 * 2 * 16
    assert cost.params == 3 * 5 * 2 * 16 + 16
    assert cost.kind == "Conv2D"


def test_conv2d_channels_first():
    conv = keras.layers.Conv2D(6, 3, data_format="channels_first")
    _built(conv, (4, 10, 12))
    assert layer_cost(conv).macs == 8 * 10 * 3 * 3 * 4 * 6


@pytest.mark.parametrize(
    ("layer", "input_shape", "expected"),
    [
        (keras.layers.Conv1D(5, 3, strides=2), (11, 4), 5 * 3 * 4 * 5),
        (keras.layers.Conv3D(2, 2), (3, 4, 5, 3), 2 * 3 * 4 * 2 * 2 * 2 * 3 * 2),
    ],
)
def test_conv1d_and_conv3d(layer, input_shape, expected):
    _built(layer, input_shape)
    assert layer_cost(layer).macs == expected


def test_dense_on_sequences_counts_every_position():
    dense = _built(keras.layers.Dense(4), (7, 3))
    assert layer_cost(dense).macs == 7 * 3 * 4


def test_unknown_spatial_dims_raise_config_error():
    conv = _built(keras.layers.Conv2D(4, 3, name="conv_x"), (None, None, 1))
    with pytest.raises(ConfigError, match="'conv_x'.*input_shape"):
        layer_cost(conv)


class _Scale(keras.layers.Layer):
    """A layer with weights: y = x * w, elementwise over the last axis."""

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.w


class _SubScale(_Scale):
    pass


class _RuledScale(_Scale):
    pass


class _WideDense(keras.layers.Dense):
    pass


def test_register_cost_is_looked_up_through_the_mro():
    @register_cost(_RuledScale)
    def _ruled_scale_macs(layer):
        return 3 * layer.w.shape[0]

    class _SubRuledScale(_RuledScale):
        pass

    assert _ruled_scale_macs(_built(_RuledScale(), (5,))) == 15  # returned unchanged
    assert layer_cost(_built(_RuledScale(), (5,))).macs == 15
    assert layer_cost(_built(_SubRuledScale(), (4,))).macs == 12
    assert layer_cost(_built(_Scale(), (4,))).macs is None


def test_subclass_rule_overrides_base_rule():
    dense = _built(_WideDense(2), (3,))
    assert layer_cost(dense).macs == 3 * 2  # inherits the Dense rule

    @register_cost(_WideDense)
    def _wide_dense_macs(layer):
        return 1000

    assert layer_cost(dense).macs == 1000
    assert layer_cost(_built(keras.layers.Dense(2), (3,))).macs == 6


def test_register_cost_rejects_non_layer_classes():
    with pytest.raises(ConfigError, match="keras.layers.Layer.*int"):
        register_cost(int)


def test_layer_with_weights_and_no_rule_is_uncounted():
    inputs = keras.Input(shape=(4,))
    x = _SubScale(name="scale")(inputs)
    outputs = keras.layers.Dense(2, name="head")(x)
    cost = model_cost(keras.Model(inputs, outputs))
    assert cost.uncounted == ("scale",)
    assert _macs_by_name(cost) == {"scale": None, "head": 8}
    assert cost.params == 4 + 4 * 2 + 2
    assert cost.macs == 8
    assert cost.flops_mac2 == 16
    scale = cost.layers[0]
    assert scale.flops_mac1 is None and scale.flops_mac2 is None


def test_nested_models_are_walked_with_prefixed_names():
    inner = keras.Sequential(
        [keras.Input(shape=(6,)), keras.layers.Dense(5, name="dense_1")], name="inner"
    )
    inputs = keras.Input(shape=(6,))
    outputs = keras.layers.Dense(2, name="dense_1")(inner(inputs))
    model = keras.Model(inputs, outputs, name="outer")
    cost = model_cost(model)
    assert _macs_by_name(cost) == {"inner/dense_1": 30, "dense_1": 10}
    assert cost.params == model.count_params()


def test_unbuilt_layer_raises_config_error():
    with pytest.raises(ConfigError, match="'late'.*not built.*call"):
        layer_cost(keras.layers.Dense(3, name="late"))


def test_unbuilt_model_raises_config_error():
    model = keras.Sequential([keras.layers.Dense(3)], name="lazy")
    with pytest.raises(ConfigError, match="'lazy'.*not built"):
        model_cost(model)


def test_model_cost_as_dict_is_json_serializable():
    cost = model_cost(build_model("lenet5"))
    data = json.loads(json.dumps(cost.as_dict()))
    assert data["params"] == 431_080
    assert data["flops_mac1"] == cost.macs
    assert data["flops_mac2"] == 2 * cost.macs
    assert data["uncounted"] == []
    assert data["flops_conventions"] == FLOPS_CONVENTIONS
    assert set(FLOPS_CONVENTIONS) == {"flops_mac1", "flops_mac2"}
    assert data["layers"][0] == {
        "name": "conv_1",
        "kind": "Conv2D",
        "params": 520,
        "macs": 288_000,
        "flops_mac1": 288_000,
        "flops_mac2": 576_000,
    }


def test_empty_model_cost_totals_are_zero():
    cost = ModelCost(layers=())
    assert (cost.params, cost.macs, cost.flops_mac2, cost.uncounted) == (0, 0, 0, ())


def test_format_cost_table_has_rows_and_total():
    table = format_cost_table(model_cost(build_model("mlp")))
    lines = table.splitlines()
    assert lines[0].split() == ["layer", "kind", "params", "MACs"]
    total = next(line for line in lines if line.startswith("total"))
    assert total.split() == ["total", "1,399,510", "1,397,000"]
    assert any(
        line.split() == ["dense_1", "Dense", "392,500", "392,000"] for line in lines
    )
    assert "2,794,000" in table
    # Fixed width: the numeric columns end at the same position on every row.
    rows = [line for line in lines if line and line[0] != "-" and "FLOPs" not in line]
    assert len({len(line) for line in rows}) == 1


def test_format_cost_table_lists_uncounted_layers():
    inputs = keras.Input(shape=(4,))
    model = keras.Model(inputs, _Scale(name="mystery")(inputs))
    table = format_cost_table(model_cost(model))
    assert "n/a" in table
    assert "mystery" in table.splitlines()[-1]


@pytest.mark.parametrize(
    "layer, input_shape, expected",
    [
        # 8x8 positions * 3x3 kernel * 4 channels * multiplier 2.
        (
            keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
            (8, 8, 4),
            64 * 9 * 4 * 2,
        ),
        # Stride 2, valid: 4x4 positions.
        (keras.layers.DepthwiseConv2D(3, strides=2), (9, 9, 3), 16 * 9 * 3),
        (keras.layers.DepthwiseConv1D(3), (10, 4), 8 * 3 * 4),
        # Depthwise 5x5 * 9 * 4 * 2 = 1800, then pointwise 5x5 * 8 * 6 = 1200.
        (keras.layers.SeparableConv2D(6, 3, depth_multiplier=2), (7, 7, 4), 3000),
        (keras.layers.SeparableConv1D(5, 3), (10, 4), 8 * 3 * 4 + 8 * 4 * 5),
    ],
)  # fmt: skip
def test_depthwise_and_separable_convolutions_by_hand(layer, input_shape, expected):
    assert layer_cost(_built(layer, input_shape)).macs == expected


def test_batch_norm_folds_into_its_only_producer_and_counts_elements_elsewhere():
    inputs = keras.Input(shape=(6, 6, 3))
    normalized_input = keras.layers.BatchNormalization(name="bn_input")(inputs)
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(normalized_input)
    folded = keras.layers.BatchNormalization(name="bn_folded")(conv)
    shared = keras.layers.Conv2D(4, 1, name="shared")(folded)
    # `shared` feeds both the normalization and the Add: nothing to fold into.
    kept = keras.layers.BatchNormalization(name="bn_kept")(shared)
    added = keras.layers.Add()([kept, shared])
    after_add = keras.layers.BatchNormalization(name="bn_after_add")(added)
    cost = model_cost(keras.Model(inputs, after_add))
    by_name = {layer.name: layer for layer in cost.layers}
    assert by_name["bn_input"].macs == 6 * 6 * 3
    assert by_name["bn_folded"].macs == 0
    assert by_name["bn_folded"].note == "folded into 'conv' on export"
    assert by_name["bn_kept"].macs == by_name["bn_after_add"].macs == 6 * 6 * 4
    assert by_name["bn_kept"].note.startswith("not folded")
    assert cost.uncounted == ()
    assert cost.macs == 108 + 36 * 27 * 4 + 0 + 36 * 4 * 4 + 144 + 144
    table = format_cost_table(cost)
    assert "bn_folded: folded into 'conv' on export" in table.splitlines()
    assert by_name["bn_folded"].as_dict()["note"] == "folded into 'conv' on export"
    assert "note" not in by_name["conv"].as_dict()


def test_batch_norm_after_dense_in_a_sequential_model_folds():
    model = keras.Sequential(
        [
            keras.Input(shape=(5,)),
            keras.layers.Dense(3, name="dense"),
            keras.layers.BatchNormalization(name="bn"),
        ]
    )
    assert layer_cost(model.get_layer("bn")).note == "folded into 'dense' on export"


def _conv_bn_net():
    inputs = keras.Input(shape=(8, 8, 3))
    x = keras.layers.Conv2D(16, 3, padding="same", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn_conv")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(12, name="dense")(x)
    x = keras.layers.BatchNormalization(name="bn_dense")(x)
    return keras.Model(inputs, keras.layers.Dense(10, name="out")(x))


@pytest.mark.parametrize("form", ["low_rank", "factorized"])
def test_batch_norm_after_a_compressed_layer_is_counted_as_the_export_folds_it(form):
    from keras_rank.layers.deployable import deployable_model
    from keras_rank.layers.factorize import factorize_model
    from keras_rank.layers.rank_specs import RankChoice, layer_specs, low_rank_model

    dense = _conv_bn_net()
    if form == "low_rank":
        specs = layer_specs(dense, "flops", 1)
        choices = {
            spec.name: RankChoice(
                rank=2,
                dense=False,
                matrix=spec.matrix(dense.get_layer(spec.name).kernel),
            )
            for spec in specs
        }
        model = low_rank_model(dense, specs, choices)
    else:
        model = factorize_model(dense)
    trained = {layer.name: layer for layer in model_cost(model).layers}
    for name in ("bn_conv", "bn_dense"):
        assert trained[name].macs == 0 and trained[name].note.startswith("folded")
    assert model_cost(model).macs == model_cost(deployable_model(model)).macs
