"""prox's tau scale: the run's summed thresholds against the reference's spectra."""

import keras
import numpy as np
import pytest

from keras_rank.prox.calibration import step_sizes, tau_reaching, tau_scale
from keras_rank.prox.config import ProxConfig
from keras_rank.training.config import TrainConfig


def _net(seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((12,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(4, name="out")(hidden))


def test_step_sizes_follow_the_schedule_at_every_proximal_step():
    constant = step_sizes(TrainConfig(epochs=3, learning_rate=0.01), ProxConfig(), 10)
    np.testing.assert_allclose(constant, [0.01] * 3)  # once an epoch
    every = step_sizes(TrainConfig(epochs=2), ProxConfig(prox_every=5), 10)
    assert len(every) == 4
    cosine = step_sizes(
        TrainConfig(epochs=4, learning_rate=0.1, lr_schedule="cosine"), ProxConfig(), 5
    )
    # The rate at the end of each epoch, decaying to 0 at the end of the run.
    assert cosine[0] < 0.1 and np.all(np.diff(cosine) < 0)
    assert cosine[-1] == pytest.approx(0.0, abs=1e-7)


def test_tau_reaching_is_the_third_singular_value_over_the_summed_steps():
    assert tau_reaching(np.array([1.0, 5.0, 2.0, 3.0]), 0.5) == pytest.approx(4.0)
    # A layer of rank below 3: its smallest singular value.
    assert tau_reaching(np.array([5.0, 3.0]), 0.5) == pytest.approx(6.0)


def test_tau_scale_moves_with_the_weights_and_the_steps_as_a_threshold_does():
    model = _net()
    base = tau_scale(model, 0.01)
    assert base["min"] == min(base["hidden"], base["out"])
    for layer in model.layers[1:]:
        layer.kernel.assign(3.0 * layer.kernel)
    tripled = tau_scale(model, 0.01)
    assert tripled["min"] == pytest.approx(3 * base["min"], rel=1e-5)
    assert tau_scale(model, 0.02)["min"] == pytest.approx(tripled["min"] / 2, rel=1e-6)
