"""The scales a relative search space is measured in, taken on the user's net.

A setting declared with ``Search(low, high, relative_to=NAME)`` is searched
as a multiple of the scale NAME, measured on the trained reference net of
the search, the trial's training settings and the search's cost target. A
scale is a function of ``(reference, train_config, method_config,
steps_per_epoch, target)``, `target` being the budget as a fraction of the
reference's cost (None for an accuracy floor); each is defined, with the
reasoning behind it, by its method:

* ``lc_lambda_scale``: with a budget,
  `keras_rank.lc.calibration.lambda_meeting_cost` (the lambda at which LC's
  first C step, at mu0 on the reference's weights, meets the budget); with an
  accuracy floor, `keras_rank.lc.calibration.safe_lambda` (the lambda at
  which LC's first C step still keeps every layer at rank 3);
* ``prox_tau_scale``: `keras_rank.prox.calibration.tau_scale` (the tau at
  which the run's proximal thresholds add up to the most exposed layer's
  third singular value).
"""

from collections.abc import Callable
from typing import Any

import keras

from keras_rank.layers.latency import LatencyTable
from keras_rank.lc.calibration import lambda_meeting_cost, safe_lambda
from keras_rank.prox.calibration import step_sizes, tau_scale
from keras_rank.training.config import TrainConfig


def _lc_lambda_scale(
    reference: keras.Model,
    config: TrainConfig,
    lc_config: Any,
    steps_per_epoch: int,
    target: float | None,
    latency: LatencyTable | None,
) -> float:
    del config, steps_per_epoch  # LC's C steps see only the weights.
    if target is None:
        return safe_lambda(
            reference,
            lc_config.criterion,
            lc_config.conv_scheme,
            lc_config.mu0,
            latency=latency,
        )["min"]
    return lambda_meeting_cost(
        reference,
        lc_config.criterion,
        lc_config.conv_scheme,
        lc_config.mu0,
        target,
        lc_config.min_rank,
        latency=latency,
        rank_multiple=lc_config.rank_multiple,
    )


def _prox_tau_scale(
    reference: keras.Model,
    config: TrainConfig,
    prox_config: Any,
    steps_per_epoch: int,
    target: float | None,
    latency: LatencyTable | None,
) -> float:
    del target, latency  # The thresholds' scale does not depend on costs.
    total = float(step_sizes(config, prox_config, steps_per_epoch).sum())
    return tau_scale(reference, total)["min"]


SCALES: dict[str, Callable[..., float]] = {
    "lc_lambda_scale": _lc_lambda_scale,
    "prox_tau_scale": _prox_tau_scale,
}


def measure(
    name: str,
    reference: keras.Model,
    config: TrainConfig,
    method_config: Any,
    steps_per_epoch: int,
    target: float | None = None,
    latency: LatencyTable | None = None,
) -> float:
    """Returns the scale `name` of `reference` for one trial's settings.

    Args:
        name: One of `SCALES`.
        reference: The trained reference net.
        config: The trial's training settings.
        method_config: The trial's method settings (the searched ones at
            their defaults).
        steps_per_epoch: Optimizer updates per epoch.
        target: The budget as a fraction of the reference's cost; None for
            an accuracy floor.
        latency: The search's measured latencies (a latency budget).

    Raises:
        KeyError: `name` is not one of `SCALES`.
    """
    return float(
        SCALES[name](reference, config, method_config, steps_per_epoch, target, latency)
    )
