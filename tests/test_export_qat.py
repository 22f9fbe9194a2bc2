"""The tf_keras bridge and quantization-aware int8 export (TFMOT, in a subprocess)."""

import os

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from keras_rank.core.errors import ExportError
from keras_rank.export.config import ExportConfig
from keras_rank.export.qat import quantization_aware_int8, worker_failure
from keras_rank.export.tf_keras_bridge import (
    SUPPORTED_LAYERS,
    max_abs_difference,
    to_tf_keras,
)


def _dense_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((6,), name="features"),
            keras.layers.Dense(5, activation="relu", name="hidden"),
            keras.layers.Dropout(0.5, name="drop"),
            keras.layers.Dense(3, activation="softmax", name="probabilities"),
        ],
        name="dense_net",
    )


def _conv_model() -> keras.Model:
    return keras.Sequential(
        [
            keras.Input((8, 8, 2), name="image"),
            keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv"),
            keras.layers.MaxPooling2D(name="pool"),
            keras.layers.Flatten(name="flat"),
            keras.layers.Dense(3, name="logits"),
        ],
        name="conv_net",
    )


def _residual_model() -> keras.Model:
    image = keras.Input((8, 8, 2), name="image")
    stem = keras.layers.Conv2D(4, 3, padding="same", name="stem")(image)
    branch = keras.layers.BatchNormalization(name="bn")(stem)
    branch = keras.layers.ReLU(name="relu")(branch)
    merged = keras.layers.Add(name="residual")([stem, branch])
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(merged)
    logits = keras.layers.Dense(3, name="logits")(pooled)
    model = keras.Model(image, logits, name="residual_net")
    bn = model.get_layer("bn")
    rng = np.random.default_rng(1)
    for variable in bn.weights:
        shape = tuple(variable.shape)
        variable.assign(rng.uniform(0.5, 2.0, shape).astype("float32"))
    bn.moving_mean.assign(rng.normal(size=bn.moving_mean.shape).astype("float32"))
    return model


def _shared_layer_model() -> keras.Model:
    features = keras.Input((4,), name="features")
    shared = keras.layers.Dense(4, activation="tanh", name="shared")
    once = shared(features)
    twice = shared(once)
    joined = keras.layers.Concatenate(name="joined")([once, twice])
    logits = keras.layers.Dense(3, name="logits")(joined)
    return keras.Model(features, logits, name="shared_net")


@pytest.mark.parametrize(
    "build", [_dense_model, _conv_model, _residual_model, _shared_layer_model]
)
def test_to_tf_keras_rebuild_computes_the_same_outputs(build):
    model = build()
    rebuilt = to_tf_keras(model)
    inputs = np.random.default_rng(0).normal(size=(16, *model.input_shape[1:]))
    inputs = inputs.astype("float32")
    assert max_abs_difference(model, rebuilt, inputs) <= 1e-6
    input_name = model.inputs[0]._keras_history.operation.name
    assert {layer.name for layer in rebuilt.layers} == {
        input_name,
        *(layer.name for layer in model.layers),
    }
    assert rebuilt.count_params() == model.count_params()
    assert type(rebuilt).__module__.startswith("tf_keras")


def test_to_tf_keras_copies_batch_normalization_moving_statistics():
    model = _residual_model()
    rebuilt = to_tf_keras(model)
    for source, target in zip(
        model.get_layer("bn").weights, rebuilt.get_layer("bn").weights, strict=True
    ):
        np.testing.assert_array_equal(np.asarray(source), np.asarray(target))
    assert not np.allclose(np.asarray(model.get_layer("bn").moving_mean), 0.0)


def test_to_tf_keras_unsupported_layer_fails_with_one_line_naming_it():
    model = keras.Sequential(
        [
            keras.Input((4,)),
            keras.layers.Dense(4, name="hidden"),
            keras.layers.LayerNormalization(name="norm"),
        ]
    )
    with pytest.raises(ExportError) as raised:
        to_tf_keras(model)
    message = str(raised.value)
    assert "\n" not in message
    assert "'norm' of class LayerNormalization" in message
    assert ", ".join(SUPPORTED_LAYERS) in message


