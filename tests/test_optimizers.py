import json
import math

import keras
import numpy as np
import pytest

from keras_rank.core import surgery
from keras_rank.core.errors import ConfigError
from keras_rank.training import ModelRebuild, Trainer
from keras_rank.training.optimizers import (
    LR_SCHEDULES,
    check_optimizer_args,
    make_optimizer,
)

LR, DECAY, ALPHA = 0.1, 0.5, 0.2
STEPS_PER_EPOCH, EPOCHS = 4, 3

SCHEDULE_ARGS = {
    "constant": {"lr_schedule": "constant"},
    "exponential": {"lr_schedule": "exponential", "lr_decay_rate": DECAY},
    "cosine": {"lr_schedule": "cosine", "lr_cosine_alpha": ALPHA},
}


def _closed_form(schedule, step):
    if schedule == "constant":
        return LR
    if schedule == "exponential":
        return LR * DECAY ** (step // STEPS_PER_EPOCH)
    total = EPOCHS * STEPS_PER_EPOCH
    cosine = 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    return LR * ((1 - ALPHA) * cosine + ALPHA)


def _make(optimizer="sgd", schedule="constant", **kwargs):
    return make_optimizer(
        optimizer,
        LR,
        steps_per_epoch=STEPS_PER_EPOCH,
        epochs=EPOCHS,
        **SCHEDULE_ARGS[schedule],
        **kwargs,
    )


def _rates(optimizer, steps):
    """Returns the optimizer's learning rate at each of `steps` (built first)."""
    optimizer.build([keras.Variable(0.0)])
    rates = []
    for step in steps:
        optimizer.iterations.assign(step)
        rates.append(float(optimizer.learning_rate))
    return rates


# Every step of the run and past it: 0, steps_per_epoch - 1, steps_per_epoch, ...
ALL_STEPS = range(EPOCHS * STEPS_PER_EPOCH + 2)


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_sgd_update_k_uses_the_closed_form_learning_rate_of_step_k(schedule):
    optimizer = _make("sgd", schedule)
    weight = keras.Variable(0.0)
    optimizer.build([weight])
    steps = []
    for _ in ALL_STEPS:
        weight.assign(0.0)
        optimizer.apply_gradients([(np.float32(1.0), weight)])
        steps.append(-float(weight.numpy()))
    want = [_closed_form(schedule, k) for k in ALL_STEPS]
    np.testing.assert_allclose(steps, want, rtol=1e-6)
    if schedule == "exponential":  # one decay per epoch, at the epoch's first step
        assert steps[STEPS_PER_EPOCH - 1] == pytest.approx(LR)
        assert steps[STEPS_PER_EPOCH] == pytest.approx(LR * DECAY)
    if schedule == "cosine":  # flat at the floor after the last step
        assert steps[-1] == steps[-2] == pytest.approx(LR * ALPHA)


@pytest.mark.parametrize("schedule", LR_SCHEDULES)
def test_adam_follows_the_same_schedule(schedule):
    optimizer = _make("adam", schedule)
    assert isinstance(optimizer, keras.optimizers.Adam)
    want = [_closed_form(schedule, k) for k in ALL_STEPS]
    np.testing.assert_allclose(_rates(optimizer, ALL_STEPS), want, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"optimizer": "adam", "schedule": "constant"},
        {"optimizer": "sgd", "schedule": "constant"},
        {"optimizer": "sgd", "schedule": "exponential", "momentum": 0.9},
        {"optimizer": "sgd", "schedule": "cosine", "momentum": 0.8, "nesterov": True},
        {"optimizer": "adam", "schedule": "cosine"},
    ],
    ids=lambda kwargs: "-".join(str(v) for v in kwargs.values()),
)
def test_schedule_and_momentum_survive_serialization(kwargs):
    original = _make(**kwargs)
    via_json = keras.optimizers.deserialize(
        json.loads(json.dumps(keras.optimizers.serialize(original)))
    )
    via_config = original.__class__.from_config(original.get_config())
    want_rates = [_closed_form(kwargs["schedule"], k) for k in ALL_STEPS]
    for copy in (via_json, via_config):
        assert type(copy) is type(original)
        if kwargs["optimizer"] == "sgd":
            assert copy.momentum == kwargs.get("momentum", 0.0)
            assert copy.nesterov == kwargs.get("nesterov", False)
        np.testing.assert_allclose(_rates(copy, ALL_STEPS), want_rates, rtol=1e-6)


def _model():
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(6, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(3, name="out")(hidden), name="mlp")


def _trainer(model):
    # 64 examples / batch 16 = STEPS_PER_EPOCH steps per epoch.
    optimizer = _make("sgd", "cosine", momentum=0.9, nesterov=True)
    return Trainer(model, optimizer, verbose=0)


