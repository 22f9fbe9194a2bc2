"""A user's own model: loading, fitting the data, what DLRA leaves as it is."""

import zipfile

import keras
import numpy as np
import pytest

from keras_rank.core import user_models
from keras_rank.core.errors import ConfigError
from keras_rank.layers import FactorizedConv2D, FactorizedDense, factorize
from keras_rank.training import TrainConfig


def _mixed_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inner = keras.Sequential(
        [keras.Input((6, 6, 4)), keras.layers.Conv2D(4, 1, name="inner_conv")],
        name="block",
    )
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.DepthwiseConv2D(1, name="depthwise")(x)
    x = inner(x)
    x = keras.layers.Conv2D(4, 3, dilation_rate=2, name="dilated")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name="mixed")


class _Subclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.dense = keras.layers.Dense(2)

    def call(self, inputs):
        return self.dense(inputs)


def test_layers_left_as_is_names_every_unconverted_layer_with_weights():
    left = factorize.layers_left_as_is(_mixed_model())
    assert left == [
        {"layer": "bn", "class": "BatchNormalization",
         "reason": "BatchNormalization has no factorized form"},
        {"layer": "depthwise", "class": "DepthwiseConv2D",
         "reason": "DepthwiseConv2D has no factorized form"},
        {"layer": "block", "class": "Sequential",
         "reason": "nested model: its layers are left as they are"},
        {"layer": "dilated", "class": "Conv2D",
         "reason": "Conv2D with dilation or groups has no factorized form"},
    ]  # fmt: skip


