import re

import keras
import numpy as np
import pytest

from keras_rank.core.costs import model_cost
from keras_rank.core.errors import ConfigError
from keras_rank.models import MODEL_NAMES, build_model

# mlp, 784-500x5-10, weights + biases:
#   784*500 + 500 = 392,500; 4 * (500*500 + 500) = 1,002,000; 500*10 + 10 = 5,010
#   total 1,399,510
# lenet300, 784-300-100-10:
#   784*300 + 300 = 235,500; 300*100 + 100 = 30,100; 100*10 + 10 = 1,010
#   total 266,610
# lenet5 on 28x28x1 (valid convs: 28 -> 24 -> pool 12 -> 8 -> pool 4):
#   conv_1 5*5*1*20 + 20 = 520; conv_2 5*5*20*50 + 50 = 25,050
#   dense_1 (4*4*50 = 800)*500 + 500 = 400,500; dense_2 500*10 + 10 = 5,010
#   total 431,080
# BatchNormalization has 4 parameters per channel (gamma, beta, moving mean and
# variance); every conv before one is bias-free. "same" padding: 28 -> 14 -> 7 -> 4.
# resnet20 on 28x28x1 (option B shortcuts):
#   stem 3*3*1*16 = 144 + bn 64 = 208
#   stage1, 6 convs 3*3*16*16 = 13,824 + 6 bn 64 = 384: 14,208
#   stage2, 3*3*16*32 + 5 * 3*3*32*32 = 50,688 + 6 bn 128 = 768
#     + shortcut 16*32 = 512 + bn 128: 52,096
#   stage3, 3*3*32*64 + 5 * 3*3*64*64 = 202,752 + 6 bn 256 = 1,536
#     + shortcut 32*64 = 2,048 + bn 256: 206,592
#   dense_1 64*10 + 10 = 650; total 273,754
# mobilenetv2_small on 28x28x1, (expand, depthwise 3x3, project) + their 3 bn:
#   stem 3*3*1*16 = 144 + 64 = 208
#   block1 16->16 (t=1, no expand): 9*16 + 16*16 + bn 64 + 64 = 528
#   block2 16->96->24: 1,536 + 864 + 2,304 + bn 384 + 384 + 96 = 5,568
#   block3 24->144->24: 3,456 + 1,296 + 3,456 + bn 576 + 576 + 96 = 9,456
#   block4 24->144->32: 3,456 + 1,296 + 4,608 + bn 576 + 576 + 128 = 10,640
#   block5 32->192->32: 6,144 + 1,728 + 6,144 + bn 768 + 768 + 128 = 15,680
#   block6 32->192->64: 6,144 + 1,728 + 12,288 + bn 768 + 768 + 256 = 21,952
#   block7 64->384->64: 24,576 + 3,456 + 24,576 + bn 1,536 + 1,536 + 256 = 55,936
#   head 64*256 = 16,384 + bn 1,024 = 17,408; dense_1 256*10 + 10 = 2,570
#   total 139,946
EXPECTED_PARAMS = {
    "mlp": 1_399_510,
    "lenet300": 266_610,
    "lenet300_tanh": 266_610,
    "lenet5": 431_080,
    "mobilenetv2_small": 139_946,
    "resnet20": 273_754,
}
# MACs on 28x28x1 as keras_rank.core.costs counts them (BatchNormalization
# folds into the conv feeding it: 0 MACs):
# resnet20: stem 784*144 = 112,896; stage1 784 * 6*2,304 = 10,838,016;
#   stage2 196 * (50,688 + 512) = 10,035,200; stage3 49 * (202,752 + 2,048)
#   = 10,035,200; dense_1 640; total 31,021,952
# mobilenetv2_small: stem 112,896; block1 784 * (144 + 256) = 313,600;
#   block2 784*1,536 + 196 * (864 + 2,304) = 1,825,152; block3 196*8,208
#   = 1,608,768; block4 196*3,456 + 49 * (1,296 + 4,608) = 966,672;
#   block5 49*14,016 = 686,784; block6 49*6,144 + 16 * (1,728 + 12,288)
#   = 525,312; block7 16*52,608 = 841,728; head 16*16,384 = 262,144;
#   dense_1 2,560; total 7,145,616
EXPECTED_MACS = {"mobilenetv2_small": 7_145_616, "resnet20": 31_021_952}
CONV_NETS = ("mobilenetv2_small", "resnet20")


