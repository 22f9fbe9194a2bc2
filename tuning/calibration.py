"""The scales a relative search space is measured in, taken on the user's net.

A setting declared with ``Search(low, high, relative_to=NAME)`` is searched
as a multiple of the scale NAME, measured on the trained reference net of
the search and the trial's training settings. A scale is a function of
``(reference, train_config, method_config, steps_per_epoch)``; each is
defined, with the reasoning behind it, by its method:

* ``lc_safe_lambda``: `keras_rank.lc.calibration.safe_lambda` (the lambda
  at which LC's first C step still keeps every layer at rank 3);
* ``prox_tau_scale``: `keras_rank.prox.calibration.tau_scale` (the tau at
  which the run's proximal thresholds add up to the most exposed layer's
  median singular value).
"""

from collections.abc import Callable
from typing import Any

import keras

from keras_rank.lc.calibration import safe_lambda
from keras_rank.prox.calibration import step_sizes, tau_scale
from keras_rank.training.config import TrainConfig


def _lc_safe_lambda(
    reference: keras.Model, config: TrainConfig, lc_config: Any, steps_per_epoch: int
) -> float:
    del config, steps_per_epoch  # LC's first C step sees only the weights.
    return safe_lambda(
        reference, lc_config.criterion, lc_config.conv_scheme, lc_config.mu0
    )["min"]


def _prox_tau_scale(
    reference: keras.Model, config: TrainConfig, prox_config: Any, steps_per_epoch: int
) -> float:
    total = float(step_sizes(config, prox_config, steps_per_epoch).sum())
    return tau_scale(reference, total)["min"]


SCALES: dict[str, Callable[..., float]] = {
    "lc_safe_lambda": _lc_safe_lambda,
    "prox_tau_scale": _prox_tau_scale,
}


def measure(
    name: str,
    reference: keras.Model,
    config: TrainConfig,
    method_config: Any,
    steps_per_epoch: int,
) -> float:
    """Returns the scale `name` of `reference` for one trial's settings.

    Raises:
        KeyError: `name` is not one of `SCALES`.
    """
    return float(SCALES[name](reference, config, method_config, steps_per_epoch))