def test_to_tf_keras_refuses_a_subclassed_model():
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__(name="subclassed")
            self.dense = keras.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    model(np.ones((1, 3), "float32"))
    with pytest.raises(ExportError, match="'subclassed' of class Subclassed without"):
        to_tf_keras(model)


def test_to_tf_keras_refuses_an_activation_tf_keras_defines_otherwise():
    model = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(2, activation="hard_sigmoid")]
    )
    with pytest.raises(ExportError, match="hard_sigmoid"):
        to_tf_keras(model)


def test_worker_failure_without_an_error_line_reports_the_last_stderr_line():
    error = worker_failure("Traceback (most recent call last):\n  ...\nOSError: x\n", 1)
    assert str(error) == "The QAT worker failed with exit code 1: OSError: x"
    error = worker_failure("noise\nerror: Expected this. Received: that\n", 2)
    assert str(error) == "Expected this. Received: that"


def _trained_model(splits) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input(splits.input_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu", name="hidden"),
            keras.layers.Dense(splits.num_classes, name="logits"),
        ],
        name="tiny_mlp",
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        splits.train.batches(32, shuffle_seed=0), epochs=3, shuffle=False, verbose=0
    )
    return model


def _tflite_outputs(interpreter: Interpreter, images: np.ndarray) -> np.ndarray:
    entry = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(entry["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], images)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.slow
def test_quantization_aware_int8_writes_an_int8_file_and_leaves_keras_3(
    tiny_idx, tmp_path
):
    config = ExportConfig(
        data=tiny_idx,
        representative_examples=64,
        qat_epochs=2,
        qat_batch_size=64,
        verbose=0,
    )
    splits = config.load_splits()
    model = _trained_model(splits)
    path = tmp_path / "qat_int8.tflite"

    result = quantization_aware_int8(model, path, config, from_logits=True)

    assert "TF_USE_LEGACY_KERAS" not in os.environ
    assert result["bridge_max_abs_diff"] <= 1e-5
    history = result["history"]
    assert len(history["loss"]) == len(history["accuracy"]) == 2
    assert result["kept_epoch"] == 1 + history["val_accuracy"].index(
        max(history["val_accuracy"])
    )
    assert result["bytes"] == path.stat().st_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["qat_int8.tflite"]
    interpreter = Interpreter(model_path=str(path))
    ops = interpreter._get_ops_details()
    tensors = {entry["index"]: entry for entry in interpreter.get_tensor_details()}
    inner = [op for op in ops if op["op_name"] not in ("QUANTIZE", "DEQUANTIZE")]
    assert {op["op_name"] for op in inner} >= {"FULLY_CONNECTED"}
    for op in inner:
        for index in [*op["inputs"], *op["outputs"]]:
            if index >= 0:
                assert tensors[index]["dtype"] in (np.int8, np.int32), (op, index)
    images, labels = next(iter(splits.test.batches(200)))
    images, labels = images.numpy(), labels.numpy()
    tflite_classes = _tflite_outputs(interpreter, images).argmax(axis=-1)
    keras_classes = model.predict(images, verbose=0).argmax(axis=-1)
    assert np.mean(tflite_classes == keras_classes) >= 0.9
    assert np.mean(tflite_classes == labels) >= 0.8


@pytest.mark.slow
def test_quantization_aware_int8_worker_error_is_one_export_error_line(
    tiny_idx, tmp_path
):
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            keras.layers.LayerNormalization(name="norm"),
            keras.layers.Dense(10, name="logits"),
        ]
    )
    config = ExportConfig(data=tiny_idx, verbose=0)
    with pytest.raises(ExportError) as raised:
        quantization_aware_int8(
            model, tmp_path / "qat_int8.tflite", config, from_logits=True
        )
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("Expected a model of plain layers")
    assert "'norm' of class LayerNormalization" in message
    assert list(tmp_path.iterdir()) == []
