"""`run_method` and `train_and_evaluate`: one training run into a work directory.

Work directory layout::

    config.json        the run's TrainConfig (checked again on resume)
    checkpoints/       per-epoch checkpoints; re-running resumes from the newest
    tensorboard/       train/ and validation/ scalars per epoch
    unit_history/      unit matrices at init and per epoch (`unit_history`)
    model.keras        the final model
    results.json       test metrics, parameters, FLOPs, history, wall time

results.json holds two sizes: ``params`` / ``flops_*`` are the trained
model's own count (for DLRA the factorized W', the paper's count), and
``deployable`` is the count of the same function written with plain Keras
layers only, as it ships (`keras_rank.layers.deployable`). They differ when
a method's layers hold fewer weights than the plain layers that express them.
"""

import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_rank import models
from keras_rank.core import costs, user_models
from keras_rank.core.errors import ConfigError
from keras_rank.core.workdirs import check_writable_folder, make_writable_folder
from keras_rank.training import optimizers
from keras_rank.training.config import TrainConfig
from keras_rank.training.engine import Trainer
from keras_rank.training.evaluation import Deployable, ModelEvaluator
from keras_rank.training.keras_callbacks import as_engine_callback
from keras_rank.training.method import Method, NoCompression, Run
from keras_rank.training.strategy import is_chief, make_strategy
from keras_rank.training.summary import run_summary
from keras_rank.training.task_loss import resolve_task_loss
from keras_rank.training.unit_history import HISTORY_DIR, UnitHistory


def initial_model(
    config: TrainConfig,
    input_shape: tuple[int, ...],
    num_classes: int,
    model: keras.Model | None = None,
) -> tuple[keras.Model, str]:
    """Returns the model a run starts from, and where it came from.

    Call inside the strategy's scope, so that its variables are created
    there.

    Args:
        config: The run's configuration (`model` or `model_path`).
        input_shape: Shape of one example of the data.
        num_classes: Number of classes of the data.
        model: A model given in code; overrides the config.

    Returns:
        `(model, description)`, e.g. `"zoo:mlp"`, `"file:path.keras"`.

    Raises:
        ConfigError: The model cannot be loaded, is subclassed, or does not
            fit the data.
    """
    if model is not None:
        source = f"object:{model.name}"
    elif config.model_path:
        model = user_models.load_model_file(config.model_path)
        source = f"file:{config.model_path}"
    else:
        return (
            models.build_model(config.model, input_shape, num_classes),
            f"zoo:{config.model}",
        )
    # A Functional copy made here: its variables live in the strategy's scope
    # and keep their paths through rebuilds and checkpoints.
    model = user_models.as_functional_copy(model)
    user_models.check_fits_data(model, input_shape, num_classes)
    return model, source


def _leaves(settings: Any, prefix: str) -> dict[str, Any]:
    """`settings` (nested dicts) flattened to ``{"method.lc.mu0": value}``."""
    if not isinstance(settings, dict):
        return {prefix: settings}
    leaves = {}
    for name, value in settings.items():
        leaves.update(_leaves(value, f"{prefix}.{name}"))
    return leaves


