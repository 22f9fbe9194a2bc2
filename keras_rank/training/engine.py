"""The training engine every keras_rank method runs on.

`Trainer` is a custom loop around a `tf.function` train step, written once for
all methods: progress bar, TensorBoard logs, per-epoch checkpoints with resume
(also after the model changed shape), tf.distribute, NaN detection. Methods
plug in through `LossTerm` and `Callback` (see `keras_rank.training.hooks`).
"""

import math
import os
import pathlib
import sys
import time
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from keras_rank import data as data_lib
from keras_rank.core import surgery
from keras_rank.core.errors import ConfigError, KerasRankError
from keras_rank.training.checkpoint import CheckpointManager
from keras_rank.training.hooks import (
    Callback,
    GradientTransform,
    LossTerm,
    ModelRebuild,
)
from keras_rank.training.keras_callbacks import as_engine_callback
from keras_rank.training.strategy import distribute_batches, is_chief
from keras_rank.training.task_loss import TaskLoss, resolve_task_loss


class TrainingDivergedError(KerasRankError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def epoch_seed(seed: int, epoch: int) -> int:
    """Returns the data-order seed of `epoch`: a pure function of both."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _batch_sums(per_example_loss, correct) -> tf.Tensor:
    """Returns [sum of losses, correct predictions, examples] of one batch."""
    count = tf.cast(tf.shape(correct)[0], tf.float32)
    return tf.stack([tf.reduce_sum(per_example_loss), tf.reduce_sum(correct), count])


def _is_terminal(stream) -> bool:
    """Whether `stream` is an interactive terminal (a progress bar redraws)."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


class Trainer:
    """Trains a classifier with a custom loop, extensible by methods.

    Create the model and the optimizer inside `strategy.scope()`.

    Args:
        model: A built Keras classifier.
        optimizer: A Keras optimizer.
        task_loss: The classification loss; None reads it from the model's
            output layer (`resolve_task_loss`: logits or softmax).
        strategy: The tf.distribute strategy (default: the current one).
        loss_terms: Extra loss terms computed inside the train step.
        gradient_transforms: Applied in order to the gradients inside the
            train step, before the optimizer update.
        callbacks: Eager hooks between steps and epochs: engine callbacks
            (`hooks.Callback`) or `keras.callbacks.Callback` objects, run
            through `keras_callbacks.KerasCallback`.
        checkpoint_dir: Where per-epoch checkpoints go; None disables them.
            Every worker restores from it; only the chief writes to it.
        log_dir: Where TensorBoard logs go (chief only); None disables them.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch. 1 is
            taken as 2 when stdout is not a terminal (a log file gets one
            readable line per epoch, not the bar's redraws).
        jit_compile: Compile the per-replica train step with XLA.
    """

    def __init__(
        self,
        model: keras.Model,
        optimizer: keras.optimizers.Optimizer,
        *,
        task_loss: TaskLoss | None = None,
        strategy: tf.distribute.Strategy | None = None,
        loss_terms: Sequence[LossTerm] = (),
        gradient_transforms: Sequence[GradientTransform] = (),
        callbacks: Sequence[Callback] = (),
        checkpoint_dir: str | os.PathLike | None = None,
        log_dir: str | os.PathLike | None = None,
        verbose: int = 1,
        jit_compile: bool = False,
    ):
        self.strategy = strategy or tf.distribute.get_strategy()
        self.task_loss = task_loss or resolve_task_loss(model)
        self.loss_terms = tuple(loss_terms)
        self.gradient_transforms = tuple(gradient_transforms)
        self.callbacks = tuple(as_engine_callback(c) for c in callbacks)
        self.verbose = 2 if verbose == 1 and not _is_terminal(sys.stdout) else verbose
        self.jit_compile = jit_compile
        self.history: list[dict[str, float]] = []
        self.epochs_done = 0
        self.global_step = 0
        self.wall_time_s = 0.0
        # Set by a callback to end `fit` after the current epoch.
        self.stop_training = False
        self.checkpoints = CheckpointManager(checkpoint_dir) if checkpoint_dir else None
        self.is_chief = is_chief(self.strategy)
        self._log_dir = pathlib.Path(log_dir) if log_dir and self.is_chief else None
        self._writers: dict[str, tf.summary.SummaryWriter] = {}
        with self.strategy.scope():
            optimizer.build(model.trainable_variables)
        self._set_model(model, optimizer)

    # ------------------------------------------------------------------ model
    def _set_model(self, model: keras.Model, optimizer) -> None:
        self.model = model
        self.optimizer = optimizer
        self._train_step = self._make_train_step()
        self._eval_step = self._make_eval_step()

    def replace_model(self, rebuild: ModelRebuild) -> None:
        """Swaps in a rebuilt model; optimizer slots of kept variables follow.

        A fresh optimizer of the same class and configuration is built on the
        new model; the step count and the slots are carried over (mapped by
        `rebuild.slot_maps` where shapes changed). The train and eval steps are
        traced again on their next call.
        """
        with self.strategy.scope():
            optimizer = self.optimizer.__class__.from_config(
                self.optimizer.get_config()
            )
            optimizer.build(rebuild.model.trainable_variables)
            surgery.carry_optimizer_state(
                self.optimizer,
                self.model.trainable_variables,
                optimizer,
                rebuild.model.trainable_variables,
                rebuild.slot_maps,
            )
        self._set_model(rebuild.model, optimizer)

    def _make_train_step(self):
        model, optimizer, terms = self.model, self.optimizer, self.loss_terms
        task, transforms = self.task_loss, self.gradient_transforms
        strategy = self.strategy
        replicas = strategy.num_replicas_in_sync

        def replica_step(images, labels):
            with tf.GradientTape() as tape:
                outputs = model(images, training=True)
                per_example = task.per_example_loss(labels, outputs)
                global_batch = tf.cast(tf.shape(labels)[0] * replicas, tf.float32)
                loss = tf.reduce_sum(per_example) / global_batch
                values = {term.name: term(model) for term in terms}
                if values:
                    loss += tf.add_n(list(values.values())) / replicas
            grads = tape.gradient(loss, model.trainable_variables)
            for transform in transforms:
                grads = transform(
                    grads, model.trainable_variables, optimizer.iterations
                )
            optimizer.apply_gradients(
                zip(grads, model.trainable_variables, strict=True)
            )
            return _batch_sums(per_example, task.correct(labels, outputs)), values

        if self.jit_compile:
            replica_step = tf.function(replica_step, jit_compile=True, autograph=False)

        @tf.function(autograph=False)
        def train_step(batch):
            sums, values = strategy.run(replica_step, args=batch)
            reduce = strategy.reduce
            values = {k: reduce("MEAN", v, axis=None) for k, v in values.items()}
            return reduce("SUM", sums, axis=None), values

        return train_step

    def _make_eval_step(self):
        model, strategy, task = self.model, self.strategy, self.task_loss

        def replica_step(images, labels):
            outputs = model(images, training=False)
            return _batch_sums(
                task.per_example_loss(labels, outputs), task.correct(labels, outputs)
            )

        # A final partial batch has its own shape: one relaxed trace serves all.
        @tf.function(autograph=False, reduce_retracing=True)
        def eval_step(batch):
            sums = strategy.run(replica_step, args=batch)
            return strategy.reduce("SUM", sums, axis=None)

        return eval_step

    # ---------------------------------------------------------------- resume
    def restore(self) -> bool:
        """Loads the newest checkpoint, if any; returns whether one was found.

        The model is rebuilt at the shapes it had when the checkpoint was
        written, so a run resumes correctly after layers changed shape.
        """
        path = self.checkpoints.latest() if self.checkpoints else None
        if path is None:
            return False
        with self.strategy.scope():
            model = CheckpointManager.restore_model(path)
            optimizer = CheckpointManager.restore_optimizer(
                path, model.trainable_variables
            )
        self._set_model(model, optimizer)
        state = CheckpointManager.restore_state(path)
        self.history = state["history"]
        self.epochs_done = state["epochs_done"]
        self.global_step = state["global_step"]
        self.wall_time_s = state["wall_time_s"]
        states = CheckpointManager.restore_callback_states(path, len(self.callbacks))
        for callback, cb_state in zip(self.callbacks, states, strict=True):
            callback.set_state(cb_state)
        return True

    def _check_replicas_agree_on_progress(self) -> None:
        """Raises `ConfigError` if the workers start from different epochs.

        Happens when the workers of a cluster do not share one work
        directory: only the chief writes checkpoints, and a worker that cannot
        read them would start afresh while the chief resumes.
        """
        done = tf.constant(float(self.epochs_done))
        total = self.strategy.reduce(
            "SUM", self.strategy.run(lambda: tf.identity(done)), axis=None
        )
        if float(total) != self.epochs_done * self.strategy.num_replicas_in_sync:
            raise ConfigError(
                f"The workers start from different epochs (this one from epoch "
                f"{self.epochs_done + 1}): the work directory must be one folder "
                "that every worker reads (a shared file system)."
            )

    def _save_checkpoint(self) -> None:
        if self.checkpoints is None or not self.is_chief:
            return
        self.checkpoints.save(
            self.epochs_done,
            self.model,
            self.optimizer,
            {
                "epochs_done": self.epochs_done,
                "global_step": self.global_step,
                "wall_time_s": self.wall_time_s,
                "history": self.history,
            },
            [callback.get_state() for callback in self.callbacks],
        )

    # -------------------------------------------------------------- training
    def fit(
        self,
        train: data_lib.ExampleSource | tuple | tf.data.Dataset,
        *,
        epochs: int,
        batch_size: int,
        seed: int = 0,
        validation_data: data_lib.ExampleSource | tuple | tf.data.Dataset | None = None,
    ) -> list[dict[str, float]]:
        """Trains until `epochs` epochs are done in total (resumed ones count).

        A callback may end training earlier with `stop_training` (see
        `Callback`).

        The order of epoch k is fixed by (seed, k): its batches are
        `source.batches(batch_size, shuffle_seed=epoch_seed(seed, k),
        drop_remainder=True)`, the last incomplete batch being dropped so the
        step keeps one static shape.

        Args:
            train: The training examples: an `ExampleSource`, an
                `(images, labels)` tuple of arrays, or a `tf.data.Dataset` of
                unbatched (image, label) pairs (see `data.as_source`).
            epochs: Total number of epochs.
            batch_size: Global batch size, a multiple of the replica count.
            seed: Seed of the data order.
            validation_data: Optional examples, of the same kinds as `train`,
                evaluated every epoch.

        Returns:
            The history: one dict of metrics per epoch.

        Raises:
            ConfigError: Batch size does not fit the data or the replicas.
            TrainingDivergedError: The loss became NaN or infinite.
        """
        source = data_lib.as_source(train)
        validation = None
        if validation_data is not None:
            validation = data_lib.as_source(validation_data)
        replicas = self.strategy.num_replicas_in_sync
        if batch_size % replicas:
            raise ConfigError(
                f"batch_size={batch_size} must be a multiple of the "
                f"{replicas} replicas of the strategy."
            )
        steps = None
        if source.num_examples is not None:
            steps = source.num_examples // batch_size
            if steps == 0:
                raise ConfigError(
                    f"batch_size={batch_size} is larger than the "
                    f"{source.num_examples} training examples."
                )
        self._check_replicas_agree_on_progress()
        self.stop_training = False
        for callback in self.callbacks:
            callback.on_train_begin(self)
        for epoch in range(self.epochs_done, epochs):
            if self.stop_training:
                break
            self._run_epoch(epoch, epochs, source, batch_size, steps, seed, validation)
        for callback in self.callbacks:
            callback.on_train_end(self)
        return self.history

    def _run_epoch(
        self, epoch, epochs, source, batch_size, steps, seed, validation
    ) -> None:
        start = time.perf_counter()
        for callback in self.callbacks:
            callback.on_epoch_begin(self, epoch)
        dataset = source.batches(
            batch_size, shuffle_seed=epoch_seed(seed, epoch), drop_remainder=True
        )
        if self.verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        progbar = keras.utils.Progbar(steps, verbose=self.verbose)
        totals = np.zeros(3)
        term_totals: dict[str, float] = {}
        steps_done = 0
        for batch in distribute_batches(self.strategy, dataset):
            sums, values = self._train_step(batch)
            totals += sums.numpy()
            for key, value in values.items():
                term_totals[key] = term_totals.get(key, 0.0) + float(value)
            self.global_step += 1
            steps_done += 1
            logs = self._logs(totals, term_totals, steps_done)
            bad = [k for k, v in logs.items() if not math.isfinite(v)]
            if bad:
                raise TrainingDivergedError(
                    f"{bad[0]} became {logs[bad[0]]} at epoch {epoch + 1}, step "
                    f"{steps_done}. Training stopped; the last good checkpoint is "
                    f"{self.checkpoints.latest() if self.checkpoints else None}."
                )
            progbar.update(steps_done, list(logs.items()), finalize=False)
            for callback in self.callbacks:
                self._maybe_rebuild(callback.on_step_end(self, self.global_step, logs))
        if steps_done == 0:
            raise ConfigError(
                f"batch_size={batch_size} is larger than the training examples: "
                "the epoch had no full batch."
            )
        logs = self._logs(totals, term_totals, steps_done)
        if validation is not None:
            val = self.evaluate(validation, batch_size=batch_size)
            logs.update({f"val_{k}": v for k, v in val.items()})
        for callback in self.callbacks:
            self._maybe_rebuild(callback.on_epoch_end(self, epoch, logs))
        elapsed = time.perf_counter() - start
        self.wall_time_s += elapsed
        logs["epoch_time_s"] = elapsed
        logs["epoch"] = epoch + 1
        # Keys with a "/" (per-layer details) go to the history and
        # TensorBoard only, not to the one-line progress bar.
        shown = [
            (k, v)
            for k, v in logs.items()
            if k not in ("epoch", "epoch_time_s") and "/" not in k
        ]
        progbar.update(steps_done, shown, finalize=True)
        self.history.append(logs)
        self.epochs_done = epoch + 1
        self._write_summaries(logs)
        self._save_checkpoint()

    @staticmethod
    def _logs(totals, term_totals, steps_done) -> dict[str, float]:
        loss_sum, correct, count = totals.tolist()
        count = max(count, 1.0)
        logs = {"loss": loss_sum / count, "accuracy": correct / count}
        logs.update({k: v / steps_done for k, v in term_totals.items()})
        return logs

    def _maybe_rebuild(self, rebuild: ModelRebuild | None) -> None:
        if rebuild is not None:
            self.replace_model(rebuild)

    def evaluate(
        self,
        data: data_lib.ExampleSource | tuple | tf.data.Dataset,
        *,
        batch_size: int = 256,
    ) -> dict[str, float]:
        """Returns the mean loss and the accuracy of the model on a dataset.

        Args:
            data: The examples, of any kind `fit` accepts; every one counts
                (the last batch may be partial).
            batch_size: Global batch size.
        """
        dataset = data_lib.as_source(data).batches(batch_size)
        totals = np.zeros(3)
        for batch in distribute_batches(self.strategy, dataset):
            totals += self._eval_step(batch).numpy()
        return self._logs(totals, {}, 1)

    def _write_summaries(self, logs: dict[str, float]) -> None:
        if self._log_dir is None:
            return
        for split in ("train", "validation"):
            if split not in self._writers:
                self._writers[split] = tf.summary.create_file_writer(
                    str(self._log_dir / split)
                )
        for key, value in logs.items():
            if key == "epoch":
                continue
            split = "validation" if key.startswith("val_") else "train"
            with self._writers[split].as_default():
                tf.summary.scalar(
                    key.removeprefix("val_"), value, step=self.epochs_done
                )
        for writer in self._writers.values():
            writer.flush()
