"""LiteRT export: formats, parity with Keras, counts read from the file, errors."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf
from trainer_runs import run

from keras_rank import LowRankDense
from keras_rank.core import tflite_file
from keras_rank.core.errors import ConfigError, ExportError
from keras_rank.core.tflite_file import (
    LiteRTModel,
    check_builtin_only,
    measure_latency,
    read_summary,
)
from keras_rank.data import load_splits
from keras_rank.export import (
    ExportConfig,
    deployable_model,
    export_litert,
    export_models,
    parse_formats,
)
from keras_rank.export.litert import layer_of_op
from keras_rank.export.representative import representative_examples
from keras_rank.layers.factorize import factorize_model


def small_cnn(seed: int = 0) -> keras.Model:
    """A conv + dense classifier of 28x28 images with non-zero biases."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv"),
            keras.layers.MaxPooling2D(2),
            keras.layers.Flatten(),
            keras.layers.Dense(16, activation="relu", name="fc1"),
            keras.layers.Dense(10, name="fc2"),
        ],
        name="small_cnn",
    )
    for layer in model.layers:
        if layer.weights:
            kernel, bias = layer.get_weights()
            layer.set_weights([kernel, np.full_like(bias, 0.05)])
    return model


@pytest.fixture(scope="module")
def trained_cnn(tiny_idx):
    """`small_cnn` trained a few epochs on the tiny data (learns it)."""
    splits = load_splits(tiny_idx)
    model = small_cnn()
    model.compile(
        keras.optimizers.Adam(1e-2),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model.fit(
        splits.train.batches(32, shuffle_seed=0), epochs=4, verbose=0, shuffle=False
    )
    return model


def images(count: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 28, 28, 1), dtype=np.float32)


def test_float32_file_computes_what_keras_computes(tmp_path):
    model = small_cnn()
    path = export_litert(model, tmp_path / "m.tflite", "float32")
    outputs = LiteRTModel(path).invoke(images())
    np.testing.assert_allclose(outputs, model.predict(images(), verbose=0), atol=1e-4)


@pytest.mark.slow
def test_params_are_counted_from_the_file(tmp_path):
    model = small_cnn()
    expected = model.count_params()
    for fmt in ("float32", "float16", "dynamic"):
        summary = read_summary(export_litert(model, tmp_path / f"{fmt}.tflite", fmt))
        assert summary.params == expected, fmt
    assert "float16" in read_summary(tmp_path / "float16.tflite").weight_types
    ops = read_summary(tmp_path / "float32.tflite").ops
    assert {"CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D"} <= set(ops)
    assert not [op for op in ops if op.startswith("CUSTOM")]


@pytest.mark.slow
def test_int8_is_all_int8_and_within_a_point_of_float(trained_cnn, tiny_idx, tmp_path):
    splits = load_splits(tiny_idx)
    batches = list(splits.test.batches(64))
    test_images = np.concatenate([x.numpy() for x, _ in batches])
    labels = np.concatenate([y.numpy() for _, y in batches])
    representative = representative_examples(splits.train, 100, seed=0)
    path = export_litert(
        trained_cnn, tmp_path / "int8.tflite", "int8", representative=representative
    )
    summary = read_summary(path)
    assert summary.weight_types == ("int32", "int8")
    assert summary.params == trained_cnn.count_params()
    float_accuracy = np.mean(
        trained_cnn.predict(test_images, verbose=0).argmax(-1) == labels
    )
    int8_accuracy = np.mean(LiteRTModel(path).invoke(test_images).argmax(-1) == labels)
    assert float_accuracy > 0.8
    assert abs(float_accuracy - int8_accuracy) <= 0.01


def test_int8_without_representative_examples_is_refused(tmp_path):
    with pytest.raises(ExportError, match="representative"):
        export_litert(small_cnn(), tmp_path / "m.tflite", "int8")


@keras.saving.register_keras_serializable("test_export")
class BesselLayer(keras.layers.Layer):
    """A layer whose op (BesselI0) LiteRT's builtins lack."""

    def call(self, inputs):
        return tf.math.bessel_i0(inputs)


def test_a_layer_without_builtin_ops_is_named_in_one_line(tmp_path):
    inputs = keras.Input((8,))
    hidden = keras.layers.Dense(4, name="fc")(inputs)
    hidden = BesselLayer(name="odd_layer")(hidden)
    model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
    with pytest.raises(ExportError) as error:
        export_litert(model, tmp_path / "m.tflite", "float32")
    message = str(error.value)
    assert "\n" not in message
    assert "layer 'odd_layer' (BesselLayer)" in message
    assert "BesselI0" in message
    assert not (tmp_path / "m.tflite").exists()