def check_workdir(
    workdir: str | os.PathLike,
    config: TrainConfig,
    method_config: dict[str, Any] | None = None,
    *,
    writable: bool = True,
) -> pathlib.Path:
    """Checks, writing nothing, that this run may start or resume in `workdir`.

    Args:
        workdir: The work directory.
        config: The run's configuration.
        method_config: The method's own settings.
        writable: Whether this process must be able to write there (the
            other workers of a cluster only read config.json, if the chief
            wrote it yet).

    Returns:
        The work directory as a path.

    Raises:
        ConfigError: The folder cannot be written, or holds a run of other
            settings; the message names each setting that differs.
    """
    path = check_writable_folder(workdir) if writable else pathlib.Path(workdir)
    saved = path / "config.json"
    if not saved.is_file():
        return path
    previous = json.loads(saved.read_text())
    changes = config.changes_from(previous)
    before = _leaves(previous.get("method"), "method")
    after = _leaves(json.loads(json.dumps(method_config)), "method")
    sections = {name.rsplit(".", 1)[0] for name in before}
    for name in dict.fromkeys([*before, *after]):
        if name not in before and name.rsplit(".", 1)[0] in sections:
            continue  # a setting added since that run, as `changes_from` skips
        if before.get(name) != after.get(name):
            changes[name] = (before.get(name), after.get(name))
    if changes:
        differences = "; ".join(
            f"{name}={old!r} there, {new!r} here"
            for name, (old, new) in changes.items()
        )
        raise ConfigError(
            f"workdir '{workdir}' holds a run of other settings: {differences}. "
            "Use a new workdir, or the same settings to resume."
        )
    return path


def write_run_config(
    workdir: str | os.PathLike,
    config: TrainConfig,
    method_config: dict[str, Any] | None = None,
) -> pathlib.Path:
    """Creates `workdir` and writes the run's config.json (atomically).

    Raises:
        ConfigError: The folder cannot be created or written.
    """
    path = make_writable_folder(workdir)
    current = {**config.to_dict(), "method": method_config}
    # Atomic, so a worker reading it meanwhile never sees half a file.
    partial = path / f".config.json.{os.getpid()}"
    partial.write_text(json.dumps(current, indent=1))
    os.replace(partial, path / "config.json")
    return path


def prepare_workdir(
    workdir: str | os.PathLike,
    config: TrainConfig,
    method_config: dict[str, Any] | None = None,
    *,
    write: bool = True,
) -> pathlib.Path:
    """`check_workdir`, then (with `write`) `write_run_config`.

    Args:
        workdir: The work directory.
        config: The run's configuration.
        method_config: The method's own settings.
        write: Whether this process writes config.json (the chief of a
            multi-worker cluster does; the other workers only check it).

    Raises:
        ConfigError: The folder cannot be written, or holds another run.
    """
    path = check_workdir(workdir, config, method_config, writable=write)
    return write_run_config(path, config, method_config) if write else path


