"""Prox's proximal steps in the user's own Model.fit agree with train_prox."""

import keras
import numpy as np
import pytest

from keras_rank import models
from keras_rank.core.errors import ConfigError
from keras_rank.prox import ProxConfig, fit_callback, train_prox
from keras_rank.prox.decompose import decompose
from keras_rank.training import TrainConfig

TAU = 300.0  # compresses LeNet300 on the tiny data within 3 epochs


def _arrays(config):
    splits = config.load_splits()
    batches = list(splits.train.batches(50))
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    return splits, images, labels


def _compiled(splits):
    keras.utils.set_random_seed(0)
    model = models.build_model("lenet300", splits.input_shape, splits.num_classes)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_prox_in_model_fit_reaches_the_trainers_ranks(tiny_idx, tmp_path):
    config = TrainConfig(
        model="lenet300", data=str(tiny_idx), epochs=3, batch_size=50, verbose=0
    )
    trained = train_prox(config, ProxConfig(tau=(TAU,), energies=(100.0,)), tmp_path)
    trainer_ranks = [entry["prox_rank"] for entry in trained["history"]]

    splits, images, labels = _arrays(config)
    model = _compiled(splits)
    history = model.fit(
        images,
        labels,
        batch_size=50,
        epochs=3,
        verbose=0,
        callbacks=[fit_callback(ProxConfig(tau=(TAU,)))],
    )
    fit_ranks = history.history["prox_rank"]
    # The engine's and fit's data orders differ: ranks agree within 2 %.
    assert trainer_ranks[-1] < 0.8 * trainer_ranks[0]
    np.testing.assert_allclose(fit_ranks, trainer_ranks, rtol=0.02)
    assert any(key.startswith("prox/") for key in history.history)
    # The fitted model decomposes like the trainer's.
    low_rank, report = decompose(model, 100.0)
    assert any(entry.rank < entry.max_rank for entry in report)
    np.testing.assert_allclose(
        low_rank(images[:8]), model(images[:8]), rtol=1e-3, atol=1e-4
    )


def test_prox_in_model_fit_refuses_what_needs_the_trainer(tiny_idx):
    with pytest.raises(ConfigError, match="reload_epoch=None in Model.fit"):
        fit_callback(ProxConfig(tau=(1.0,), reload_epoch=1))
    config = TrainConfig(model="lenet300", data=str(tiny_idx))
    splits, images, labels = _arrays(config)
    model = models.build_model("lenet300", splits.input_shape, splits.num_classes)
    callback = fit_callback(ProxConfig(tau=(1.0,)))
    callback.set_model(model)
    with pytest.raises(ConfigError, match="needs a compiled model"):
        callback.on_train_begin()
