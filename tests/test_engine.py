import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_rank import data as data_lib
from keras_rank.core import surgery
from keras_rank.core.errors import ConfigError
from keras_rank.training import Callback, ModelRebuild, Trainer, TrainingDivergedError
from keras_rank.training.engine import epoch_seed
from keras_rank.training.strategy import make_strategy


def _data(n=256, dim=8, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * 3
    labels = rng.integers(0, classes, size=n).astype(np.int32)
    images = (centers[labels] + rng.normal(size=(n, dim))).astype(np.float32)
    return images, labels


def _mlp(dim=8, hidden=6, classes=3, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((dim,)),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(classes, name="out"),
        ],
        name="mlp",
    )


def _trainer(model=None, strategy=None, **kwargs):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = model or _mlp()
        optimizer = keras.optimizers.Adam(0.05)
    return Trainer(model, optimizer, strategy=strategy, verbose=0, **kwargs)


class L2Term:
    name = "l2"

    def __init__(self, weight):
        self.weight = weight

    def __call__(self, model):
        return self.weight * tf.add_n(
            [tf.reduce_sum(w**2) for w in model.trainable_weights]
        )


def test_fit_learns_separable_data():
    images, labels = _data()
    trainer = _trainer()
    before = trainer.evaluate((images, labels))
    history = trainer.fit(
        (images, labels), epochs=5, batch_size=32, validation_data=(images, labels)
    )
    assert len(history) == 5
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] > 0.9 > before["accuracy"]


def test_loss_term_enters_gradient_and_logs():
    images, labels = _data(n=32)
    model = _mlp()
    reference = keras.models.clone_model(model)
    reference.set_weights(model.get_weights())
    optimizer = keras.optimizers.SGD(0.1)
    trainer = Trainer(model, optimizer, loss_terms=[L2Term(0.5)], verbose=0)
    history = trainer.fit((images, labels), epochs=1, batch_size=32)

    with tf.GradientTape() as tape:
        logits = reference(images, training=True)
        task = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
        )
        penalty = L2Term(0.5)(reference)
        total = task + penalty
    grads = tape.gradient(total, reference.trainable_weights)
    for var, grad, trained in zip(
        reference.trainable_weights, grads, model.trainable_weights, strict=True
    ):
        np.testing.assert_allclose(
            trained.numpy(), var.numpy() - 0.1 * grad.numpy(), atol=1e-5
        )
    assert history[0]["l2"] == pytest.approx(float(penalty), rel=1e-5)


def _drop_hidden_unit(model, unit):
    """Rebuilds `model` without hidden unit `unit` (and its outgoing row)."""
    keep = np.array([i for i in range(model.get_layer("hidden").units) if i != unit])
    small = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(len(keep), activation="relu", name="hidden"),
            keras.layers.Dense(3, name="out"),
        ],
        name="mlp",
    )
    kernel, bias = model.get_layer("hidden").get_weights()
    out_kernel, out_bias = model.get_layer("out").get_weights()
    small.get_layer("hidden").set_weights([kernel[:, keep], bias[keep]])
    small.get_layer("out").set_weights([out_kernel[keep], out_bias])
    paths = {v.path: v for v in small.trainable_variables}
    maps = {
        paths["mlp/hidden/kernel"].path: lambda s: s[:, keep],
        paths["mlp/hidden/bias"].path: lambda s: s[keep],
        paths["mlp/out/kernel"].path: lambda s: s[keep],
    }
    return ModelRebuild(small, maps)