@pytest.mark.slow
def test_sgd_momentum_and_schedule_carry_across_a_rebuild():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(64, 4)).astype(np.float32)
    labels = rng.integers(0, 3, size=64).astype(np.int32)
    keras.utils.set_random_seed(0)
    uninterrupted = _trainer(_model())
    rebuilt = _trainer(_model())
    rebuilt.model.set_weights(uninterrupted.model.get_weights())
    uninterrupted.fit((images, labels), epochs=2, batch_size=16)

    rebuilt.fit((images, labels), epochs=1, batch_size=16)
    old_slots = surgery.optimizer_slots(
        rebuilt.optimizer, rebuilt.model.trainable_variables
    )
    fresh = keras.models.clone_model(rebuilt.model)
    fresh.set_weights(rebuilt.model.get_weights())
    old_optimizer = rebuilt.optimizer
    rebuilt.replace_model(ModelRebuild(fresh))
    assert rebuilt.optimizer is not old_optimizer
    new_slots = surgery.optimizer_slots(
        rebuilt.optimizer, rebuilt.model.trainable_variables
    )
    assert set(new_slots) == set(old_slots) and len(new_slots) == 4
    for path, slots in new_slots.items():
        assert set(slots) == {"momentum"}
        assert np.any(old_slots[path]["momentum"].numpy() != 0)
        np.testing.assert_array_equal(
            slots["momentum"].numpy(), old_slots[path]["momentum"].numpy()
        )
    assert int(rebuilt.optimizer.iterations) == STEPS_PER_EPOCH
    assert float(rebuilt.optimizer.learning_rate) == pytest.approx(
        _closed_form("cosine", STEPS_PER_EPOCH)
    )

    rebuilt.fit((images, labels), epochs=2, batch_size=16)
    for got, want in zip(
        rebuilt.model.get_weights(), uninterrupted.model.get_weights(), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_defaults_are_adam_with_a_constant_rate():
    optimizer = make_optimizer(steps_per_epoch=1, epochs=1)
    assert isinstance(optimizer, keras.optimizers.Adam)
    assert _rates(optimizer, [0, 100]) == pytest.approx([1e-3, 1e-3])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"optimizer": "rmsprop"},
            r"optimizer in \('adam', 'sgd'\)\. Received: optimizer='rmsprop'",
        ),
        ({"learning_rate": 0.0}, r"learning_rate > 0\. Received: learning_rate=0\.0"),
        (
            {"learning_rate": float("nan")},
            r"learning_rate > 0\. Received: learning_rate=nan",
        ),
        (
            {"learning_rate": "0.1"},
            r"learning_rate > 0\. Received: learning_rate='0.1'",
        ),
        (
            {"optimizer": "sgd", "momentum": 1.0},
            r"0 <= momentum < 1\. Received: momentum=1\.0",
        ),
        ({"optimizer": "sgd", "momentum": -0.1}, r"0 <= momentum < 1"),
        (
            {"optimizer": "sgd", "nesterov": "yes"},
            r"nesterov in \(True, False\)\. Received: nesterov='yes'",
        ),
        (
            {"lr_schedule": "step"},
            r"lr_schedule in \('constant', 'exponential', "
            r"'cosine'\)\. Received: lr_schedule='step'",
        ),
        (
            {"lr_schedule": "exponential", "lr_decay_rate": 1.0},
            r"0 < lr_decay_rate < 1 \(or None\)\. Received: lr_decay_rate=1\.0",
        ),
        (
            {"lr_schedule": "exponential", "lr_decay_rate": 0.0},
            r"0 < lr_decay_rate < 1",
        ),
        (
            {"lr_schedule": "cosine", "lr_cosine_alpha": 1.0},
            r"0 <= lr_cosine_alpha < 1\. Received: lr_cosine_alpha=1\.0",
        ),
        (
            {"momentum": 0.9},
            r"momentum and nesterov apply to optimizer='sgd' only\. "
            r"Received: optimizer='adam', momentum=0\.9, nesterov=False",
        ),
        ({"nesterov": True}, r"momentum and nesterov apply to optimizer='sgd' only"),
        (
            {"optimizer": "sgd", "nesterov": True},
            r"momentum > 0 with nesterov=True\. Received: momentum=0\.0",
        ),
        (
            {"lr_schedule": "exponential"},
            r"0 < lr_decay_rate < 1 with "
            r"lr_schedule='exponential'\. Received: lr_decay_rate=None",
        ),
        (
            {"lr_decay_rate": 0.5},
            r"lr_decay_rate applies to lr_schedule='exponential' "
            r"only\. Received: lr_schedule='constant', lr_decay_rate=0\.5",
        ),
        ({"lr_schedule": "cosine", "lr_decay_rate": 0.5}, r"lr_decay_rate applies"),
        (
            {"lr_cosine_alpha": 0.1},
            r"lr_cosine_alpha applies to lr_schedule='cosine' "
            r"only\. Received: lr_schedule='constant', lr_cosine_alpha=0\.1",
        ),
        (
            {
                "lr_schedule": "exponential",
                "lr_decay_rate": 0.5,
                "lr_cosine_alpha": 0.1,
            },
            r"lr_cosine_alpha applies",
        ),
    ],
)
def test_bad_settings_name_the_argument_and_the_allowed_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        check_optimizer_args(**kwargs)
    with pytest.raises(ConfigError, match=match):
        make_optimizer(**kwargs, steps_per_epoch=1, epochs=1)


@pytest.mark.parametrize(
    "steps_per_epoch, epochs, match",
    [
        (0, 1, r"steps_per_epoch >= 1\. Received: steps_per_epoch=0"),
        (2.0, 1, r"steps_per_epoch >= 1\. Received: steps_per_epoch=2\.0"),
        (1, 0, r"epochs >= 1\. Received: epochs=0"),
        (1, True, r"epochs >= 1\. Received: epochs=True"),
    ],
)
def test_bad_run_length_names_the_argument(steps_per_epoch, epochs, match):
    with pytest.raises(ConfigError, match=match):
        make_optimizer(steps_per_epoch=steps_per_epoch, epochs=epochs)