def run_method(
    method: Method,
    config: TrainConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Trains a model with `method` as `config` says, resuming from `workdir`.

    The one way any method meets the engine: the model is built (or
    given), prepared by the method (unless a checkpoint resumes it),
    trained with the method's loss terms, gradient transforms and
    callbacks, tested, and reported. results.json begins with the
    `summary` block (`keras_rank.training.summary`), then the engine's
    entries, then the method's (under its name).

    Args:
        method: The method (`NoCompression` trains the model as it is).
        config: The run's configuration.
        workdir: Work directory (see the module docstring for its layout).
        model: The model to train (Functional or Sequential); None builds
            the one `config` names (`model` of the zoo or `model_path`).
        callbacks: The user's callbacks, after the method's:
            `keras.callbacks.Callback` objects (EarlyStopping, CSVLogger,
            TensorBoard, ...; see `keras_rank.training.keras_callbacks`) or
            engine callbacks. Refused before anything is written when the
            engine cannot apply them.

    Returns:
        The dict written to `workdir/results.json`.
    """
    strategy = make_strategy(config.strategy, config.cpu_devices)
    method_settings = method.settings()
    # Nothing is written before the settings, the data and the model are
    # known to be good.
    path = check_workdir(workdir, config, method_settings, writable=is_chief(strategy))
    user_callbacks = [as_engine_callback(callback) for callback in callbacks]
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    splits = config.load_splits()
    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model, model_source = initial_model(
            config, splits.input_shape, splits.num_classes, model
        )
        model = method.prepare_model(model)
        optimizer = optimizers.make_optimizer(
            **config.optimizer_settings(),
            steps_per_epoch=max(
                (splits.train.num_examples or 0) // config.batch_size, 1
            ),
            epochs=config.epochs,
        )
    if is_chief(strategy):
        write_run_config(path, config, method_settings)
    trainer = Trainer(
        model,
        optimizer,
        task_loss=resolve_task_loss(model, config.loss, config.from_logits),
        strategy=strategy,
        loss_terms=method.loss_terms(),
        gradient_transforms=method.gradient_transforms(),
        callbacks=(
            *method.callbacks(),
            UnitHistory(path / HISTORY_DIR, config.record_units),
            *user_callbacks,
        ),
        checkpoint_dir=path / "checkpoints",
        log_dir=path / "tensorboard",
        verbose=config.verbose,
        jit_compile=config.jit_compile,
    )
    if trainer.restore() and config.verbose:
        print(
            f"Resuming from {trainer.checkpoints.latest()} "
            f"({trainer.epochs_done}/{config.epochs} epochs done)."
        )
    trainer.fit(
        splits.train,
        epochs=config.epochs,
        batch_size=config.batch_size,
        seed=config.seed,
        validation_data=splits.validation,
    )
    start = time.perf_counter()
    test = trainer.evaluate(splits.test, batch_size=max(config.batch_size, 256))
    cost = costs.model_cost(trainer.model)
    deployable = Deployable.of(trainer.model)
    val_accuracies = [h["val_accuracy"] for h in trainer.history if "val_accuracy" in h]
    results = {
        "test_loss": test["loss"],
        "test_accuracy": test["accuracy"],
        "best_val_accuracy": max(val_accuracies, default=None),
        "epochs_completed": trainer.epochs_done,
        "params": cost.params,
        "flops_mac1": cost.flops_mac1,
        "flops_mac2": cost.flops_mac2,
        "deployable": deployable.size,
        "cost": cost.as_dict(),
        "train_time_s": trainer.wall_time_s,
        "history": trainer.history,
        "data": {
            "source": splits.source,
            "train_examples": splits.train.num_examples,
            "validation_examples": splits.validation.num_examples
            if splits.validation
            else 0,
            "test_examples": splits.test.num_examples,
        },
        "config": config.to_dict(),
        "model_source": model_source,
        "task_loss": dataclasses.asdict(trainer.task_loss),
        "replicas": strategy.num_replicas_in_sync,
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }
    run = Run(config, trainer, deployable, test, path, ModelEvaluator(config, splits))
    entries = method.report(run)
    results["wall_time_s"] = trainer.wall_time_s + time.perf_counter() - start
    results = {
        "summary": run_summary(method.name, results, method_settings),
        **results,
        **entries,
    }
    if trainer.is_chief:
        trainer.model.save(path / "model.keras")
        (path / "results.json").write_text(json.dumps(results, indent=1))
    if config.verbose:
        print(costs.format_cost_table(cost))
        print(
            f"test accuracy {test['accuracy']:.4f}  test loss {test['loss']:.4f}  "
            f"{_params_line(cost.params, deployable.size['params'])}  "
            f"results: {path / 'results.json'}"
        )
    return results


def train_and_evaluate(
    config: TrainConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Trains a model as it is (no compression); resumes from `workdir`.

    `run_method` with `NoCompression`: the baseline trainer, and the
    reference and fine-tuning phases of LC. `model` and `callbacks` are
    `run_method`'s.

    Returns:
        The dict written to `workdir/results.json`.
    """
    return run_method(
        NoCompression(), config, workdir, model=model, callbacks=callbacks
    )


def _params_line(params: int, deployable_params: int) -> str:
    """Returns the parameter count for the end-of-run line, both when they differ.

    Args:
        params: The trained model's own count (``results["params"]``).
        deployable_params: The plain exported model's count.
    """
    if params == deployable_params:
        return f"params {params:,}"
    return (
        f"params {params:,} (method's count), "
        f"{deployable_params:,} deployable (plain exported model)"
    )
