"""Checkpoints store variables by path and restore them by path, shapes checked."""

import json
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_rank.core.errors import ConfigError, DataError
from keras_rank.core.surgery import optimizer_slots
from keras_rank.training.checkpoint import (
    CheckpointManager,
    checkpointed_time_s,
    model_variables,
    optimizer_variables,
)


def _model(units=4, dropout=True, sequential=False):
    """Two Dense layers (4 x units, units x 4), optionally dropout between them."""
    keras.utils.set_random_seed(0)
    layers = [
        keras.layers.Dense(units, activation="relu", name="dense_1"),
        *([keras.layers.Dropout(0.5, name="dropout_1")] if dropout else []),
        keras.layers.Dense(4, name="dense_2"),
    ]
    if sequential:
        return keras.Sequential([keras.Input((4,)), *layers], name="net")
    x = inputs = keras.Input((4,))
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x, name="net")


def _train(model, steps=3):
    """Adam steps on random data: moves weights, m, v and the dropout seed."""
    optimizer = keras.optimizers.Adam(0.01)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        x = rng.normal(size=(8, 4)).astype(np.float32)
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(model(x, training=True) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
    return optimizer


def _save(tmp_path, model, optimizer):
    return CheckpointManager(tmp_path).save(1, model, optimizer, {"epochs_done": 1})


def _rewrite(file, change):
    """Rewrites a checkpoint's .npz after `change(arrays)` edited its dict."""
    with np.load(file) as archive:
        arrays = {key: archive[key] for key in archive.files}
    change(arrays)
    np.savez(file, **arrays)


def _assert_same_values(restored, original):
    assert restored.keys() == original.keys()
    for key, variable in original.items():
        np.testing.assert_array_equal(restored[key].numpy(), variable.numpy(), key)


@pytest.mark.parametrize("sequential", [False, True], ids=["functional", "sequential"])
def test_round_trip_restores_weights_adam_state_and_dropout_seed(sequential, tmp_path):
    model = _model(sequential=sequential)
    optimizer = _train(model)
    path = _save(tmp_path, model, optimizer)

    restored = CheckpointManager.restore_model(path)
    restored_optimizer = CheckpointManager.restore_optimizer(
        path, restored.trainable_variables
    )

    # Keras paths differ between the two objects: the restored dropout layer
    # has another seed generator (seed_generator_N, counted per process), and
    # a deserialized Sequential builds its weights outside its name scope.
    dropout_state = model.get_layer("dropout_1").seed_generator.state
    assert dropout_state.path != (
        restored.get_layer("dropout_1").seed_generator.state.path
    )
    kernel_paths = [m.get_layer("dense_1").kernel.path for m in (model, restored)]
    assert kernel_paths == (
        ["net/dense_1/kernel", "dense_1/kernel"]
        if sequential
        else ["dense_1/kernel", "dense_1/kernel"]
    )
    assert "dropout_1/seed_generator_state" in model_variables(model)
    assert int(dropout_state.numpy()[1]) == 3  # one draw per training step
    _assert_same_values(model_variables(restored), model_variables(model))
    _assert_same_values(
        optimizer_variables(restored_optimizer, restored.trainable_variables),
        optimizer_variables(optimizer, model.trainable_variables),
    )
    assert int(restored_optimizer.iterations.numpy()) == 3


def test_optimizer_built_on_reordered_variables_gets_each_variables_slots(tmp_path):
    model = _model(dropout=False)
    optimizer = _train(model)
    path = _save(tmp_path, model, optimizer)
    dense_1_kernel, dense_1_bias, dense_2_kernel, dense_2_bias = (
        model.trainable_variables
    )
    # Same shapes at every position, so restoring by position would not fail
    # but give dense_2 the momentum and velocity of dense_1.
    reordered = [dense_2_kernel, dense_2_bias, dense_1_kernel, dense_1_bias]

    restored = CheckpointManager.restore_optimizer(path, reordered)

    expected = optimizer_slots(optimizer, model.trainable_variables)
    actual = optimizer_slots(restored, reordered)
    for variable_path, slots in expected.items():
        assert slots.keys() == {"momentum", "velocity"}
        for name, slot in slots.items():
            np.testing.assert_array_equal(
                actual[variable_path][name].numpy(),
                slot.numpy(),
                f"{variable_path} {name}",
            )


def test_shape_mismatch_names_checkpoint_variable_and_both_shapes(tmp_path):
    model = _model()
    path = _save(tmp_path, model, _train(model))
    _rewrite(
        path / "model_variables.npz",
        lambda arrays: arrays.update({"dense_2/kernel": np.zeros((5, 4))}),
    )

    with pytest.raises(DataError) as error:
        CheckpointManager.restore_model(path)

    message = str(error.value)
    assert str(path / "model_variables.npz") in message
    assert re.search(
        r"'dense_2/kernel' has shape \(5, 4\) in the checkpoint and \(4, 4\) "
        r"in the model",
        message,
    )
    assert message.count("'") == 2  # only the mismatched variable is named


def test_optimizer_for_other_shapes_is_refused_naming_each_slot(tmp_path):
    model = _model(units=4)
    optimizer = _train(model)
    path = _save(tmp_path, model, optimizer)

    with pytest.raises(DataError) as error:
        CheckpointManager.restore_optimizer(path, _model(units=5).trainable_variables)

    message = str(error.value)
    assert str(path / "optimizer_variables.npz") in message
    for slot in ("momentum", "velocity"):
        assert (
            f"'dense_1/kernel/{slot}' has shape (4, 4) in the checkpoint and "
            "(4, 5) in the optimizer"
        ) in message


def test_missing_variable_is_named_with_its_shape(tmp_path):
    model = _model()
    path = _save(tmp_path, model, _train(model))
    _rewrite(path / "model_variables.npz", lambda arrays: arrays.pop("dense_1/bias"))

    with pytest.raises(
        DataError,
        match=r"model_variables\.npz does not match the model being restored: "
        r"'dense_1/bias' \(shape \(4,\)\) is missing from the checkpoint\.$",
    ):
        CheckpointManager.restore_model(path)


def test_variable_not_in_the_restored_object_is_named(tmp_path):
    model = _model(dropout=False)
    optimizer = _train(model)
    path = _save(tmp_path, model, optimizer)

    with pytest.raises(
        DataError,
        match=r"'dense_2/bias/momentum' \(shape \(4,\)\) is in the checkpoint "
        r"but not in the optimizer",
    ):
        CheckpointManager.restore_optimizer(path, model.trainable_variables[:2])


def test_repeated_variable_path_is_refused_at_save(tmp_path):
    def block(name):
        inputs = keras.Input((3,))
        return keras.Model(
            inputs, keras.layers.Dense(3, name="dense")(inputs), name=name
        )

    inputs = keras.Input((3,))
    model = keras.Model(inputs, block("b")(block("a")(inputs)))
    optimizer = keras.optimizers.Adam()

    with pytest.raises(ConfigError, match="'dense/kernel'.*layer names must be unique"):
        _save(tmp_path, model, optimizer)


def test_checkpointed_time_sums_each_runs_newest_checkpoint(tmp_path):
    """Two runs, two checkpoints each: the newer one of each counts, once."""
    for run, times in {"lc": (10.0, 25.0), "lc/finetune": (3.0, 4.5)}.items():
        for epoch, wall_time_s in enumerate(times, start=1):
            folder = tmp_path / run / "checkpoints" / f"epoch-{epoch:06d}"
            folder.mkdir(parents=True)
            (folder / "state.json").write_text(json.dumps({"wall_time_s": wall_time_s}))
    # A checkpoint still being written (no state.json yet) does not count.
    (tmp_path / "lc" / "checkpoints" / "epoch-000003").mkdir()
    assert checkpointed_time_s(tmp_path) == 29.5
    assert checkpointed_time_s(tmp_path / "none") == 0