def test_model_names_are_the_zoo():
    assert MODEL_NAMES == (
        "lenet300",
        "lenet300_tanh",
        "lenet5",
        "mlp",
        "mobilenetv2_small",
        "resnet20",
    )


def test_lenet300_tanh_has_tanh_hidden_units_and_linear_logits():
    activations = [
        layer.activation for layer in build_model("lenet300_tanh").layers[2:]
    ]
    assert activations == [
        keras.activations.tanh,
        keras.activations.tanh,
        keras.activations.linear,
    ]


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMS))
def test_param_count(name):
    assert build_model(name).count_params() == EXPECTED_PARAMS[name]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_is_named_after_zoo_name(name):
    assert build_model(name).name == name


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("num_classes", [2, 7])
def test_output_is_logits_of_shape_batch_by_classes(name, num_classes):
    model = build_model(name, num_classes=num_classes)
    images = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    assert logits.shape == (3, num_classes)
    # Logits, not probabilities: a softmax output would sum to one per row.
    assert not np.allclose(logits.sum(axis=1), 1.0)
    assert model.layers[-1].activation is keras.activations.linear


@pytest.mark.parametrize("name", ["mlp", "lenet300", "lenet300_tanh"])
def test_mlps_flatten_flat_inputs(name):
    model = build_model(name, input_shape=(784,))
    assert model.count_params() == EXPECTED_PARAMS[name]
    assert model(np.zeros((2, 784), np.float32)).shape == (2, 10)


def test_unknown_name_raises_config_error_naming_it():
    with pytest.raises(ConfigError, match="'foo'") as info:
        build_model("foo")
    assert str(info.value) == (
        "Unknown model name 'foo'. Expected one of: lenet300, lenet300_tanh, lenet5, "
        "mlp, mobilenetv2_small, resnet20."
    )


@pytest.mark.parametrize("num_classes", [1, 0, -3, 2.5, True])
def test_bad_num_classes_raises_config_error(num_classes):
    with pytest.raises(ConfigError, match=rf"num_classes.*{num_classes!r}"):
        build_model("mlp", num_classes=num_classes)


def test_numpy_num_classes_is_accepted():
    assert build_model("lenet300", num_classes=np.int64(3)).output.shape == (None, 3)


@pytest.mark.parametrize("input_shape", [(), (28, 0, 1), (28.0, 28, 1)])
def test_bad_input_shape_raises_config_error(input_shape):
    with pytest.raises(ConfigError, match="input_shape"):
        build_model("mlp", input_shape=input_shape)


@pytest.mark.parametrize("name", ["lenet5", *CONV_NETS])
@pytest.mark.parametrize("input_shape", [(784,), (28, 28), (1, 28, 28, 1)])
def test_conv_nets_need_image_input_shape(name, input_shape):
    with pytest.raises(ConfigError) as info:
        build_model(name, input_shape=input_shape)
    assert str(info.value) == (
        f"Model {name!r} needs input_shape (height, width, channels), "
        f"got {input_shape!r}."
    )


def _paths(model):
    return [variable.path for variable in model.weights]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_rebuilt_from_config_has_identical_variable_paths(name):
    model = build_model(name)
    # Build other models first so that auto-generated names would have moved on.
    build_model(name)
    keras.layers.Dense(3)
    from_config = keras.Model.from_config(model.get_config())
    cloned = keras.models.clone_model(model)
    assert _paths(from_config) == _paths(model)
    assert _paths(cloned) == _paths(model)
    assert _paths(build_model(name)) == _paths(model)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_variable_paths_are_unique_and_explicit(name):
    paths = _paths(build_model(name))
    assert len(paths) == len(set(paths))
    layer_names = {path.split("/")[0] for path in paths}
    # Explicit names end in their kind (e.g. "stage2_block1_conv_1", "stem_bn"),
    # unlike Keras's automatic ones ("conv2d_3", "batch_normalization").
    explicit = re.compile(r"(\w+_)?(dense|conv|bn)(_\d+)?")
    assert all(explicit.fullmatch(layer) for layer in layer_names), layer_names


def test_layer_names():
    assert [layer.name for layer in build_model("lenet5").layers] == [
        "input",
        "conv_1",
        "pool_1",
        "conv_2",
        "pool_2",
        "flatten",
        "dense_1",
        "dense_2",
    ]
    dense_names = [
        layer.name
        for layer in build_model("mlp").layers
        if isinstance(layer, keras.layers.Dense)
    ]
    assert dense_names == [f"dense_{i}" for i in range(1, 7)]


