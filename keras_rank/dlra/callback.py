"""Dynamic low-rank approximation (Lee et al. 2021) on the training engine.

`DLRA` gathers the whole method as engine extensions:

* loss terms (computed inside the compiled step): RaRe, eq. 16, with the
  corrected sin^2 of docs/methods/dlra.md, and the factor L2 of eq. 17;
* a gradient transform: annealed gradient noise (optional);
* a callback that, between steps, tests the most parallel column and row
  pair of every factorized layer (Alg. 1 lines 7-8) and fuses them by
  assigning new values to the layer's P, W', Q arrays (shapes unchanged: the
  function is exactly the masked one), and once an epoch rebuilds the model
  at the compact shapes (`ModelRebuild`).

It composes a `PairSearch` (which pairs to test, the cached most parallel
pairs, RaRe on them) and a `ModelEditor` (fusions, rebuilds, compression
bookkeeping). `DLRAFitCallback` runs the same parts from the user's own
`Model.fit`, fusions kept as masks until `compact_model()`.
"""

import dataclasses
import json
from typing import Any

import keras
import tensorflow as tf

from keras_rank.core.errors import ConfigError
from keras_rank.core.graph import ModelGraph
from keras_rank.dlra.config import DLRAConfig
from keras_rank.dlra.gradient_noise import GradientNoise
from keras_rank.dlra.model_editor import ModelEditor
from keras_rank.dlra.pair_search import PairSearch
from keras_rank.layers.deployable import deployable_model
from keras_rank.layers.factorize import factorize_model, factorized_layers
from keras_rank.training.hooks import Callback, ModelRebuild
from keras_rank.training.keras_fit import FitCallback


