"""The optimizer of a run and its learning-rate schedule, built from settings.

Settings are plain JSON-able values with one name each for the config field,
the flag and the error messages: `optimizer` in `OPTIMIZERS`, `learning_rate`,
`momentum` and `nesterov` (SGD only), `lr_schedule` in `LR_SCHEDULES`,
`lr_decay_rate` (exponential only) and `lr_cosine_alpha` (cosine only). A
setting the chosen optimizer or schedule would ignore is refused, not dropped.

Schedules are Keras `LearningRateSchedule`s evaluated at the optimizer's
iteration count (updates done before the current one), so they survive
`keras.optimizers.serialize`/`deserialize`, `from_config(get_config())` and a
model rebuild that carries the iteration count over:

- constant: `learning_rate`;
- exponential: `learning_rate * lr_decay_rate ** epoch`, stepping once per
  epoch (`epoch = step // steps_per_epoch`);
- cosine: from `learning_rate` down to `lr_cosine_alpha * learning_rate` over
  `epochs * steps_per_epoch` steps, then flat.
"""

import math
import numbers

import keras

from keras_rank.core.errors import ConfigError

OPTIMIZERS = ("adam", "sgd")
LR_SCHEDULES = ("constant", "exponential", "cosine")


def _require(ok: bool, name: str, expectation: str, value) -> None:
    if not ok:
        raise ConfigError(f"Expected {expectation}. Received: {name}={value!r}")


def _is_finite_real(value) -> bool:
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _is_positive_int(value) -> bool:
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= 1
    )


def check_optimizer_args(
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    lr_schedule: str = "constant",
    lr_decay_rate: float | None = None,
    lr_cosine_alpha: float = 0.0,
) -> None:
    """Raises `ConfigError` unless the settings describe one valid optimizer.

    Needs no data, so a config can be checked before anything is loaded.
    Arguments are those of `make_optimizer` without the run's length.

    Raises:
        ConfigError: A value outside its range or choices, or a setting the
            optimizer or schedule would ignore (momentum or nesterov with Adam,
            lr_decay_rate without the exponential schedule, lr_cosine_alpha
            without the cosine one), nesterov without momentum, or the
            exponential schedule without lr_decay_rate.
    """
    _require(
        optimizer in OPTIMIZERS, "optimizer", f"optimizer in {OPTIMIZERS}", optimizer
    )
    _require(
        _is_finite_real(learning_rate) and learning_rate > 0,
        "learning_rate",
        "learning_rate > 0",
        learning_rate,
    )
    _require(
        _is_finite_real(momentum) and 0 <= momentum < 1,
        "momentum",
        "0 <= momentum < 1",
        momentum,
    )
    _require(
        isinstance(nesterov, bool), "nesterov", "nesterov in (True, False)", nesterov
    )
    _require(
        lr_schedule in LR_SCHEDULES,
        "lr_schedule",
        f"lr_schedule in {LR_SCHEDULES}",
        lr_schedule,
    )
    _require(
        lr_decay_rate is None
        or (_is_finite_real(lr_decay_rate) and 0 < lr_decay_rate < 1),
        "lr_decay_rate",
        "0 < lr_decay_rate < 1 (or None)",
        lr_decay_rate,
    )
    _require(
        _is_finite_real(lr_cosine_alpha) and 0 <= lr_cosine_alpha < 1,
        "lr_cosine_alpha",
        "0 <= lr_cosine_alpha < 1",
        lr_cosine_alpha,
    )
    if optimizer != "sgd" and (momentum or nesterov):
        raise ConfigError(
            "momentum and nesterov apply to optimizer='sgd' only. Received: "
            f"optimizer={optimizer!r}, momentum={momentum!r}, nesterov={nesterov!r}"
        )
    _require(
        momentum > 0 or not nesterov,
        "momentum",
        "momentum > 0 with nesterov=True",
        momentum,
    )
    if lr_schedule == "exponential":
        _require(
            lr_decay_rate is not None,
            "lr_decay_rate",
            "0 < lr_decay_rate < 1 with lr_schedule='exponential'",
            lr_decay_rate,
        )
    elif lr_decay_rate is not None:
        raise ConfigError(
            "lr_decay_rate applies to lr_schedule='exponential' only. Received: "
            f"lr_schedule={lr_schedule!r}, lr_decay_rate={lr_decay_rate!r}"
        )
    if lr_schedule != "cosine" and lr_cosine_alpha:
        raise ConfigError(
            "lr_cosine_alpha applies to lr_schedule='cosine' only. Received: "
            f"lr_schedule={lr_schedule!r}, lr_cosine_alpha={lr_cosine_alpha!r}"
        )


def make_optimizer(
    optimizer: str = "adam",
    learning_rate: float = 1e-3,
    *,
    momentum: float = 0.0,
    nesterov: bool = False,
    lr_schedule: str = "constant",
    lr_decay_rate: float | None = None,
    lr_cosine_alpha: float = 0.0,
    steps_per_epoch: int,
    epochs: int,
) -> keras.optimizers.Optimizer:
    """Returns a fresh (unbuilt) Keras optimizer with its learning-rate schedule.

    Create it inside `strategy.scope()`.

    Args:
        optimizer: One of `OPTIMIZERS`.
        learning_rate: The initial learning rate, > 0.
        momentum: SGD momentum in [0, 1); 0 (plain SGD) for Adam.
        nesterov: SGD with Nesterov momentum (needs momentum > 0).
        lr_schedule: One of `LR_SCHEDULES` (see the module docstring).
        lr_decay_rate: Factor per epoch of the exponential schedule, in
            (0, 1); required by it, None for the other schedules.
        lr_cosine_alpha: The cosine schedule's final learning rate as a
            fraction of `learning_rate`, in [0, 1); 0 for the other schedules.
        steps_per_epoch: Optimizer updates per epoch, >= 1.
        epochs: Epochs of the run, >= 1 (the cosine schedule's length).

    Raises:
        ConfigError: As `check_optimizer_args`, or `steps_per_epoch` or
            `epochs` is not a positive integer.
    """
    check_optimizer_args(
        optimizer,
        learning_rate,
        momentum=momentum,
        nesterov=nesterov,
        lr_schedule=lr_schedule,
        lr_decay_rate=lr_decay_rate,
        lr_cosine_alpha=lr_cosine_alpha,
    )
    _require(
        _is_positive_int(steps_per_epoch),
        "steps_per_epoch",
        "steps_per_epoch >= 1",
        steps_per_epoch,
    )
    _require(_is_positive_int(epochs), "epochs", "epochs >= 1", epochs)
    schedules = keras.optimizers.schedules
    if lr_schedule == "exponential":
        rate = schedules.ExponentialDecay(
            learning_rate,
            decay_steps=steps_per_epoch,
            decay_rate=lr_decay_rate,
            staircase=True,
        )
    elif lr_schedule == "cosine":
        rate = schedules.CosineDecay(
            learning_rate, decay_steps=epochs * steps_per_epoch, alpha=lr_cosine_alpha
        )
    else:
        rate = learning_rate
    if optimizer == "sgd":
        return keras.optimizers.SGD(rate, momentum=momentum, nesterov=nesterov)
    return keras.optimizers.Adam(rate)