class DropDeadUnitAtEpoch(Callback):
    """Removes hidden unit 0 after `epoch`, first zeroing its outgoing weights."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.seen = {}

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch != self.epoch:
            return None
        out = trainer.model.get_layer("out")
        out.kernel.assign(
            tf.tensor_scatter_nd_update(out.kernel, [[0]], tf.zeros((1, 3)))
        )
        self.seen["images"] = (
            np.random.default_rng(1).normal(size=(16, 8)).astype(np.float32)
        )
        self.seen["outputs"] = trainer.model(self.seen["images"]).numpy()
        self.seen["slots"] = {
            path: {k: v.numpy() for k, v in slots.items()}
            for path, slots in surgery.optimizer_slots(
                trainer.optimizer, trainer.model.trainable_variables
            ).items()
        }
        self.seen["iterations"] = int(trainer.optimizer.iterations)
        return _drop_hidden_unit(trainer.model, 0)


def test_rebuild_keeps_outputs_and_slots_of_kept_units():
    images, labels = _data()
    callback = DropDeadUnitAtEpoch(epoch=0)
    trainer = _trainer(callbacks=[callback])
    trainer.fit((images, labels), epochs=1, batch_size=32)

    assert trainer.model.get_layer("hidden").units == 5
    np.testing.assert_allclose(
        trainer.model(callback.seen["images"]).numpy(),
        callback.seen["outputs"],
        atol=1e-6,
    )
    new_slots = surgery.optimizer_slots(
        trainer.optimizer, trainer.model.trainable_variables
    )
    old = callback.seen["slots"]
    assert set(new_slots["mlp/hidden/kernel"]) == {"momentum", "velocity"}
    for name in ("momentum", "velocity"):
        np.testing.assert_array_equal(
            new_slots["mlp/hidden/kernel"][name].numpy(),
            old["mlp/hidden/kernel"][name][:, 1:],
        )
        np.testing.assert_array_equal(
            new_slots["mlp/out/kernel"][name].numpy(), old["mlp/out/kernel"][name][1:]
        )
        np.testing.assert_array_equal(
            new_slots["mlp/out/bias"][name].numpy(), old["mlp/out/bias"][name]
        )
    assert int(trainer.optimizer.iterations) == callback.seen["iterations"]


def test_training_continues_after_rebuild_mid_run():
    images, labels = _data()
    trainer = _trainer(callbacks=[DropDeadUnitAtEpoch(epoch=1)])
    history = trainer.fit((images, labels), epochs=4, batch_size=32)
    assert trainer.model.get_layer("hidden").units == 5
    assert history[-1]["loss"] < history[0]["loss"]


def test_rebuild_without_slot_map_for_changed_shape_raises():
    trainer = _trainer()
    rebuild = _drop_hidden_unit(trainer.model, 0)
    broken = ModelRebuild(rebuild.model, {})
    with pytest.raises(ConfigError, match="mlp/hidden/kernel.*slot_maps"):
        trainer.replace_model(broken)


def test_checkpoint_resume_after_shape_change(tmp_path):
    images, labels = _data()
    trainer = _trainer(
        callbacks=[DropDeadUnitAtEpoch(epoch=0)], checkpoint_dir=tmp_path
    )
    trainer.fit((images, labels), epochs=2, batch_size=32, seed=3)

    resumed = _trainer(model=_mlp(seed=9), checkpoint_dir=tmp_path)
    assert resumed.restore()
    assert resumed.epochs_done == 2
    assert resumed.model.get_layer("hidden").units == 5
    for a, b in zip(trainer.model.variables, resumed.model.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(
        trainer.optimizer.variables, resumed.optimizer.variables, strict=True
    ):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert resumed.history == trainer.history
    resumed.fit((images, labels), epochs=3, batch_size=32, seed=3)
    assert resumed.epochs_done == 3


def test_interrupted_fit_resumes_to_identical_weights(tmp_path):
    images, labels = _data()
    straight = _trainer(model=_mlp(seed=4))
    straight.fit((images, labels), epochs=3, batch_size=32, seed=5)

    first = _trainer(model=_mlp(seed=4), checkpoint_dir=tmp_path)
    first.fit((images, labels), epochs=1, batch_size=32, seed=5)
    second = _trainer(model=_mlp(seed=123), checkpoint_dir=tmp_path)
    assert second.restore()
    second.fit((images, labels), epochs=3, batch_size=32, seed=5)
    for a, b in zip(straight.model.variables, second.model.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


class NanTerm:
    name = "broken_term"

    def __call__(self, model):
        return tf.constant(float("nan"))


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    images, labels = _data()
    trainer = _trainer(checkpoint_dir=tmp_path)
    trainer.fit((images, labels), epochs=1, batch_size=32)
    good = trainer.checkpoints.latest()
    broken = _trainer(loss_terms=[NanTerm()], checkpoint_dir=tmp_path)
    assert broken.restore()
    with pytest.raises(
        TrainingDivergedError, match="broken_term became nan at epoch 2.*epoch-000001"
    ):
        broken.fit((images, labels), epochs=2, batch_size=32)
    assert broken.checkpoints.latest() == good


def test_batch_size_errors_name_the_argument():
    images, labels = _data(n=16)
    trainer = _trainer()
    with pytest.raises(ConfigError, match="batch_size=32 is larger than the 16"):
        trainer.fit((images, labels), epochs=1, batch_size=32)


@pytest.mark.slow
def test_mirrored_two_cpus_matches_single_device():
    images, labels = _data()
    single = _trainer(model=_mlp(seed=2))
    single.fit((images, labels), epochs=2, batch_size=32)

    strategy = make_strategy("mirrored")
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        model = _mlp(seed=2)
    mirrored = _trainer(model=model, strategy=strategy)
    history = mirrored.fit(
        (images, labels), epochs=2, batch_size=32, validation_data=(images, labels)
    )
    for a, b in zip(
        single.model.trainable_variables,
        mirrored.model.trainable_variables,
        strict=True,
    ):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-4)
    assert history[-1]["val_accuracy"] == pytest.approx(
        single.evaluate((images, labels))["accuracy"]
    )
    with pytest.raises(ConfigError, match="multiple of the 2 replicas"):
        mirrored.fit((images, labels), epochs=3, batch_size=33)


def test_gradient_noise_has_annealed_variance_and_is_reproducible():
    from keras_rank.dlra.gradient_noise import GradientNoise

    noise = GradientNoise(eta=0.3, seed=1)
    grads = [tf.zeros((200, 300))]
    first = noise(grads, [None], tf.constant(8))[0].numpy()
    again = noise(grads, [None], tf.constant(8))[0].numpy()
    later = noise(grads, [None], tf.constant(9))[0].numpy()
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, later)
    assert first.std() == pytest.approx(np.sqrt(0.3 / 9**0.55), rel=0.02)
    with pytest.raises(ConfigError, match="eta=0"):
        GradientNoise(eta=0)


def test_gradient_transform_runs_inside_the_step():
    images, labels = _data(n=32)
    model = _mlp()
    before = [v.numpy() for v in model.trainable_variables]

    def zero_grads(grads, variables, step):
        return [tf.zeros_like(g) for g in grads]

    trainer = Trainer(
        model, keras.optimizers.SGD(0.1), gradient_transforms=[zero_grads], verbose=0
    )
    trainer.fit((images, labels), epochs=1, batch_size=32)
    for a, b in zip(before, model.trainable_variables, strict=True):
        np.testing.assert_array_equal(a, b.numpy())


class RecordingSource(data_lib.ArraySource):
    """An ArraySource that records the arguments of every `batches` call."""

    def __init__(self, images, labels):
        super().__init__(images, labels)
        self.calls = []

    def batches(self, batch_size, *, shuffle_seed=None, drop_remainder=False):
        self.calls.append((batch_size, shuffle_seed, drop_remainder))
        return super().batches(
            batch_size, shuffle_seed=shuffle_seed, drop_remainder=drop_remainder
        )


def test_epoch_k_reads_the_batches_of_its_seed():
    source = RecordingSource(*_data(n=70))
    validation = RecordingSource(*_data(n=10, seed=1))
    trainer = _trainer()
    trainer.fit(source, epochs=3, batch_size=32, seed=7, validation_data=validation)
    assert source.calls == [(32, epoch_seed(7, k), True) for k in range(3)]
    assert validation.calls == [(32, None, False)] * 3
    assert trainer.global_step == 3 * 2  # 70 // 32 full batches per epoch.


def test_fit_streams_a_dataset_of_unknown_size(capsys):
    images, labels = _data(n=100)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).filter(
        lambda x, y: y >= 0
    )
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    trainer = _trainer(model=_mlp(seed=1))
    trainer.verbose = 1
    history = trainer.fit(dataset, epochs=3, batch_size=32, validation_data=dataset)
    assert trainer.global_step == 3 * 3  # Counted while reading: 100 // 32.
    assert history[-1]["loss"] < history[0]["loss"]
    assert history[-1]["val_accuracy"] == trainer.evaluate((images, labels))["accuracy"]
    assert "3/Unknown" in capsys.readouterr().out  # A bar without a target.


def test_fit_without_a_full_batch_of_unknown_size_raises():
    images, labels = _data(n=20)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).filter(
        lambda x, y: y >= 0
    )
    with pytest.raises(ConfigError, match="batch_size=32 is larger than the training"):
        _trainer().fit(dataset, epochs=1, batch_size=32)


def test_evaluate_counts_every_example_of_any_kind():
    images, labels = _data(n=50)
    trainer = _trainer()
    from_arrays = trainer.evaluate((images, labels), batch_size=16)
    from_dataset = trainer.evaluate(
        tf.data.Dataset.from_tensor_slices((images, labels)), batch_size=16
    )
    assert from_dataset == from_arrays
    logits = trainer.model(images).numpy()
    assert from_arrays["accuracy"] == pytest.approx(
        np.mean(logits.argmax(-1) == labels)
    )


def test_fit_rejects_what_is_not_data():
    images, labels = _data(n=16)
    with pytest.raises(ConfigError, match="Received: data of type ndarray"):
        _trainer().fit(images, epochs=1, batch_size=8)


class StopAfterEpoch(Callback):
    """Asks the trainer to stop after epoch `epoch` (0-based)."""

    def __init__(self, epoch):
        self.epoch = epoch
        self.stopped = False

    def on_train_begin(self, trainer):
        if self.stopped:  # a resumed run: stop again, as documented
            trainer.stop_training = True

    def on_epoch_end(self, trainer, epoch, logs):
        if epoch == self.epoch:
            self.stopped = True
            trainer.stop_training = True

    def get_state(self):
        return {"stopped": int(self.stopped)}

    def set_state(self, state):
        self.stopped = bool(int(state.get("stopped", 0)))


def test_stop_training_ends_fit_after_the_epoch_and_its_checkpoint(tmp_path):
    images, labels = _data()
    trainer = _trainer(callbacks=[StopAfterEpoch(1)], checkpoint_dir=tmp_path)
    history = trainer.fit((images, labels), epochs=5, batch_size=32)
    assert [h["epoch"] for h in history] == [1, 2]
    assert trainer.checkpoints.latest().name.endswith("000002")
    resumed = _trainer(callbacks=[StopAfterEpoch(1)], checkpoint_dir=tmp_path)
    assert resumed.restore()
    resumed.fit((images, labels), epochs=5, batch_size=32)
    assert resumed.epochs_done == 2
    # A trainer whose callbacks never ask to stop trains every epoch.
    plain = _trainer()
    plain.stop_training = True  # left over from elsewhere: fit clears it
    assert len(plain.fit((images, labels), epochs=2, batch_size=32)) == 2