class DLRA(Callback):
    """RaRe loss, fusion and structural rebuilds for a factorized model.

    Pass `loss_terms`, `gradient_transforms` and the object itself (as a
    callback) to the trainer, and `report` to `train_and_evaluate`.

    Args:
        config: The method's hyperparameters.
        seed: Seed of the gradient noise.

    Attributes:
        search: The most parallel pairs and RaRe on them.
        editor: Fusions, rebuilds and the sizes of the model as first seen.
    """

    def __init__(self, config: DLRAConfig, seed: int = 0):
        self.config = config
        self.seed = seed
        self.search = PairSearch(config.lambda1, config.tau_cos, config.tau_euc)
        self.editor = ModelEditor(config.feature_reduction)
        self._model = None

    # ----------------------------------------------------------- extensions
    @property
    def loss_terms(self) -> list:
        """The loss terms to give the trainer."""
        terms = []
        if self.config.lambda1 > 0:
            terms.append(_RaReTerm(self.search))
        if self.config.lambda2 > 0:
            terms.append(_FactorL2Term(self.config.lambda2, self.config.l2_target))
        return terms

    @property
    def gradient_transforms(self) -> list:
        """The gradient transforms to give the trainer."""
        if self.config.gradient_noise > 0:
            return [GradientNoise(self.config.gradient_noise, seed=self.seed)]
        return []

    def _bind(self, model: keras.Model) -> None:
        if model is self._model:
            return
        self._model = model
        layers = factorized_layers(model)
        graph = ModelGraph(model)
        self.search.bind(layers, graph)
        self.editor.bind(model, layers, graph)

    # ------------------------------------------------------------ callbacks
    def on_train_begin(self, trainer) -> None:
        """Binds to the (possibly restored) model."""
        self._bind(trainer.model)

    def on_epoch_begin(self, trainer, epoch: int) -> None:
        """Rebinds after a rebuild and searches every layer afresh.

        A full search at each epoch start makes an epoch's behaviour depend
        on the epoch's starting state only, so a resumed run repeats an
        uninterrupted one exactly.
        """
        self._bind(trainer.model)
        self.search.refresh_all()

    def on_step_end(self, trainer, step: int, logs) -> None:
        """Searches every `search_every` steps; fuses pairs under both thresholds."""
        if step % self.config.search_every == 0:
            self.search.refresh_all()
        if not self.config.fusion:
            return None
        fusable = self.search.pairs_to_fuse()
        for (index, axis), (i, j) in fusable.items():
            self.editor.fuse(index, axis, i, j)
        if fusable:
            # Only the fused axis lost its pair. The other cached pairs stay
            # live (the step reads their current vectors); the scheduled
            # searches pick up any change of the most parallel pair.
            self.search.refresh(fusable)
        return None

    def on_epoch_end(self, trainer, epoch: int, logs) -> ModelRebuild | None:
        """Logs compression and dimensions; rebuilds if anything was fused."""
        self._bind(trainer.model)
        return self.editor.end_epoch(trainer.model, trainer.strategy, logs)

    # ------------------------------------------------------ state / report
    def get_state(self) -> dict[str, Any]:
        """Returns what a resumed run needs: the initial sizes and rates."""
        return {"initial": json.dumps(self.editor.initial)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores `get_state`."""
        if "initial" in state:
            self.editor.initial = json.loads(str(state["initial"]))

    def report(self, trainer) -> dict[str, Any]:
        """Results entries: sizes before/after, compression, Table 2 dims."""
        self._bind(trainer.model)
        return {
            "dlra": {
                "config": dataclasses.asdict(self.config),
                **self.editor.report(trainer.model, trainer.history),
            }
        }


class _RaReTerm:
    """lambda1 * eq. 16 on the cached most parallel pairs (docs/methods/dlra.md)."""

    name = "rare"

    def __init__(self, search: PairSearch):
        self.search = search

    def __call__(self, model: keras.Model) -> tf.Tensor:
        return self.search.rare_loss()


class _FactorL2Term:
    """lambda2 * eq. 17: mean over the factorized layers of ||W'||^2."""

    name = "factor_l2"

    def __init__(self, lambda2: float, l2_target: str):
        self.lambda2 = lambda2
        self.l2_target = l2_target

    def __call__(self, model: keras.Model) -> tf.Tensor:
        squares = []
        for layer in factorized_layers(model):
            if self.l2_target == "effective" and layer.frobenius_norm:
                # ||g k W / ||W|| ||^2 = (g k)^2: no pass over the kernel.
                squares.append(tf.square(layer.gain * layer.norm0))
                continue
            kernel = layer.kernel * layer.col_mask[:, None] * layer.row_mask[None, :]
            squares.append(tf.reduce_sum(tf.square(kernel)))
        return self.lambda2 * tf.add_n(squares) / len(squares)


class _MaskedDLRA(DLRA):
    """`DLRA` whose fused vectors stay masked: `fit` trains one model."""

    def on_epoch_end(self, trainer, epoch: int, logs) -> None:
        """Logs compression and dimensions; never rebuilds."""
        self._bind(trainer.model)
        self.editor.log_epoch(trainer.model, logs)


class DLRAFitCallback(FitCallback):
    """RaRe + DLRA in the user's own `Model.fit`, on a factorized model.

    `prepare_model` factorizes the model (as `train_dlra` does); compile it
    and fit with this callback. RaRe and the factor L2 join the compiled
    loss (logged as ``rare`` and ``factor_l2``); between steps the most
    parallel pairs are searched and fused by assigning the layers' P, W', Q
    arrays, so shapes never change during `fit` (the epoch's logs carry
    ``compression`` and each layer's live dimensions, as with the trainer).
    After `fit`, `compact_model()` is the trained function written with
    plain Dense/Conv2D layers of the compact sizes, to export.

    Compared with `train_dlra`: no rebuild at compact shapes each epoch (a
    step costs the full shapes, and Dropout rates keep their values instead
    of eq. 14's), no gradient noise (it changes gradients inside the
    trainer's step; refused), no checkpoint of the callback's state, and
    `fit`'s own data order, so the fused pairs are not those of the trainer.

    Args:
        config: The DLRA settings.

    Raises:
        ConfigError: `config.gradient_noise` is set, or nothing in `config`
            needs factorized layers.
    """

    def __init__(self, config: DLRAConfig):
        if config.gradient_noise > 0:
            raise ConfigError(
                "Expected gradient_noise=0 in Model.fit: the noise is added "
                "inside train_dlra's step. Received: "
                f"gradient_noise={config.gradient_noise}"
            )
        if not config.factorizes:
            raise ConfigError(
                "Expected a DLRA config that factorizes (fn, fusion, lambda1 or "
                "lambda2 on): with all off, plain model.fit is the same run."
            )
        dlra = _MaskedDLRA(config)
        super().__init__(dlra, "DLRA", loss_terms=dlra.loss_terms)
        self.config = config

    def prepare_model(self, model: keras.Model) -> keras.Model:
        """Returns the factorized copy of `model` to compile and fit."""
        return factorize_model(model, frobenius_norm=self.config.frobenius_norm)

    def on_train_begin(self, logs=None):
        """Refuses a model without factorized layers; binds the method."""
        layers = factorized_layers(self.model)
        if not layers:
            raise ConfigError(
                "DLRA in Model.fit needs a factorized model: fit "
                "callback.prepare_model(model), compiled, not the model itself."
            )
        if any(layer.frobenius_norm != self.config.frobenius_norm for layer in layers):
            raise ConfigError(
                "Expected the model's factorized layers to have "
                f"frobenius_norm={self.config.frobenius_norm}, as the config "
                "says: build it with callback.prepare_model(model)."
            )
        super().on_train_begin(logs)

    def compact_model(self) -> keras.Model:
        """The fitted model in plain Dense/Conv2D layers of the compact sizes."""
        return deployable_model(self.model)
