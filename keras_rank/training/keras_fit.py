"""An engine callback inside the user's own `Model.fit`.

The engine's callbacks (`keras_rank.training.hooks.Callback`: prox's
proximal steps, say) see a `Trainer`. `FitCallback` runs one from
`model.fit(..., callbacks=[...])` instead: it hands it a view of the
compiled model as the trainer it expects (the model, its optimizer, the
default distribution strategy, the ``stop_training`` flag), calls its hooks
from Keras's, and adds the log entries it writes at an epoch's end to
Keras's logs (so History, CSVLogger and TensorBoard see them).

What needs the trainer is refused with one line when it happens: a
`ModelRebuild` (a layer changing shape mid-training cannot replace the
model `fit` is training) and the engine's checkpoints of callback state
(`fit` has none; use keras.callbacks.BackupAndRestore for the weights).
"""

from typing import Any

import keras
import tensorflow as tf

from keras_rank.core.errors import ConfigError
from keras_rank.training.hooks import Callback


class _FitTrainer:
    """What an engine callback reads of its trainer, from a compiled model."""

    checkpoints = None

    def __init__(self, model: keras.Model):
        self.model = model
        self.history: list[dict[str, float]] = []

    @property
    def optimizer(self) -> keras.optimizers.Optimizer:
        return self.model.optimizer

    @property
    def strategy(self) -> tf.distribute.Strategy:
        return tf.distribute.get_strategy()

    @property
    def stop_training(self) -> bool:
        return bool(self.model.stop_training)

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.model.stop_training = value


class FitCallback(keras.callbacks.Callback):
    """Runs an engine callback from `Model.fit`.

    Args:
        callback: The engine callback, e.g. ``keras_rank.prox.Prox(config)``.
        name: How errors name it (default: its class name).
    """

    def __init__(self, callback: Callback, name: str | None = None):
        super().__init__()
        self.callback = callback
        self.name = name or type(callback).__name__
        self._trainer: _FitTrainer | None = None

    def _refuse_rebuild(self, rebuild: Any) -> None:
        if rebuild is not None:
            raise ConfigError(
                f"{self.name} changed the model's layer shapes, which Model.fit "
                "cannot follow; train with the keras_rank trainer (train_*) "
                "for that."
            )

    def on_train_begin(self, logs=None):
        """Builds the trainer view; calls the engine's ``on_train_begin``."""
        if getattr(self.model, "optimizer", None) is None:
            raise ConfigError(
                f"{self.name} needs a compiled model: call model.compile(...) "
                "before model.fit(...)."
            )
        self._trainer = _FitTrainer(self.model)
        self.callback.on_train_begin(self._trainer)

    def on_epoch_begin(self, epoch, logs=None):
        """Calls the engine's ``on_epoch_begin``."""
        self.callback.on_epoch_begin(self._trainer, epoch)

    def on_train_batch_end(self, batch, logs=None):
        """Calls the engine's ``on_step_end`` with the optimizer's step count."""
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self._refuse_rebuild(self.callback.on_step_end(self._trainer, step, logs))

    def on_epoch_end(self, epoch, logs=None):
        """Calls the engine's ``on_epoch_end``; its new log entries join Keras's."""
        engine_logs = {k: float(v) for k, v in (logs or {}).items()}
        known = set(engine_logs)
        self._refuse_rebuild(
            self.callback.on_epoch_end(self._trainer, epoch, engine_logs)
        )
        self._trainer.history.append(engine_logs)
        if logs is not None:
            logs.update({k: v for k, v in engine_logs.items() if k not in known})

    def on_train_end(self, logs=None):
        """Calls the engine's ``on_train_end``."""
        self.callback.on_train_end(self._trainer)