def test_layer_of_op_reads_keras_name_scopes():
    names = ["fc", "fc_2", "odd_layer"]
    assert layer_of_op("functional_1/odd_layer_1/bessel/BesselI0", names) == (
        "odd_layer"
    )
    assert layer_of_op("functional_1/fc_2/MatMul", names) == "fc_2"
    assert layer_of_op("functional_1/other/MatMul", names) is None


@pytest.mark.slow
def test_a_factorized_model_is_compacted_before_export(tiny_idx, tmp_path):
    model = small_cnn()
    config = ExportConfig(
        formats="float32", data=str(tiny_idx), latency_invocations=1, verbose=0
    )
    results = export_models({"dlra": factorize_model(model)}, tmp_path, config)
    plain = keras.saving.load_model(tmp_path / "dlra" / "model_plain.keras")
    assert [type(layer).__name__ for layer in plain.layers] == [
        type(layer).__name__ for layer in model.layers
    ]
    file = results["models"]["dlra"]["formats"]["float32"]
    assert file["params"] == model.count_params()
    assert file["max_abs_diff"] < 1e-4
    np.testing.assert_allclose(
        LiteRTModel(tmp_path / file["file"]).invoke(images()),
        model.predict(images(), verbose=0),
        atol=1e-4,
    )


def test_a_low_rank_model_exports_as_two_plain_layers(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Flatten(),
            LowRankDense(32, rank=3, activation="relu", name="low"),
            keras.layers.Dense(10),
        ]
    )
    plain = deployable_model(model)
    path = export_litert(plain, tmp_path / "m.tflite", "float32")
    assert read_summary(path).params == 784 * 3 + 3 * 32 + 32 * 10
    np.testing.assert_allclose(
        LiteRTModel(path).invoke(images()),
        model.predict(images(), verbose=0),
        atol=1e-4,
    )


def test_a_custom_op_in_a_file_is_refused(tmp_path):
    # Keras' default op sets let the converter fall back on a Flex op.
    model = keras.Sequential([keras.Input((4, 4)), keras.layers.Lambda(tf.linalg.det)])
    path = tmp_path / "flex.tflite"
    model.export(path, format="litert", verbose=False)
    with pytest.raises(ExportError, match="CUSTOM:FlexMatrixDeterminant"):
        check_builtin_only(path)


@pytest.mark.slow
def test_latency_is_measured_per_file_interleaved(tmp_path):
    model = small_cnn()
    paths = {
        fmt: export_litert(model, tmp_path / f"{fmt}.tflite", fmt)
        for fmt in ("float32", "float16")
    }
    latency = measure_latency(paths, images(1), invocations=5, rounds=3, instances=3)
    assert set(latency) == set(paths)
    for timing in latency.values():
        assert timing["invocations"] == 45
        medians = timing["instance_medians_us"]
        assert len(medians) == 3
        assert timing["median_us"] == sorted(medians)[1]
        assert 0 < timing["p10_us"] <= timing["p90_us"]
    with pytest.raises(ExportError, match="one example"):
        measure_latency(paths, images(2), invocations=1, rounds=1)
    with pytest.raises(ExportError, match="instances >= 1. Received: instances=0"):
        measure_latency(paths, images(1), invocations=1, rounds=1, instances=0)


class _ScriptedModel:
    """Stands in for LiteRTModel: each new instance times the next script."""

    scripts: list[list[float]] = []

    def __init__(self, path):
        self.times = _ScriptedModel.scripts.pop(0)

    def invoke(self, example):
        return example

    def time_invocations(self, count):
        return self.times[:count]


def test_latency_is_the_median_of_the_interpreters_medians(monkeypatch):
    # Interpreter medians 1, 9, 9: their median is 9; the median of all nine
    # invocations (1, 1, 1, 2, 3, 9, 9, 9, 9) would be 3, the first one's 1.
    _ScriptedModel.scripts = [[1.0] * 3, [2.0, 9.0, 9.0], [3.0, 9.0, 9.0]]
    monkeypatch.setattr(tflite_file, "LiteRTModel", _ScriptedModel)
    latency = measure_latency(
        {"file": "unused.tflite"}, images(1), invocations=3, rounds=1, instances=3
    )
    assert latency["file"]["median_us"] == 9.0
    assert latency["file"]["instance_medians_us"] == [1.0, 9.0, 9.0]
    assert latency["file"]["invocations"] == 9


