"""Standard `keras.callbacks` objects in the engine: one adapter, one refusal.

The engine's hooks (`keras_rank.training.hooks.Callback`) see the `Trainer`;
a `keras.callbacks.Callback` sees a model and log dicts. `KerasCallback`
calls the second from the first, so EarlyStopping, CSVLogger, TensorBoard,
ModelCheckpoint, TerminateOnNaN, LambdaCallback or a user's own subclass run
in every trainer as they do in `Model.fit`:

- the model they see is the trainer's current one (a method may rebuild it
  at smaller shapes between epochs), with the trainer's optimizer
  (`TrainerModel`);
- ``logs`` are the engine's: ``loss``, ``accuracy``, the method's terms, and
  with validation ``val_loss`` and ``val_accuracy``;
- ``model.stop_training = True`` (EarlyStopping) ends training after the
  epoch and its checkpoint;
- their own state (EarlyStopping's patience count) is not checkpointed: a
  resumed run starts them afresh.

Callbacks that change the optimizer (ReduceLROnPlateau,
LearningRateScheduler) or restore runs themselves (BackupAndRestore) are
refused up front: the engine owns the learning-rate schedule and the
checkpoints (``--lr_schedule``, the work directory).
"""

from typing import Any

import keras

from keras_rank.core.errors import ConfigError
from keras_rank.training.hooks import Callback

REFUSED = {
    keras.callbacks.ReduceLROnPlateau: "the learning rate follows --lr_schedule",
    keras.callbacks.LearningRateScheduler: "the learning rate follows --lr_schedule",
    keras.callbacks.BackupAndRestore: "the work directory's checkpoints resume "
    "every run",
}


class TrainerModel:
    """The trainer's current model as a Keras callback expects it.

    Attributes are the model's (after a rebuild, the new model's), plus the
    trainer's `optimizer` (TensorBoard logs its learning rate) and the
    `stop_training` flag of `Model.fit`.

    Args:
        trainer: The `Trainer`.
    """

    def __init__(self, trainer: Any):
        self._trainer = trainer
        self.stop_training = False

    @property
    def optimizer(self) -> keras.optimizers.Optimizer:
        """The trainer's optimizer."""
        return self._trainer.optimizer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._trainer.model, name)


class KerasCallback(Callback):
    """Runs a `keras.callbacks.Callback` from the engine's hooks.

    Args:
        callback: The Keras callback.
    """

    def __init__(self, callback: keras.callbacks.Callback):
        # EarlyStopping and ModelCheckpoint read "auto" from the compiled
        # metrics, which an engine-trained model has none of.
        if getattr(callback, "mode", None) == "auto" and str(
            getattr(callback, "monitor", "")
        ).removeprefix("val_") in ("accuracy", "acc"):
            callback.mode = "max"
        self.callback = callback
        self._epoch_steps = 0
        self._model: TrainerModel | None = None

    def on_train_begin(self, trainer: Any) -> None:
        """Sets the model and the params; calls ``on_train_begin``."""
        self._model = TrainerModel(trainer)
        self.callback.set_model(self._model)
        self.callback.set_params({"verbose": 0, "epochs": None, "steps": None})
        self.callback.on_train_begin()

    def on_epoch_begin(self, trainer: Any, epoch: int) -> None:
        """Calls ``on_epoch_begin(epoch)``."""
        self._epoch_steps = 0
        self.callback.on_epoch_begin(epoch)

    def on_step_end(self, trainer: Any, step: int, logs: dict[str, float]) -> None:
        """Calls ``on_train_batch_end(batch, logs)``, batch counted in the epoch."""
        self.callback.on_train_batch_end(self._epoch_steps, dict(logs))
        self._epoch_steps += 1
        return None

    def on_epoch_end(self, trainer: Any, epoch: int, logs: dict[str, float]) -> None:
        """Calls ``on_epoch_end(epoch, logs)``; passes on ``stop_training``."""
        self.callback.on_epoch_end(epoch, dict(logs))
        if self._model.stop_training:
            trainer.stop_training = True
        return None

    def on_train_end(self, trainer: Any) -> None:
        """Calls ``on_train_end``."""
        self.callback.on_train_end()


def as_engine_callback(callback: Any) -> Callback:
    """Returns `callback` as an engine callback, adapting a Keras one.

    Raises:
        ConfigError: `callback` is neither kind, or is a Keras callback the
            engine cannot apply (`REFUSED`).
    """
    if isinstance(callback, Callback):
        return callback
    if isinstance(callback, keras.callbacks.Callback):
        for kind, reason in REFUSED.items():
            if isinstance(callback, kind):
                raise ConfigError(
                    f"Expected callbacks the engine can apply; "
                    f"keras.callbacks.{kind.__name__} cannot be: {reason}."
                )
        return KerasCallback(callback)
    raise ConfigError(
        "Expected callbacks: keras.callbacks.Callback or "
        "keras_rank.training.Callback objects. Received: "
        f"{type(callback).__name__}"
    )
