"""The scales a relative search multiplies: which one, measured how."""

import keras
import pytest

from keras_rank import models
from keras_rank.lc import LCConfig
from keras_rank.lc.calibration import lambda_meeting_cost, safe_lambda
from keras_rank.prox import ProxConfig
from keras_rank.training.config import TrainConfig
from tuning import calibration


@pytest.fixture(name="net")
def _net():
    keras.utils.set_random_seed(0)
    return models.build_model("lenet300", (28, 28, 1), 10)


def test_with_a_budget_lc_s_scale_meets_it_at_mu0_whatever_the_lc_steps(net):
    config = LCConfig(mu0=1e-3, lc_steps=4)
    measured = calibration.measure(
        "lc_lambda_scale", net, TrainConfig(), config, 10, 0.25
    )
    assert measured == pytest.approx(
        lambda_meeting_cost(net, "flops", 1, 1e-3, 0.25, config.min_rank)
    )
    longer = LCConfig(mu0=1e-3, lc_steps=20)
    assert calibration.measure(
        "lc_lambda_scale", net, TrainConfig(), longer, 10, 0.25
    ) == pytest.approx(measured)
    assert (
        calibration.measure("lc_lambda_scale", net, TrainConfig(), config, 10, 0.1)
        > measured
    )


def test_without_a_budget_lc_s_scale_is_the_safe_lambda(net):
    config = LCConfig(mu0=1e-3)
    measured = calibration.measure("lc_lambda_scale", net, TrainConfig(), config, 10)
    assert measured == pytest.approx(safe_lambda(net, "flops", 1, 1e-3)["min"])


def test_prox_s_scale_ignores_the_budget(net):
    args = ("prox_tau_scale", net, TrainConfig(), ProxConfig(), 10)
    assert calibration.measure(*args, 0.25) == calibration.measure(*args)
