"""The Keras wiring of keras_rank.lc: the LC callback, penalty and low-rank net."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_rank.core.linalg import SVDError
from keras_rank.layers import LowRankConv2D, LowRankDense
from keras_rank.layers.rank_specs import (
    RankChoice,
    layer_specs,
    low_rank_model,
)
from keras_rank.lc import c_step as c_step_lib
from keras_rank.lc.callback import LC
from keras_rank.lc.config import LCConfig
from keras_rank.training import Trainer


def _data(n=256, dim=12, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)) * 3
    labels = rng.integers(0, classes, size=n).astype(np.int32)
    images = (centers[labels] + rng.normal(size=(n, dim))).astype(np.float32)
    return images, labels


def _mlp(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(10, activation="tanh", name="hidden"),
            keras.layers.Dense(3, name="out"),
        ],
        name="mlp",
    )


def _convnet(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((9, 8, 2))
    x = keras.layers.Conv2D(6, (3, 2), strides=(2, 1), padding="same", name="c1")(
        inputs
    )
    x = keras.layers.Conv2D(5, 3, activation="relu", name="c2")(x)
    x = keras.layers.Flatten()(x)
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(x))


def _config(**overrides):
    settings = dict(lambdas=(1e-3,), mu0=1e-2, mu_growth=2.0, lc_steps=3)
    return LCConfig(**{**settings, **overrides})


def _trainer(model, lc, checkpoint_dir=None):
    return Trainer(
        model,
        keras.optimizers.Adam(0.01),
        loss_terms=lc.loss_terms,
        callbacks=[lc],
        checkpoint_dir=checkpoint_dir,
        verbose=0,
    )


def test_first_c_step_truncates_the_reference_weights_at_mu0():
    model = _mlp()
    lc = LC(_config(lambdas=(0.05,)), lam=0.05, verbose=0)
    trainer = _trainer(model, lc)
    lc.on_train_begin(trainer)
    for spec in lc.specs:
        kernel = model.get_layer(spec.name).kernel.numpy()
        expected = c_step_lib.c_step(
            kernel, spec.alpha, spec.dense_cost, lam=0.05, mu=1e-2, min_rank=1
        )
        np.testing.assert_allclose(
            lc.theta[spec.name].numpy(), expected.theta, atol=1e-6
        )
        assert lc.steps[0]["layers"][spec.name]["rank"] == expected.rank
        np.testing.assert_array_equal(lc.beta[spec.name].numpy(), 0.0)
    assert float(lc.mu.numpy()) == pytest.approx(1e-2)


def test_penalty_term_adds_its_gradient_to_the_step():
    model = _mlp()
    lc = LC(_config(lambdas=(0.05,)), lam=0.05, verbose=0)
    trainer = Trainer(
        model,
        keras.optimizers.SGD(1.0),
        loss_terms=lc.loss_terms,
        callbacks=[lc],
        verbose=0,
    )
    lc.on_train_begin(trainer)
    beta = np.random.default_rng(1).normal(size=(12, 10)).astype(np.float32)
    lc.beta["hidden"].assign(beta)
    kernel = model.get_layer("hidden").kernel
    with tf.GradientTape() as tape:
        value = lc.loss_terms[0](model)
    grad = tape.gradient(value, kernel).numpy()
    mu = float(lc.mu.numpy())
    np.testing.assert_allclose(
        grad, mu * (kernel.numpy() - lc.theta["hidden"].numpy() - beta / mu), rtol=1e-5
    )


def test_l_steps_update_multipliers_and_grow_mu():
    images, labels = _data()
    model = _mlp()
    lc = LC(_config(epochs_per_l_step=2), lam=1e-3, verbose=0)
    trainer = _trainer(model, lc)
    seen = {}
    original = lc.on_epoch_end

    def spy(trainer, epoch, logs):
        before = {name: v.numpy().copy() for name, v in lc.beta.items()}
        mu = float(lc.mu.numpy())
        original(trainer, epoch, logs)
        seen[epoch] = (before, mu, dict(logs))

    lc.on_epoch_end = spy
    trainer.fit((images, labels), epochs=4, batch_size=32)
    # C steps run after epochs 2 and 4 only (2 epochs per L step).
    assert len(lc.steps) == 3
    assert "lc_mu" not in seen[0][2] and "lc_mu" in seen[1][2]
    assert [step["mu"] for step in lc.steps] == pytest.approx([1e-2, 1e-2, 2e-2])
    assert float(lc.mu.numpy()) == pytest.approx(4e-2)
    before, mu, _ = seen[3]
    for spec in lc.specs:
        w = model.get_layer(spec.name).kernel.numpy()
        expected = before[spec.name] - mu * (w - lc.theta[spec.name].numpy())
        np.testing.assert_allclose(lc.beta[spec.name].numpy(), expected, atol=1e-6)


def test_resumed_lc_matches_an_uninterrupted_run(tmp_path):
    images, labels = _data()
    straight_lc = LC(_config(), lam=1e-3, verbose=0)
    straight = _trainer(_mlp(seed=3), straight_lc)
    straight.fit((images, labels), epochs=3, batch_size=32, seed=1)

    first_lc = LC(_config(), lam=1e-3, verbose=0)
    _trainer(_mlp(seed=3), first_lc, tmp_path).fit(
        (images, labels), epochs=1, batch_size=32, seed=1
    )
    second_lc = LC(_config(), lam=1e-3, verbose=0)
    second = _trainer(_mlp(seed=99), second_lc, tmp_path)
    assert second.restore()
    second.fit((images, labels), epochs=3, batch_size=32, seed=1)

    def untimed(steps):
        return [{k: v for k, v in step.items() if k != "time_s"} for step in steps]

    assert untimed(second_lc.steps) == untimed(straight_lc.steps)
    for name in ("hidden", "out"):
        np.testing.assert_array_equal(
            second_lc.theta[name].numpy(), straight_lc.theta[name].numpy()
        )
        np.testing.assert_array_equal(
            second_lc.beta[name].numpy(), straight_lc.beta[name].numpy()
        )
    for a, b in zip(straight.model.weights, second.model.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_lc_stops_when_w_and_theta_agree():
    images, labels = _data()
    # lambda = 0: Theta = W after every C step (full rank), the gap is 0.
    lc = LC(_config(lambdas=(0.0,), lc_steps=5), lam=0.0, verbose=0)
    trainer = _trainer(_mlp(), lc)
    trainer.fit((images, labels), epochs=5, batch_size=32)
    assert trainer.epochs_done == 1
    assert lc.converged and lc.steps[-1]["relative_gap"] < 1e-3


def test_failed_svd_stops_and_names_the_last_good_checkpoint(tmp_path, monkeypatch):
    images, labels = _data()
    lc = LC(_config(), lam=1e-3, verbose=0)
    trainer = _trainer(_mlp(), lc, tmp_path)
    trainer.fit((images, labels), epochs=1, batch_size=32)
    monkeypatch.setattr(c_step_lib, "robust_svd", _raise_svd_error)
    with pytest.raises(
        SVDError, match="last good checkpoint is .*epoch-000001"
    ):
        trainer.fit((images, labels), epochs=2, batch_size=32)
    assert trainer.checkpoints.latest().name == "epoch-000001"


def _raise_svd_error(matrix, name=None):
    raise SVDError(f"The SVD of layer {name!r} failed.")


@pytest.mark.parametrize("scheme", [1, 2])
def test_low_rank_model_computes_the_net_with_theta_kernels(scheme):
    model = _convnet()
    specs = layer_specs(model, "flops", scheme)
    rng = np.random.default_rng(0)
    choices, theta_model = {}, keras.models.clone_model(model)
    theta_model.set_weights(model.get_weights())
    for spec, rank, dense in zip(specs, [2, 3, 4], [False, False, True], strict=True):
        matrix = spec.matrix(model.get_layer(spec.name).kernel).numpy()
        u, s, vt = np.linalg.svd(matrix, full_matrices=False)
        if not dense:
            matrix = (u[:, :rank] * s[:rank]) @ vt[:rank]
        choices[spec.name] = RankChoice(rank=rank, dense=dense, matrix=matrix)
        theta_model.get_layer(spec.name).kernel.assign(spec.kernel(matrix))
    compact = low_rank_model(model, specs, choices)
    assert isinstance(compact.get_layer("c1"), LowRankConv2D)
    assert compact.get_layer("c2").rank == 3
    assert type(compact.get_layer("out")) is keras.layers.Dense
    images = rng.random((5, 9, 8, 2), dtype=np.float32)
    np.testing.assert_allclose(compact(images), theta_model(images), atol=1e-5)


def test_layer_specs_cost_per_rank_matches_the_low_rank_layer():
    model = _mlp()
    (hidden, out) = layer_specs(model, "storage", 1)
    assert (hidden.alpha, hidden.dense_cost, hidden.max_rank) == (22, 120, 10)
    assert (out.alpha, out.dense_cost, out.max_rank) == (13, 30, 3)
    layer = LowRankDense.from_dense(model.get_layer("hidden"), 4)
    assert layer.count_params() - 10 == 4 * hidden.alpha
