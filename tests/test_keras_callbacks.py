"""Standard keras.callbacks in every trainer: run as in Model.fit, or refused."""

import csv

import keras
import pytest

from keras_rank.core.errors import ConfigError
from keras_rank.dlra import DLRAConfig
from keras_rank.dlra.run import train_dlra
from keras_rank.lc import LCConfig
from keras_rank.lc.run import train_lc
from keras_rank.prox import ProxConfig
from keras_rank.prox.run import train_prox
from keras_rank.training import TrainConfig, train_and_evaluate


class Recorder(keras.callbacks.Callback):
    """A user's own callback: what it saw, hook by hook."""

    def __init__(self):
        super().__init__()
        self.calls = {"train_begin": 0, "batch_end": 0, "epoch_end": 0, "train_end": 0}
        self.epoch_logs = []
        self.layer_kinds = []

    def on_train_begin(self, logs=None):
        self.calls["train_begin"] += 1

    def on_train_batch_end(self, batch, logs=None):
        self.calls["batch_end"] += 1
        assert "loss" in logs

    def on_epoch_end(self, epoch, logs=None):
        self.calls["epoch_end"] += 1
        self.epoch_logs.append(dict(logs))
        self.layer_kinds.append({type(layer).__name__ for layer in self.model.layers})

    def on_train_end(self, logs=None):
        self.calls["train_end"] += 1


def _config(data, **overrides):
    settings = {
        "model": "lenet300",
        "data": str(data),
        "epochs": 3,
        "batch_size": 100,
        "verbose": 0,
        **overrides,
    }
    return TrainConfig(**settings)


def test_user_callback_sees_every_hook_with_the_engine_logs(tiny_idx, tmp_path):
    recorder = Recorder()
    results = train_and_evaluate(_config(tiny_idx), tmp_path, callbacks=[recorder])
    steps = results["data"]["train_examples"] // 100
    assert recorder.calls == {
        "train_begin": 1,
        "batch_end": 3 * steps,
        "epoch_end": 3,
        "train_end": 1,
    }
    for logs, entry in zip(recorder.epoch_logs, results["history"], strict=True):
        assert logs["val_accuracy"] == entry["val_accuracy"]
        assert logs["loss"] == entry["loss"]


def test_early_stopping_ends_training_after_the_epoch(tiny_idx, tmp_path):
    # min_delta above any possible gain: no epoch improves, patience 1.
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=1, min_delta=1e9)
    results = train_and_evaluate(
        _config(tiny_idx, epochs=5), tmp_path, callbacks=[stop]
    )
    assert results["epochs_completed"] == 2
    assert stop.stopped_epoch == 1


def test_csv_logger_tensorboard_and_model_checkpoint_write(tiny_idx, tmp_path):
    log = tmp_path / "log.csv"
    board = tmp_path / "board"
    saved = tmp_path / "best.keras"
    callbacks = [
        keras.callbacks.CSVLogger(str(log)),
        keras.callbacks.TensorBoard(str(board)),
        keras.callbacks.ModelCheckpoint(str(saved), monitor="val_accuracy"),
        keras.callbacks.TerminateOnNaN(),
    ]
    results = train_and_evaluate(_config(tiny_idx), tmp_path / "w", callbacks=callbacks)
    with open(log) as file:
        rows = list(csv.DictReader(file))
    assert [int(row["epoch"]) for row in rows] == [0, 1, 2]
    assert float(rows[-1]["val_accuracy"]) == pytest.approx(
        results["history"][-1]["val_accuracy"]
    )
    assert any(board.rglob("events.out.tfevents.*"))
    assert keras.saving.load_model(saved).count_params() == results["params"]


@pytest.mark.parametrize(
    "callback, reason",
    [
        (keras.callbacks.ReduceLROnPlateau(), "ReduceLROnPlateau cannot be"),
        (
            keras.callbacks.LearningRateScheduler(lambda epoch: 0.1),
            "LearningRateScheduler cannot be",
        ),
        (keras.callbacks.BackupAndRestore("/tmp/x"), "BackupAndRestore cannot be"),
        (lambda epoch: None, "Received: function"),
    ],
)
def test_callbacks_the_engine_cannot_apply_are_refused_before_writing(
    callback, reason, tiny_idx, tmp_path
):
    with pytest.raises(ConfigError, match=reason) as error:
        train_and_evaluate(_config(tiny_idx), tmp_path / "w", callbacks=[callback])
    assert "\n" not in str(error.value)
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_lc_runs_user_callbacks_in_every_phase_on_the_phase_model(tiny_idx, tmp_path):
    recorder = Recorder()
    config = _config(tiny_idx, model="lenet5", epochs=1)
    lc = LCConfig(lambdas=(1e-4,), lc_steps=1, finetune_epochs=1, baselines=False)
    train_lc(config, lc, tmp_path, callbacks=[recorder])
    # The reference (1 epoch), the L steps (1), the fine-tuning (1).
    assert recorder.calls["train_begin"] == 3
    assert recorder.calls["epoch_end"] == 3
    # Fine-tuning trains the low-rank net, and the callback sees it.
    assert any(kind.startswith("LowRank") for kind in recorder.layer_kinds[-1])
    assert not any(kind.startswith("LowRank") for kind in recorder.layer_kinds[0])


@pytest.mark.slow
def test_prox_runs_user_callbacks(tiny_idx, tmp_path):
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=1e9)
    results = train_prox(
        _config(tiny_idx, epochs=4),
        ProxConfig(tau=(1.0,), energies=(100.0,)),
        tmp_path,
        callbacks=[stop],
    )
    assert results["epochs_completed"] == 2  # Keras stops from the second epoch on


def test_dlra_runs_user_callbacks(tiny_idx, tmp_path):
    recorder = Recorder()
    train_dlra(
        _config(tiny_idx, epochs=2), DLRAConfig(), tmp_path, callbacks=[recorder]
    )
    assert recorder.calls["epoch_end"] == 2 and recorder.calls["train_end"] == 1