@pytest.mark.parametrize(
    ("formats", "message"),
    [
        ("float32,int4", "Expected formats from: float32, dynamic"),
        ("", "Received: formats='(none)'"),
    ],
)
def test_unknown_formats_are_named(formats, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_formats(formats)


def test_formats_come_back_in_canonical_order():
    assert parse_formats(" int8 ,float32,int8") == ("float32", "int8")


@pytest.mark.parametrize(
    ("field", "value"),
    [("representative_examples", 0), ("qat_epochs", 0), ("qat_learning_rate", 0.0)],
)
def test_bad_export_settings_are_named(field, value):
    with pytest.raises(ConfigError, match=f"Expected {field}"):
        ExportConfig(**{field: value})


@pytest.mark.slow
def test_export_models_reports_every_file(trained_cnn, tiny_idx, tmp_path):
    dense = small_cnn(seed=1)
    config = ExportConfig(
        formats="float32,int8",
        data=str(tiny_idx),
        representative_examples=50,
        latency_invocations=3,
        latency_rounds=2,
        latency_instances=2,
        verbose=0,
    )
    results = export_models(
        {"dense": dense, "trained": trained_cnn}, tmp_path, config, baseline="dense"
    )
    saved = json.loads((tmp_path / "export.json").read_text())
    assert saved["models"].keys() == {"dense", "trained"}
    trained = results["models"]["trained"]["formats"]
    assert trained["float32"]["max_abs_diff"] < 1e-4
    assert trained["float32"]["class_agreement"] == 1.0
    assert trained["float32"]["params"] == trained_cnn.count_params()
    dense_size = (tmp_path / "dense" / "float32.tflite").stat().st_size
    int8_size = (tmp_path / "trained" / "int8.tflite").stat().st_size
    assert trained["int8"]["size_bytes"] == int8_size
    assert trained["int8"]["size_ratio"] == pytest.approx(dense_size / int8_size)
    assert results["models"]["dense"]["formats"]["float32"]["latency_ratio"] == 1.0
    assert (tmp_path / "trained" / "model_plain.keras").is_file()
    assert (tmp_path / "export.png").is_file()
    assert (tmp_path / "floor.tflite").is_file()
    assert 0 < results["latency_floor_us"]
    assert "latency_ratio_above_floor" in trained["float32"]
    assert len(trained["float32"]["latency"]["instance_medians_us"]) == 2
    report = (tmp_path / "report.md").read_text()
    assert report.count("\n| trained |") == 2


@pytest.mark.slow
def test_trainer_bad_input_is_one_line_naming_the_flag(tiny_idx, tmp_path):
    good = tmp_path / "model.keras"
    small_cnn().save(good)
    blocker = tmp_path / "file"
    blocker.write_text("")
    cases = [
        ([f"--model_path={tmp_path / 'missing.keras'}"], "model_path="),
        ([f"--model_path={good}", "--formats=float32,tflite"], "formats="),
        ([f"--model_path={good}", f"--workdir={blocker / 'sub'}"], "workdir '"),
    ]
    for flags, expected in cases:
        if not any(flag.startswith("--workdir") for flag in flags):
            flags = [*flags, f"--workdir={tmp_path / 'out'}"]
        result = run("export", f"--data={tiny_idx}", *flags)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert lines[-1].startswith("error: ") and expected in lines[-1], lines[-1]


@pytest.mark.slow
def test_trainer_exports_named_models_against_a_baseline(tiny_idx, tmp_path):
    small_cnn(seed=1).save(tmp_path / "dense.keras")
    keras.utils.set_random_seed(0)
    factorize_model(small_cnn()).save(tmp_path / "factorized.keras")
    result = run(
        "export",
        f"--data={tiny_idx}",
        f"--baseline_path={tmp_path / 'dense.keras'}",
        f"--model_path=DLRA λ=20={tmp_path / 'factorized.keras'}",
        "--formats=float32",
        "--latency_invocations=2",
        "--latency_rounds=1",
        f"--workdir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "out" / "export.json").read_text())
    assert list(results["models"]) == ["baseline", "DLRA λ=20"]
    assert results["baseline"] == "baseline"
    assert "| DLRA λ=20 | float32 |" in result.stdout
    assert (tmp_path / "out" / "DLRA_λ_20" / "float32.tflite").is_file()


def test_qat_of_a_model_tf_keras_cannot_rebuild_stops_before_writing(
    tiny_idx, tmp_path
):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten(name="flat")(inputs)
    x = keras.layers.Dense(8, activation="hard_silu", name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(10, name="logits")(x))
    config = ExportConfig(
        formats="float32,qat_int8", data=str(tiny_idx), latency_invocations=1, verbose=0
    )
    with pytest.raises(ExportError, match="leave qat_int8 out of --formats"):
        export_models({"mine": model}, tmp_path / "out", config)
    assert not (tmp_path / "out").exists()
