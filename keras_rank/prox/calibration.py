"""The scale of prox's tau for a given net: what its steps take off the spectra.

Each proximal step soft-thresholds a layer's singular values by rho * tau,
rho being the learning rate at that step (`keras_rank.prox.callback`). Over
a run the thresholds add up to ``tau * sum_k rho_k``: a useful tau depends
on the weights' scale (multiplying them by c multiplies it by c), on the
learning rate and on how many proximal steps the run takes. prox works at
tau 2-3 on the zoo's nets and collapses them at 5-10; another net, learning
rate or length moves that range.

`tau_reaching` is the tau at which a run's thresholds add up to a layer's
third singular value on the reference net (`KEEP_RANK`): thresholds alone,
were the gradients between the steps to restore nothing, would then leave
the layer below rank 3. `tau_scale` is the smallest over a net's layers, the
most exposed layer's. A search of ``tau = f * tau_scale(...)`` with f <= 1
is then the same space on any net and any schedule, and its top cannot
collapse a layer by the thresholds alone; the gradients restore part of
what the steps take, the more the more steps lie between them, so the
compression reached at a given f still depends on the optimizer and the
steps per epoch (docs/design/tuning.md).
"""

import keras
import numpy as np

from keras_rank.core.compressible import compressible_layers
from keras_rank.core.layer_matrices import kernel_as_matrix
from keras_rank.core.linalg import robust_svd
from keras_rank.prox.config import ProxConfig
from keras_rank.training import optimizers
from keras_rank.training.config import TrainConfig


def step_sizes(
    config: TrainConfig, prox_config: ProxConfig, steps_per_epoch: int
) -> np.ndarray:
    """Returns rho of every proximal step of a run, in order.

    Args:
        config: The run's training settings (learning rate, schedule,
            epochs).
        prox_config: When the steps are taken (`prox_every`).
        steps_per_epoch: Optimizer updates per epoch.
    """
    optimizer = optimizers.make_optimizer(
        **config.optimizer_settings(),
        steps_per_epoch=steps_per_epoch,
        epochs=config.epochs,
    )
    every = prox_config.prox_every or steps_per_epoch
    iterations = np.arange(every, config.epochs * steps_per_epoch + 1, every)
    rate = optimizer._learning_rate
    if not callable(rate):
        return np.full(len(iterations), float(keras.ops.convert_to_numpy(rate)))
    return np.array(
        [float(keras.ops.convert_to_numpy(rate(int(i)))) for i in iterations]
    )


KEEP_RANK = 3


def tau_reaching(singular_values: np.ndarray, total_step: float) -> float:
    """Returns the tau whose run of thresholds (``tau * total_step``) is s_3.

    s_3 is the layer's `KEEP_RANK`-th largest singular value (its smallest,
    for a layer of lower rank).

    Args:
        singular_values: The layer matrix's singular values.
        total_step: The sum of rho over the run's proximal steps, > 0.
    """
    values = np.sort(np.asarray(singular_values, np.float64))[::-1]
    return float(values[min(KEEP_RANK, len(values)) - 1] / total_step)


def tau_scale(model: keras.Model, total_step: float) -> dict[str, float]:
    """Returns each compressed layer's `tau_reaching` and their minimum.

    Args:
        model: The trained reference net.
        total_step: The sum of rho over the run's proximal steps
            (`step_sizes`).

    Returns:
        ``{layer name: tau, ..., "min": the smallest}``.
    """
    edges = {}
    for layer in compressible_layers(model):
        matrix = kernel_as_matrix(layer.kernel)
        values = keras.ops.convert_to_numpy(robust_svd(matrix, layer.name)[0])
        edges[layer.name] = tau_reaching(values, total_step)
    return {**edges, "min": min(edges.values())}
