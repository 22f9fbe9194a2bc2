"""Flags shared by every trainer and the one way trainers report bad input."""

import sys
from collections.abc import Callable

from absl import app, flags

from keras_rank import data as data_lib
from keras_rank import models
from keras_rank.errors import ConfigError, KerasRankError
from keras_rank.training import STRATEGIES, TrainConfig, optimizers, task_loss


def define_train_flags() -> None:
    """Defines the flags of `keras_rank.training.TrainConfig`."""
    flags.DEFINE_enum(
        "model",
        None,
        list(models.MODEL_NAMES),
        "Model of the zoo (default mlp, unless --model_path is given).",
    )
    flags.DEFINE_string(
        "model_path",
        None,
        "Your own Functional or Sequential model as a .keras file, instead of "
        "--model; training starts from its weights.",
    )
    flags.DEFINE_string(
        "data",
        str(data_lib.DEFAULT_DATA_DIR),
        "A folder of the four IDX files, a folder with train/ and test/ sub-folders "
        "of class folders of images, or tfds:NAME.",
    )
    flags.DEFINE_string(
        "train_split",
        "train",
        "The split to train on: a tfds split name, or an image folder's sub-folder.",
    )
    flags.DEFINE_string(
        "test_split", "test", "The split to test on, named the same way."
    )
    flags.DEFINE_integer("epochs", 5, "Number of training epochs.", lower_bound=1)
    flags.DEFINE_integer("batch_size", 128, "Global batch size.", lower_bound=1)
    flags.DEFINE_float("learning_rate", 1e-3, "Initial learning rate.")
    flags.DEFINE_enum("optimizer", "adam", list(optimizers.OPTIMIZERS), "Optimizer.")
    flags.DEFINE_float("momentum", 0.0, "SGD momentum, in [0, 1).")
    flags.DEFINE_bool("nesterov", False, "SGD with Nesterov momentum.")
    flags.DEFINE_enum(
        "lr_schedule",
        "constant",
        list(optimizers.LR_SCHEDULES),
        "Learning-rate schedule: constant, exponential (per epoch), cosine.",
    )
    flags.DEFINE_float(
        "lr_decay_rate", None, "Per-epoch factor of --lr_schedule=exponential."
    )
    flags.DEFINE_float(
        "lr_cosine_alpha", 0.0, "Final fraction of the rate, --lr_schedule=cosine."
    )
    flags.DEFINE_enum(
        "loss",
        "auto",
        list(task_loss.LOSSES),
        "Task loss; auto is sparse categorical cross-entropy.",
    )
    flags.DEFINE_enum(
        "from_logits",
        "auto",
        list(task_loss.FROM_LOGITS),
        "Whether the model outputs logits; auto reads its output layer.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of initialisation, dropout and data order.")
    flags.DEFINE_float(
        "validation_fraction",
        0.1,
        "Share of the training split held out for validation, in [0, 1).",
    )
    flags.DEFINE_enum(
        "strategy", "default", list(STRATEGIES), "tf.distribute strategy."
    )
    flags.DEFINE_integer(
        "cpu_devices",
        0,
        "With --strategy=mirrored and no GPU: split the CPU into this many devices.",
    )
    flags.DEFINE_bool("jit_compile", False, "Compile the train step with XLA.")
    flags.DEFINE_integer("verbose", 1, "0 silent, 1 progress bar, 2 a line per epoch.")
    flags.DEFINE_list(
        "record_units",
        [],
        "Dense/Conv2D layers whose weights are written after every epoch, for "
        "the cosine graph of their units over training (trainers.analyze).",
    )
    flags.DEFINE_string("workdir", None, "Work directory (checkpoints, logs, results).")
    flags.mark_flag_as_required("workdir")


def train_config_from_flags() -> TrainConfig:
    """Builds the frozen `TrainConfig` from the parsed flags."""
    f = flags.FLAGS
    return TrainConfig(
        model=f.model,
        model_path=f.model_path,
        data=f.data,
        train_split=f.train_split,
        test_split=f.test_split,
        epochs=f.epochs,
        batch_size=f.batch_size,
        learning_rate=f.learning_rate,
        optimizer=f.optimizer,
        momentum=f.momentum,
        nesterov=f.nesterov,
        lr_schedule=f.lr_schedule,
        lr_decay_rate=f.lr_decay_rate,
        lr_cosine_alpha=f.lr_cosine_alpha,
        loss=f.loss,
        from_logits=f.from_logits,
        seed=f.seed,
        validation_fraction=f.validation_fraction,
        strategy=f.strategy,
        cpu_devices=f.cpu_devices,
        jit_compile=f.jit_compile,
        verbose=f.verbose,
        record_units=tuple(f.record_units),
    )


def run_or_exit(fn: Callable[[], object]) -> None:
    """Runs `fn`; bad input becomes one line on stderr and exit status 2."""
    try:
        fn()
    except KerasRankError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def reject_arguments(argv: list[str]) -> None:
    """Refuses positional arguments: trainers take flags only."""
    if len(argv) > 1:
        raise app.UsageError(
            f"error: unexpected arguments {' '.join(argv[1:])!r}; "
            "trainers take --flag=value only."
        )


def numbers_from_flag(name: str, values: list[str]) -> tuple[float, ...]:
    """Parses a list flag of numbers; a value that is not one is a ConfigError."""
    try:
        return tuple(float(value) for value in values)
    except ValueError as error:
        raise ConfigError(
            f"Expected --{name} to be comma-separated numbers. "
            f"Received: --{name}={','.join(values)}"
        ) from error