def _dropouts(model):
    return [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]


def test_mlp_has_dropout_0_2_after_each_hidden_layer():
    model = build_model("mlp")
    dropouts = _dropouts(model)
    assert [layer.rate for layer in dropouts] == [0.2] * 5
    for dropout in dropouts:
        index = model.layers.index(dropout)
        previous = model.layers[index - 1]
        assert isinstance(previous, keras.layers.Dense)
        assert previous.activation is keras.activations.relu


@pytest.mark.parametrize("name", ["lenet300", "lenet5"])
def test_lenets_have_no_dropout(name):
    assert _dropouts(build_model(name)) == []


@pytest.mark.parametrize("name", CONV_NETS)
@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3)])
def test_conv_nets_give_finite_logits_for_any_image_shape(name, input_shape):
    model = build_model(name, input_shape=input_shape)
    # Only the 3x3 stem conv sees the channels: 3*3*(3 - 1)*16 more for RGB.
    extra = 3 * 3 * (input_shape[-1] - 1) * 16
    assert model.count_params() == EXPECTED_PARAMS[name] + extra
    images = np.random.default_rng(0).random((2, *input_shape), dtype=np.float32)
    logits = keras.ops.convert_to_numpy(model(images, training=False))
    assert logits.shape == (2, 10)
    assert np.isfinite(logits).all()


@pytest.mark.parametrize("name", CONV_NETS)
def test_conv_net_macs_as_the_costs_module_counts_them(name):
    cost = model_cost(build_model(name))
    assert cost.uncounted == ()
    assert cost.macs == EXPECTED_MACS[name]


@pytest.mark.parametrize("name", CONV_NETS)
def test_conv_net_layer_names_are_deterministic(name):
    names = [layer.name for layer in build_model(name).layers]
    assert [layer.name for layer in build_model(name).layers] == names
    assert len(names) == len(set(names))
    assert names[0] == "input" and names[-2:] == ["pool", "dense_1"]


def _layers_of(model, layer_class):
    return [layer for layer in model.layers if isinstance(layer, layer_class)]


def test_resnet20_layout():
    model = build_model("resnet20")
    convs = _layers_of(model, keras.layers.Conv2D)
    assert [conv.kernel_size for conv in convs].count((3, 3)) == 19
    shortcuts = [conv for conv in convs if conv.kernel_size == (1, 1)]
    assert [conv.name for conv in shortcuts] == [
        "stage2_block1_shortcut_conv",
        "stage3_block1_shortcut_conv",
    ]
    assert all(conv.strides == (2, 2) for conv in shortcuts)
    assert not any(conv.use_bias for conv in convs)
    assert len(_layers_of(model, keras.layers.BatchNormalization)) == len(convs)
    assert len(_layers_of(model, keras.layers.Add)) == 9
    assert model.get_layer("stage3_block3_relu_2").output.shape == (None, 7, 7, 64)


def test_mobilenetv2_small_layout():
    model = build_model("mobilenetv2_small")
    depthwise = _layers_of(model, keras.layers.DepthwiseConv2D)
    strides = [layer.strides[0] for layer in depthwise]
    assert strides == [1, 2, 1, 2, 1, 2, 1]
    convs = _layers_of(model, keras.layers.Conv2D) + depthwise
    assert not any(layer.use_bias for layer in convs)
    relus = _layers_of(model, keras.layers.ReLU)
    assert all(layer.max_value == 6 for layer in relus)
    # stem, 6 expansions (t = 1 in block1: none), 7 depthwise, head; no ReLU
    # after the linear projections.
    assert len(relus) == 1 + 6 + 7 + 1
    assert "block1_expand_conv" not in {layer.name for layer in model.layers}
    adds = [layer.name for layer in _layers_of(model, keras.layers.Add)]
    assert adds == ["block1_add", "block3_add", "block5_add", "block7_add"]
    assert model.get_layer("block2_project_bn").output.shape == (None, 14, 14, 24)
    assert model.get_layer("head_conv").output.shape == (None, 4, 4, 256)


@pytest.mark.parametrize(
    ("side", "strides"), [(28, (1, 1)), (32, (1, 1)), (33, (2, 2))]
)
def test_mobilenetv2_small_stem_stride_1_up_to_32_pixels(side, strides):
    model = build_model("mobilenetv2_small", input_shape=(side, 24, 3))
    assert model.get_layer("stem_conv").strides == strides
