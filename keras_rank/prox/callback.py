"""`Prox`: proximal steps of eq. (5) on the training engine (a callback).

Training takes ordinary steps on the task loss; every `prox_every` steps (0:
at the end of every epoch, as in the paper) each compressed layer's matrix M
(units as columns, `kernel_as_matrix`) is replaced by
``S_{rho tau}(G(M))``: the sparse group Lasso prox G, then singular-value
soft-thresholding S (`operators.low_rank_group_sparse_prox`), rho being the
optimizer's learning rate at that step. The epoch's logs get per layer the
nuclear norm, the effective rank and the zero units after the last step
(keys ``prox/<layer>/...``: history and TensorBoard), the total effective
rank and the time the proximal steps took.

With `reload_epoch`, the net is decomposed after that epoch
(`decompose.decompose` at `reload_energy`, zero units removed first) and the
compact net, of low-rank layers, trains on without proximal steps.

The epoch-end step comes after the epoch's validation: an epoch's validation
metrics are those of the weights before its proximal step; the checkpoint,
the next epoch and the final test see the weights after it.
"""

import time
from typing import Any

import keras
import numpy as np

from keras_rank.core.compressible import compressible_layers
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import kernel_as_matrix, kernel_from_matrix
from keras_rank.layers.latency import LatencyTable
from keras_rank.prox import decompose, operators
from keras_rank.prox.config import ProxConfig
from keras_rank.training.hooks import Callback, ModelRebuild
from keras_rank.training.keras_fit import FitCallback


def _zeros_like_slot(shape: tuple[int, ...]):
    """A slot map that starts a reshaped variable's slots at zero."""
    return lambda old: np.zeros(shape, dtype=old.dtype)


def current_learning_rate(optimizer: keras.optimizers.Optimizer) -> float:
    """Returns rho: the optimizer's learning rate at its current iteration."""
    return float(keras.ops.convert_to_numpy(optimizer.learning_rate))


