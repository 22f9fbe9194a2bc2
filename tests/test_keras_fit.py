"""Prox, LC and DLRA in the user's own Model.fit agree with their trainers."""

import keras
import numpy as np
import pytest

from keras_rank import models
from keras_rank.core.errors import ConfigError
from keras_rank.dlra import DLRAConfig, DLRAFitCallback, train_dlra
from keras_rank.lc import LCConfig, LCFitCallback, LCPenalty, train_lc
from keras_rank.lc.calibration import lambda_meeting_cost
from keras_rank.prox import ProxConfig, ProxFitCallback, train_prox
from keras_rank.prox.decompose import decompose
from keras_rank.training import TrainConfig, train_and_evaluate

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
        callbacks=[ProxFitCallback(ProxConfig(tau=(TAU,)))],
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
        ProxFitCallback(ProxConfig(tau=(1.0,), reload_epoch=1))
    config = TrainConfig(model="lenet300", data=str(tiny_idx))
    splits, images, labels = _arrays(config)
    model = models.build_model("lenet300", splits.input_shape, splits.num_classes)
    callback = ProxFitCallback(ProxConfig(tau=(1.0,)))
    callback.set_model(model)
    with pytest.raises(ConfigError, match="needs a compiled model"):
        callback.on_train_begin()


def test_lc_in_model_fit_finds_the_trainers_ranks(tiny_idx, tmp_path):
    config = TrainConfig(
        model="lenet300", data=str(tiny_idx), epochs=2, batch_size=50, verbose=0
    )
    train_and_evaluate(config, tmp_path / "ref")
    reference = tmp_path / "ref" / "model.keras"
    dense = keras.saving.load_model(reference)
    lam = float(f"{lambda_meeting_cost(dense, 'flops', 1, 5e-4, 0.3):.3g}")
    lc = LCConfig(lambdas=(lam,), lc_steps=3, finetune_epochs=1, baselines=False)
    trained = train_lc(config, lc, tmp_path / "lc", reference=str(reference))
    trainer_ranks = trained["runs"][0]["ranks"]

    _, images, labels = _arrays(config)
    model = keras.saving.load_model(reference)
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callback = LCFitCallback(lc, lam)
    model.fit(
        images, labels, batch_size=50, epochs=lc.lc_epochs, verbose=0,
        callbacks=[callback],
    )  # fmt: skip
    fit_choices = callback.callback.choices()
    assert trainer_ranks["dense_1"] not in (300, "300 (dense)")  # LC compressed it
    for name, choice in fit_choices.items():
        rank = trainer_ranks[name]
        if isinstance(rank, str):  # "100 (dense)"
            assert choice.dense, name
        else:  # the data orders differ: ranks within 10 %
            assert not choice.dense and abs(choice.rank - rank) <= 0.1 * rank, name
    assert all(variable.regularizer is None for variable in model.trainable_variables)
    assert callback.low_rank_model().count_params() < model.count_params()


def test_lc_penalty_joins_the_users_regularization_while_fitting(tiny_idx):
    splits = TrainConfig(model="lenet300", data=str(tiny_idx)).load_splits()
    model = _compiled(splits)
    kernel = model.trainable_variables[0]
    users = keras.regularizers.L2(1e-3)
    kernel.regularizer = users
    callback = LCFitCallback(LCConfig(), 1e-5)
    callback.set_model(model)
    callback.on_train_begin()
    lc = callback.callback
    lc.mu.assign(0.5)  # Theta is W after the first C step but at the ranks' cut
    penalty = float(LCPenalty(lc)(model))
    assert penalty > 0
    np.testing.assert_allclose(
        float(sum(model.losses)), penalty + float(users(kernel)), rtol=1e-5
    )
    callback.on_train_end()
    assert kernel.regularizer is users
    np.testing.assert_allclose(float(sum(model.losses)), float(users(kernel)))


# Thresholds loose enough that the tiny net's vectors fuse within 3 epochs.
_LOOSE_DLRA = DLRAConfig(lambda1=20.0, tau_cos=0.9, tau_euc=1e3, search_every=2)


@pytest.mark.slow
def test_dlra_in_model_fit_fuses_like_the_trainer(tiny_idx, tmp_path):
    config = TrainConfig(
        model="lenet300", data=str(tiny_idx), epochs=3, batch_size=50, verbose=0
    )
    trained = train_dlra(config, _LOOSE_DLRA, tmp_path)
    trainer_widths = {
        entry["layer"]: entry["input"] for entry in trained["dlra"]["layers"]
    }

    splits, images, labels = _arrays(config)
    keras.utils.set_random_seed(0)
    callback = DLRAFitCallback(_LOOSE_DLRA)
    model = callback.prepare_model(
        models.build_model("lenet300", splits.input_shape, splits.num_classes)
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(
        images, labels, batch_size=50, epochs=3, verbose=0, callbacks=[callback]
    ).history

    # Fused by masking: the shapes are those fit started with.
    assert model.get_layer("dense_2").kernel.shape == (300, 100)
    # The data orders differ: as many fused input columns within 20 %.
    for name, width in {"dense_2": 300, "dense_3": 100}.items():
        fused = width - history[f"dims/{name}/in"][-1]
        trainer_fused = width - trainer_widths[name]
        assert trainer_fused > 0 and abs(fused - trainer_fused) <= 0.2 * trainer_fused
    np.testing.assert_allclose(
        history["compression"][-1], trained["history"][-1]["compression"], rtol=0.2
    )
    assert all(value > 0 for value in history["rare"])
    assert all(variable.regularizer is None for variable in model.trainable_variables)

    compact = callback.compact_model()
    assert not any(
        type(layer).__module__.startswith("keras_rank") for layer in compact.layers
    )
    assert compact.count_params() == trained["deployable"]["params"]
    np.testing.assert_allclose(
        compact(images[:16]), model(images[:16]), rtol=1e-4, atol=1e-4
    )


def test_dlra_in_model_fit_refuses_what_it_cannot_do(tiny_idx):
    with pytest.raises(ConfigError, match="gradient_noise=0 in Model.fit"):
        DLRAFitCallback(DLRAConfig(gradient_noise=0.1))
    with pytest.raises(ConfigError, match="config that factorizes"):
        DLRAFitCallback(
            DLRAConfig(lambda1=0, lambda2=0, frobenius_norm=False, fusion=False)
        )
    splits = TrainConfig(model="lenet300", data=str(tiny_idx)).load_splits()
    plain = _compiled(splits)
    callback = DLRAFitCallback(DLRAConfig())
    callback.set_model(plain)
    with pytest.raises(ConfigError, match="needs a factorized model"):
        callback.on_train_begin()
    other = DLRAFitCallback(DLRAConfig(frobenius_norm=False)).prepare_model(plain)
    callback.set_model(other)
    with pytest.raises(ConfigError, match="frobenius_norm=True"):
        callback.on_train_begin()