def test_factorize_model_keeps_the_listed_layers_and_the_outputs():
    model = _mixed_model()
    factorized = factorize.factorize_model(model)
    kinds = {layer.name: type(layer) for layer in factorized.layers}
    assert kinds["conv"] is FactorizedConv2D and kinds["head"] is FactorizedDense
    for entry in factorize.layers_left_as_is(model):
        assert kinds[entry["layer"]] is type(model.get_layer(entry["layer"]))
    images = np.random.default_rng(1).random((4, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(
        factorized(images, training=False),
        model(images, training=False),
        atol=1e-5,
    )
    assert factorize.layers_left_as_is(factorized) == factorize.layers_left_as_is(model)


def test_factorize_model_without_a_convertible_layer_says_what_is_supported():
    inputs = keras.Input((4, 4, 2))
    outputs = keras.layers.DepthwiseConv2D(3)(inputs)
    with pytest.raises(ConfigError, match="no Dense or Conv2D layer to factorize"):
        factorize.factorize_model(keras.Model(inputs, outputs))


def test_subclassed_model_gets_one_line_saying_what_is_supported():
    model = _Subclassed(name="mine")
    model(np.zeros((1, 3), np.float32))
    for check in (user_models.check_graph_model, factorize.factorize_model):
        with pytest.raises(ConfigError) as info:
            check(model)
        message = str(info.value)
        assert "'mine' is a subclassed keras.Model (_Subclassed)" in message
        assert "Functional" in message and "Sequential" in message
        assert "\n" not in message


def test_load_model_file_round_trip_and_errors(tmp_path):
    model = _mixed_model()
    model.save(tmp_path / "mixed.keras")
    loaded = user_models.load_model_file(tmp_path / "mixed.keras")
    images = np.random.default_rng(2).random((2, 8, 8, 3), dtype=np.float32)
    np.testing.assert_allclose(loaded(images), model(images), atol=1e-6)

    with pytest.raises(ConfigError, match="Expected model_path to name a .keras"):
        user_models.load_model_file(tmp_path / "mixed.h5")
    with pytest.raises(ConfigError, match="no such file"):
        user_models.load_model_file(tmp_path / "missing.keras")
    (tmp_path / "text.keras").write_bytes(b"not a zip file")
    with pytest.raises(ConfigError, match="text.keras' is not a .keras file: not a"):
        user_models.load_model_file(tmp_path / "text.keras")
    with zipfile.ZipFile(tmp_path / "broken.keras", "w") as archive:
        archive.writestr("config.json", "{not json")
    with pytest.raises(ConfigError, match="broken.keras' cannot be loaded") as info:
        user_models.load_model_file(tmp_path / "broken.keras")
    assert "\n" not in str(info.value)


def test_subclassed_model_file_is_refused_in_one_short_line(tmp_path):
    class Unregistered(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.head = keras.layers.Dense(2)

        def call(self, x):
            return self.head(x)

    model = Unregistered()
    model(np.zeros((1, 3), "float32"))
    model.save(tmp_path / "sub.keras")
    with pytest.raises(ConfigError) as info:
        user_models.load_model_file(tmp_path / "sub.keras")
    message = str(info.value)
    assert "model class 'Unregistered' is not registered" in message
    assert "Functional" in message and "Sequential" in message
    # Keras's own message holds the whole object config (~700 characters).
    assert len(message) < 300 and "\n" not in message


def test_check_fits_data():
    model = _mixed_model()
    user_models.check_fits_data(model, (8, 8, 3), 3)
    user_models.check_fits_data(model, (8, 8, 3), 2)  # Unused outputs are fine.
    with pytest.raises(ConfigError, match=r"takes inputs of shape \(8, 8, 3\).*"
                       r"examples of shape \(28, 28, 1\)"):  # fmt: skip
        user_models.check_fits_data(model, (28, 28, 1), 3)
    with pytest.raises(ConfigError, match="10 classes, so expected"):
        user_models.check_fits_data(model, (8, 8, 3), 10)
    inputs = keras.Input((4,))
    two = keras.Model(inputs, [keras.layers.Dense(2)(inputs)] * 2)
    with pytest.raises(ConfigError, match="1 inputs and 2 outputs"):
        user_models.check_fits_data(two, (4,), 2)


def test_train_config_takes_model_or_model_path():
    assert TrainConfig().model == "mlp" and TrainConfig().model_path is None
    config = TrainConfig(model_path="m.keras")
    assert config.model is None and config.model_path == "m.keras"
    with pytest.raises(ConfigError, match="model or model_path, not both"):
        TrainConfig(model="mlp", model_path="m.keras")
    with pytest.raises(ConfigError, match="Unknown model 'foo'"):
        TrainConfig(model="foo")


def test_functional_copy_of_a_sequential_keeps_outputs_and_single_output():
    keras.utils.set_random_seed(3)
    sequential = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(4, activation="softmax", name="out")],
        name="seq",
    )
    copy = user_models.as_functional_copy(sequential)
    assert [v.path for v in copy.weights] == ["out/kernel", "out/bias"]
    assert not isinstance(copy.output, list)
    inputs = np.random.default_rng(0).random((3, 5), dtype=np.float32)
    np.testing.assert_allclose(copy(inputs), sequential(inputs), atol=1e-7)
    assert copy.get_layer("out") is not sequential.get_layer("out")


def test_functional_copy_flattens_nested_models_renaming_taken_names():
    keras.utils.set_random_seed(4)
    sequential = keras.Sequential(
        [keras.Input((5,)), keras.layers.Dense(5, name="d")], name="seq"
    )
    inner_input = keras.Input((5,))
    inner = keras.Model(
        inner_input,
        keras.layers.Dense(5, name="d")(sequential(inner_input)),
        name="mid",
    )
    inputs = keras.Input((5,))
    hidden = inner(inner(keras.layers.Dense(5, name="d")(inputs)))  # called twice
    outputs = keras.layers.Add(name="add")([hidden, sequential(inputs)])
    model = keras.Model(inputs, outputs * keras.ops.sigmoid(outputs))
    copy = user_models.as_functional_copy(model)
    assert [layer.name for layer in copy.layers[1:]] == ["d", "seq_d", "mid_d", "add"]
    assert not any(isinstance(layer, keras.Model) for layer in copy.layers)
    # Shared layers stay shared: three Dense layers, their weights copied once.
    assert len(copy.weights) == 6
    x = np.random.default_rng(0).random((3, 5), dtype=np.float32)
    np.testing.assert_allclose(copy(x), model(x), atol=1e-6)


@pytest.mark.parametrize("use_bias", [True, False])
def test_functional_copy_splits_separable_convs_into_the_layers_they_compute(use_bias):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((9, 9, 3))
    separable = keras.layers.SeparableConv2D(
        5, 3, strides=2, depth_multiplier=2, activation="relu", use_bias=use_bias,
        padding="same", name="sep",
    )  # fmt: skip
    x = separable(inputs)
    outputs = keras.layers.Dense(2, name="out")(keras.layers.Flatten(name="flat")(x))
    model = keras.Sequential(
        [inputs, separable, keras.layers.Flatten(), keras.layers.Dense(2)]
    )
    for made in (keras.Model(inputs, outputs), model):
        copy = user_models.as_functional_copy(made)
        kinds = [type(layer).__name__ for layer in copy.layers[1:3]]
        assert kinds == ["DepthwiseConv2D", "Conv2D"]
        assert [layer.name for layer in copy.layers[1:3]] == [
            "sep_depthwise",
            "sep_pointwise",
        ]
        x = np.random.default_rng(0).random((2, 9, 9, 3), dtype=np.float32)
        np.testing.assert_allclose(copy(x), made(x), atol=1e-5)