class Prox(Callback):
    """Proximal steps of the nuclear norm and the sparse group Lasso.

    Args:
        config: The hyperparameters.
        verbose: Print one line per epoch with the effective ranks.
        latency: The measured latencies, needed by the reload under the
            latency criterion.

    Attributes:
        initial_spectra: Per compressed layer, the singular values of its
            matrix when training began (the first run, not a resumption).
        reloaded: Whether the reload's decomposition has happened.
    """

    def __init__(
        self,
        config: ProxConfig,
        verbose: int = 1,
        latency: LatencyTable | None = None,
    ):
        self.config = config
        self.verbose = verbose
        self.latency = latency
        self.initial_spectra: dict[str, np.ndarray] = {}
        self.reloaded = False
        self._prox_seconds = 0.0
        self._last: dict[str, operators.CompressionProx] = {}

    def on_train_begin(self, trainer) -> None:
        """Records the initial spectra (unless restored from a checkpoint)."""
        if self.initial_spectra or self.reloaded:
            return
        for layer in compressible_layers(trainer.model):
            matrix = kernel_as_matrix(layer.kernel)
            spectrum = operators.soft_threshold_singular_values(matrix, 0.0, layer.name)
            self.initial_spectra[layer.name] = keras.ops.convert_to_numpy(
                spectrum.singular_values
            )

    def apply(self, model: keras.Model, step_size: float) -> None:
        """Runs one proximal step on every compressed layer of `model`.

        Args:
            model: The model being trained (its kernels are assigned).
            step_size: rho, the current learning rate.
        """
        start = time.perf_counter()
        for index, layer in enumerate(compressible_layers(model)):
            result = operators.low_rank_group_sparse_prox(
                kernel_as_matrix(layer.kernel),
                step_size,
                self.config.layer_value(self.config.tau, index),
                self.config.layer_value(self.config.group_lambda, index),
                self.config.alpha,
                name=layer.name,
            )
            layer.kernel.assign(
                kernel_from_matrix(result.matrix, tuple(layer.kernel.shape))
            )
            self._last[layer.name] = result
        self._prox_seconds += time.perf_counter() - start

    def on_step_end(self, trainer, step: int, logs: dict[str, float]) -> None:
        """Every `prox_every` steps (if set): one proximal step."""
        every = self.config.prox_every
        if every and not self.reloaded and step % every == 0:
            self.apply(trainer.model, current_learning_rate(trainer.optimizer))

    def _log_layers(self, logs: dict[str, float]) -> None:
        total_rank = 0
        for name, result in self._last.items():
            rank = int(
                operators.effective_rank(
                    result.singular_values, self.config.rank_tolerance
                )
            )
            total_rank += rank
            logs[f"prox/{name}/nuclear_norm"] = float(
                operators.nuclear_norm(result.singular_values)
            )
            logs[f"prox/{name}/rank"] = float(rank)
            logs[f"prox/{name}/zero_units"] = float(
                np.sum(keras.ops.convert_to_numpy(operators.zero_units(result.matrix)))
            )
        logs["prox_rank"] = float(total_rank)

    def on_epoch_end(
        self, trainer, epoch: int, logs: dict[str, float]
    ) -> ModelRebuild | None:
        """The epoch's proximal step (if once an epoch), logs, the reload."""
        if self.reloaded:
            return None
        if not self.config.prox_every:
            self.apply(trainer.model, current_learning_rate(trainer.optimizer))
        self._log_layers(logs)
        logs["prox_time_s"] = self._prox_seconds
        self._prox_seconds = 0.0
        if self.verbose:
            ranks = ", ".join(
                f"{name} {int(logs[f'prox/{name}/rank'])}" for name in self._last
            )
            print(f"prox: effective ranks {ranks}")
        if self.config.reload_epoch == epoch + 1:
            return self._reload(trainer.model)
        return None

    def _reload(self, model: keras.Model) -> ModelRebuild:
        """Decomposes `model`; the compact net trains on from fresh slots.

        A variable that lost units starts with zero optimizer slots, like the
        new low-rank factors: the momentum of a unit that was removed, or
        folded into a bias, has no meaning in the compact net.
        """
        compact, report = decompose.decompose(
            model,
            self.config.reload_energy,
            criterion=self.config.criterion,
            latency=self.latency,
            rank_multiple=self.config.rank_multiple,
        )
        self.reloaded = True
        if self.verbose:
            low = [entry.name for entry in report if entry.low_rank]
            print(
                f"prox: reload at {self.config.reload_energy:g} % energy; "
                f"low-rank layers: {', '.join(low) or 'none'}"
            )
        old_shapes = {
            variable.path: tuple(variable.shape) for variable in model.weights
        }
        slot_maps = {
            variable.path: _zeros_like_slot(tuple(variable.shape))
            for variable in compact.trainable_weights
            if old_shapes.get(variable.path, tuple(variable.shape))
            != tuple(variable.shape)
        }
        return ModelRebuild(compact, slot_maps)

    def get_state(self) -> dict[str, Any]:
        """The initial spectra and whether the reload happened."""
        state = {"reloaded": int(self.reloaded)}
        for index, (name, spectrum) in enumerate(self.initial_spectra.items()):
            state[f"spectrum_{index}"] = spectrum
            state[f"spectrum_name_{index}"] = name
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores `get_state`."""
        self.reloaded = bool(int(state.get("reloaded", 0)))
        self.initial_spectra = {
            str(state[f"spectrum_name_{index}"]): np.asarray(state[key])
            for index in range(len(state))
            if (key := f"spectrum_{index}") in state
        }


class ProxFitCallback(FitCallback):
    """Prox's proximal steps as a callback of the user's own `Model.fit`.

    The model must be compiled; the proximal step size rho is its
    optimizer's learning rate, as with the trainer. After `fit`,
    `keras_rank.prox.decompose.decompose(model, energy)` splits each layer
    at an energy into low-rank layers. The epoch's log entries (per-layer
    nuclear norms and ranks, ``prox_rank``) join Keras's logs.

    Compared with `train_prox`: no reload (`reload_epoch` rebuilds the
    model at smaller shapes, which `fit` cannot follow; refused), no
    checkpoint of the callback's state, and `fit`'s own data order, so the
    weights are not bit-equal to the trainer's.

    Args:
        config: The prox settings (`tau`, `prox_every`, ...).
        verbose: Print one line per epoch with the effective ranks.

    Raises:
        ConfigError: `config.reload_epoch` is set.
    """

    def __init__(self, config: ProxConfig, verbose: int = 0):
        if config.reload_epoch is not None:
            raise ConfigError(
                "Expected reload_epoch=None in Model.fit: the reload rebuilds the "
                "model at smaller shapes, which only train_prox can follow. "
                f"Received: reload_epoch={config.reload_epoch}"
            )
        super().__init__(Prox(config, verbose=verbose), name="Prox")
