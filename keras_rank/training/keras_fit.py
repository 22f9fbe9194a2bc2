"""An engine callback inside the user's own `Model.fit`.

The engine's callbacks (`keras_rank.training.hooks.Callback`: prox's
proximal steps, say) see a `Trainer`. `FitCallback` runs one from
`model.fit(..., callbacks=[...])` instead: it hands it a view of the
compiled model as the trainer it expects (the model, its optimizer, the
default distribution strategy, the ``stop_training`` flag), calls its hooks
from Keras's, and adds the log entries it writes at an epoch's end to
Keras's logs (so History, CSVLogger and TensorBoard see them). The
method's loss terms (`LossTerm`: LC's penalty, DLRA's RaRe) join the
compiled loss as a Keras regularizer of the model's first trainable
variable, chained to any regularizer it already has and removed when
training ends; each term's value of the epoch's last step is logged under
its name.

What needs the trainer is refused with one line when it happens: a
`ModelRebuild` (a layer changing shape mid-training cannot replace the
model `fit` is training) and the engine's checkpoints of callback state
(`fit` has none; use keras.callbacks.BackupAndRestore for the weights).
"""

from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_rank.core.errors import ConfigError
from keras_rank.training.hooks import Callback, LossTerm


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


class _LossTermsRegularizer:
    """The loss terms, added to a variable's own regularizer (if any).

    Called inside `fit`'s compiled step; keeps each term's value in a
    variable, so the epoch's logs can read it without another pass.
    """

    def __init__(
        self,
        terms: Sequence[LossTerm],
        model: keras.Model,
        previous: Callable | None,
    ):
        self.terms = list(terms)
        self.model = model
        self.previous = previous
        self.values = {
            term.name: tf.Variable(0.0, trainable=False, name=term.name)
            for term in self.terms
        }

    def __call__(self, variable) -> tf.Tensor:
        total = self.previous(variable) if self.previous is not None else 0.0
        for term in self.terms:
            value = tf.cast(term(self.model), tf.float32)
            self.values[term.name].assign(value)
            total += value
        return total


class FitCallback(keras.callbacks.Callback):
    """Runs an engine callback from `Model.fit`.

    Args:
        callback: The engine callback, e.g. ``keras_rank.prox.Prox(config)``.
        name: How errors name it (default: its class name).
        loss_terms: The method's loss terms, added to the compiled loss from
            the start of training to its end.
    """

    def __init__(
        self,
        callback: Callback,
        name: str | None = None,
        loss_terms: Sequence[LossTerm] = (),
    ):
        super().__init__()
        self.callback = callback
        self.name = name or type(callback).__name__
        self.loss_terms = list(loss_terms)
        self._trainer: _FitTrainer | None = None
        self._regularizer: _LossTermsRegularizer | None = None
        self._carrier = None
        # Reading the step count and the logs every batch waits for the
        # step to finish: only when the engine callback has a step hook.
        self._has_step_hook = type(callback).on_step_end is not Callback.on_step_end

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
        if self.loss_terms:
            self._add_loss_terms()

    def _add_loss_terms(self) -> None:
        """Chains the loss terms to the first trainable variable's regularizer.

        Set before `fit` traces its step (which happens at the first batch),
        so the compiled loss includes them.
        """
        variables = self.model.trainable_variables
        if not variables:
            raise ConfigError(f"{self.name} needs a model with trainable weights.")
        self._carrier = variables[0]
        self._regularizer = _LossTermsRegularizer(
            self.loss_terms, self.model, self._carrier.regularizer
        )
        self._carrier.regularizer = self._regularizer

    def on_epoch_begin(self, epoch, logs=None):
        """Calls the engine's ``on_epoch_begin``."""
        self.callback.on_epoch_begin(self._trainer, epoch)

    def on_train_batch_end(self, batch, logs=None):
        """Calls the engine's ``on_step_end`` with the optimizer's step count."""
        if not self._has_step_hook:
            return
        step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        logs = {k: float(v) for k, v in (logs or {}).items()}
        self._refuse_rebuild(self.callback.on_step_end(self._trainer, step, logs))

    def on_epoch_end(self, epoch, logs=None):
        """Calls the engine's ``on_epoch_end``; its new log entries join Keras's."""
        engine_logs = {k: float(v) for k, v in (logs or {}).items()}
        known = set(engine_logs)
        if self._regularizer is not None:
            for name, value in self._regularizer.values.items():
                engine_logs[name] = float(keras.ops.convert_to_numpy(value))
        self._refuse_rebuild(
            self.callback.on_epoch_end(self._trainer, epoch, engine_logs)
        )
        self._trainer.history.append(engine_logs)
        if logs is not None:
            logs.update({k: v for k, v in engine_logs.items() if k not in known})

    def on_train_end(self, logs=None):
        """Calls the engine's ``on_train_end``; removes the loss terms."""
        self.callback.on_train_end(self._trainer)
        if self._regularizer is not None:
            self._carrier.regularizer = self._regularizer.previous
            self._regularizer = self._carrier = None
