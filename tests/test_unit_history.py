"""Unit matrices at init and per epoch (`keras_rank.training.unit_history`)."""

import keras
import numpy as np
import pytest
from synthetic import small_conv_model

from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import unit_matrix
from keras_rank.training import TrainConfig, train_and_evaluate
from keras_rank.training.unit_history import (
    HISTORY_DIR,
    load_initial_matrices,
    load_layer_history,
    recorded_layers,
)


def small_model(seed: int = 0) -> keras.Model:
    return small_conv_model(12, seed)


def _config(tiny_idx, **overrides) -> TrainConfig:
    settings = {"epochs": 2, "batch_size": 64, "verbose": 0, "data": str(tiny_idx)}
    return TrainConfig(**{**settings, **overrides})


def test_history_holds_init_and_every_epoch(tiny_idx, tmp_path):
    model = small_model()
    init = {layer.name: unit_matrix(layer.kernel) for layer in model.layers[::2]}
    train_and_evaluate(
        _config(tiny_idx, record_units=("conv", "hidden")), tmp_path, model=model
    )
    folder = tmp_path / HISTORY_DIR
    recorded = load_initial_matrices(folder)
    assert sorted(recorded) == ["conv", "hidden", "out"]
    for name, matrix in init.items():
        np.testing.assert_allclose(recorded[name], matrix, atol=1e-7)
    assert recorded_layers(folder) == ["conv", "hidden"]
    history = load_layer_history(folder, "hidden")
    assert [epoch for epoch, _ in history] == [0, 1, 2]
    np.testing.assert_allclose(history[0][1], init["hidden"], atol=1e-7)
    final = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        history[-1][1], unit_matrix(final.get_layer("hidden").kernel), atol=1e-7
    )
    assert not np.allclose(history[1][1], history[0][1])
    assert load_layer_history(folder, "conv")[0][1].shape == (4, 9)


@pytest.mark.slow
def test_a_resumed_run_keeps_the_init_and_goes_on(tiny_idx, tmp_path):
    straight = tmp_path / "straight"
    train_and_evaluate(
        _config(tiny_idx, record_units=("hidden",)), straight, model=small_model()
    )
    resumed = tmp_path / "resumed"
    train_and_evaluate(
        _config(tiny_idx, epochs=1, record_units=("hidden",)),
        resumed,
        model=small_model(),
    )
    train_and_evaluate(
        _config(tiny_idx, record_units=("hidden",)), resumed, model=small_model(seed=1)
    )
    for (epoch, matrix), (again, other) in zip(
        load_layer_history(straight / HISTORY_DIR, "hidden"),
        load_layer_history(resumed / HISTORY_DIR, "hidden"),
        strict=True,
    ):
        assert epoch == again
        np.testing.assert_allclose(other, matrix, atol=1e-6)


def test_without_record_units_only_the_init_is_written(tiny_idx, tmp_path):
    train_and_evaluate(_config(tiny_idx, epochs=1), tmp_path, model=small_model())
    assert sorted(load_initial_matrices(tmp_path / HISTORY_DIR)) == [
        "conv",
        "hidden",
        "out",
    ]
    assert recorded_layers(tmp_path / HISTORY_DIR) == []


def test_an_unknown_layer_is_refused_before_training(tiny_idx, tmp_path):
    with pytest.raises(ConfigError, match=r"one of \['conv', 'hidden', 'out'\]"):
        train_and_evaluate(
            _config(tiny_idx, record_units=("flatten",)), tmp_path, model=small_model()
        )
    assert not (tmp_path / "model.keras").exists()


def test_record_units_must_be_names():
    with pytest.raises(ConfigError, match="record_units"):
        TrainConfig(record_units="hidden")
    with pytest.raises(ConfigError, match="record_units"):
        TrainConfig(record_units=("hidden", ""))
