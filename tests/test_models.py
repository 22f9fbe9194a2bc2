import keras
import numpy as np
import pytest

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
EXPECTED_PARAMS = {
    "mlp": 1_399_510,
    "lenet300": 266_610,
    "lenet300_tanh": 266_610,
    "lenet5": 431_080,
}


def test_model_names_are_the_zoo():
    assert MODEL_NAMES == ("lenet300", "lenet300_tanh", "lenet5", "mlp")


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
        "mlp."
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


def test_lenet5_needs_image_input_shape():
    with pytest.raises(ConfigError, match=r"lenet5.*\(784,\)"):
        build_model("lenet5", input_shape=(784,))


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
    assert all(layer.startswith(("dense_", "conv_")) for layer in layer_names), (
        layer_names
    )


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
