"""Dynamic low-rank approximation (Lee et al. 2021) on the training engine.

`DLRA` gathers the whole method as engine extensions:

* loss terms (computed inside the compiled step): RaRe, eq. 16, with the
  corrected sin^2 of NOTES.md, and the factor L2 of eq. 17;
* a gradient transform: annealed gradient noise (optional);
* a callback that, between steps, tests the most parallel column and row
  pair of every factorized layer (Alg. 1 lines 7-8) and fuses them by
  assigning new values to the layer's P, W', Q arrays (shapes unchanged: the
  function is exactly the masked one), and once an epoch rebuilds the model
  at the compact shapes (`ModelRebuild`).

The most parallel pair of each layer and axis needs an all-pairs Gram
matrix. It is recomputed every `search_every` steps and, for the fused
axis, after every fusion; in between, RaRe (whose value and gradient come
from the minimising pair only) and the fusion test use the cached pair.
See BUILD_NOTES.md for the measurement behind the default.
"""

import copy
import dataclasses
import json
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rank import costs
from keras_rank.dlra import fusion, rare
from keras_rank.errors import ConfigError
from keras_rank.factorize import factorized_layers
from keras_rank.gradient_noise import GradientNoise
from keras_rank.graph import MODEL_INPUT, MODEL_OUTPUT, ModelGraph, is_weightless
from keras_rank.layers import FactorState
from keras_rank.training.hooks import Callback, ModelRebuild

AXES = ("col", "row")
L2_TARGETS = ("kernel", "effective")
# Positively homogeneous activations: act(c z) = c act(z) for c > 0.
FEATURE_REDUCTION_ACTIVATIONS = ("relu", "leaky_relu")
# Layers that map every channel (last axis) by itself, by the same function
# for every channel and for any channel count, with f(c x) = c f(x) for c > 0
# (elementwise scaling, max or mean over a window, zero padding). A feature
# can pass through them: they commute with selecting and scaling channels.
# Dropout includes its spatial subclasses; in training, coordinates that share
# a feature share its dropout draw too (at inference Dropout is the identity).
_PASS_THROUGH = (
    keras.layers.Dropout,
    keras.layers.MaxPooling1D,
    keras.layers.MaxPooling2D,
    keras.layers.MaxPooling3D,
    keras.layers.AveragePooling1D,
    keras.layers.AveragePooling2D,
    keras.layers.AveragePooling3D,
    keras.layers.ZeroPadding1D,
    keras.layers.ZeroPadding2D,
    keras.layers.ZeroPadding3D,
)


def _passes_features(layer) -> bool:
    """Tells whether output features of a layer can pass through `layer`.

    True for the channel-wise, positively homogeneous layers of
    `_PASS_THROUGH` with channels last (with channels first, pooling and
    padding would act on the feature axis), except a Dropout whose
    `noise_shape` fixes the channel count.
    """
    noise_shape = getattr(layer, "noise_shape", None)
    return (
        isinstance(layer, _PASS_THROUGH)
        and getattr(layer, "data_format", "channels_last") == "channels_last"
        and (noise_shape is None or noise_shape[-1] in (None, 1))
    )


@dataclasses.dataclass(frozen=True)
class DLRAConfig:
    """Hyperparameters of RaRe + DLRA.

    Attributes:
        lambda1: Weight of the RaRe loss (eq. 18), >= 0.
        lambda2: Weight of the factor L2 loss (eq. 17), >= 0. The paper's 0.1
            lowered validation accuracy here under FN for either target (see
            BUILD_NOTES.md), so the default is 0.
        tau_cos: Fuse a pair when 1 - |cos| < tau_cos, > 0.
        tau_euc: ... and its magnitude-equalised distance < tau_euc, > 0.
        frobenius_norm: Frobenius normalization (eq. 15) on every layer.
        fusion: Fuse vectors (False: RaRe and FN only, no compression).
        feature_reduction: Share activations of fused rows (section 4.3) for
            ReLU-family layers feeding a factorized layer.
        search_every: Steps between two all-pairs searches, >= 1.
        l2_target: What eq. 17 penalises: "kernel" (the raw W') or
            "effective" (W' as the layer uses it; under FN the gain).
        gradient_noise: Variance eta of the annealed gradient noise; 0 off.
    """

    lambda1: float = 20.0
    lambda2: float = 0.0
    tau_cos: float = 1e-4
    tau_euc: float = 0.1
    frobenius_norm: bool = True
    fusion: bool = True
    feature_reduction: bool = True
    search_every: int = 10
    l2_target: str = "kernel"
    gradient_noise: float = 0.0

    def __post_init__(self):
        for name in ("lambda1", "lambda2", "gradient_noise"):
            if not getattr(self, name) >= 0:
                raise ConfigError(
                    f"Expected {name} >= 0. Received: {name}={getattr(self, name)}"
                )
        for name in ("tau_cos", "tau_euc"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"Expected {name} > 0. Received: {name}={getattr(self, name)}"
                )
        if not isinstance(self.search_every, int) or self.search_every < 1:
            raise ConfigError(
                "Expected search_every >= 1. "
                f"Received: search_every={self.search_every}"
            )
        if self.l2_target not in L2_TARGETS:
            raise ConfigError(
                f"Unknown l2_target '{self.l2_target}'. "
                f"Expected one of: {', '.join(L2_TARGETS)}."
            )

    @property
    def factorizes(self) -> bool:
        """Whether the model needs factorized layers at all."""
        return (
            self.frobenius_norm or self.fusion or self.lambda1 > 0 or self.lambda2 > 0
        )


def axis_vectors(layer, axis: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns the (vectors, live mask) of a layer's columns or rows.

    Columns are the rows of the effective kernel; rows are its columns with
    the bias appended (rows of [W, b]).
    """
    kernel = layer.effective_kernel()
    if axis == "col":
        return kernel, layer.col_mask
    rows = tf.transpose(kernel)
    if layer.use_bias:
        rows = tf.concat([rows, (layer.bias * layer.row_mask)[:, None]], axis=1)
    return rows, layer.row_mask


def _live(mask) -> tf.Tensor:
    return tf.reduce_sum(tf.cast(mask, tf.float32))


class DLRA(Callback):
    """RaRe loss, fusion and structural rebuilds for a factorized model.

    Pass `loss_terms`, `gradient_transforms` and the object itself (as a
    callback) to the trainer, and `report` to `train_and_evaluate`.

    Args:
        config: The method's hyperparameters.
        seed: Seed of the gradient noise.
    """

    def __init__(self, config: DLRAConfig, seed: int = 0):
        self.config = config
        self.seed = seed
        self._model = None
        self._layers: list = []
        # Feature-space reduction: producer index -> consumer index.
        self._links: dict[int, int] = {}
        # (layer index, axis) pairs that never fuse (section 4.5).
        self._fixed: set[tuple[int, str]] = set()
        self._pairs: dict[str, dict[str, tf.Variable]] = {}
        self._fused_since_rebuild = 0
        # Recorded once, on the model as first seen; restored on resume.
        self._initial: dict[str, Any] = {}

    # ----------------------------------------------------------- extensions
    @property
    def loss_terms(self) -> list:
        """The loss terms to give the trainer."""
        terms = []
        if self.config.lambda1 > 0:
            terms.append(_RaReTerm(self))
        if self.config.lambda2 > 0:
            terms.append(_FactorL2Term(self))
        return terms

    @property
    def gradient_transforms(self) -> list:
        """The gradient transforms to give the trainer."""
        if self.config.gradient_noise > 0:
            return [GradientNoise(self.config.gradient_noise, seed=self.seed)]
        return []

    # -------------------------------------------------------------- binding
    def _bind(self, model: keras.Model) -> None:
        if model is self._model:
            return
        self._model = model
        self._layers = factorized_layers(model)
        graph = ModelGraph(model)
        self._links = self._find_links(graph)
        self._fixed = self._fixed_axes(graph)
        self._axes = [
            (index, axis)
            for index in range(len(self._layers))
            for axis in AXES
            if self._may_fuse(index, axis)
        ]
        if not self._initial:
            self._record_initial(model, graph)
        self._pairs = {
            layer.name: {
                axis: tf.Variable([0, 1], dtype=tf.int32, trainable=False)
                for axis in AXES
            }
            for layer in self._layers
        }
        self._refresh_fn = tf.function(self._refresh, autograph=False)
        self._probe_fn = tf.function(self._probe, autograph=False)
        self._probe_values = tf.Variable(
            tf.zeros((len(self._axes), 3)), trainable=False
        )
        # Per (layer, axis): 1 if the cached pair may fuse, and its eq. 16
        # weight. Set between steps (with every search), read by the step.
        self._axis_allowed = tf.Variable(tf.zeros(len(self._axes)), trainable=False)
        self._axis_weights = tf.Variable(tf.zeros(len(self._axes)), trainable=False)

    def _find_links(self, graph: ModelGraph) -> dict[int, int]:
        """Returns {a: b} for factorized layers b that read a's features.

        Layer b reads a's features when its only input is a's output passed
        through `_passes_features` layers only, that output (and every tensor
        on the way) feeding nothing else and being no model output, a and b
        each called once (`ModelGraph.exclusive_successor`); a has a
        ReLU-family activation and b is of a's type.
        """
        if not self.config.feature_reduction:
            return {}
        index_of = {id(layer): index for index, layer in enumerate(self._layers)}
        links = {}
        for index, layer in enumerate(self._layers):
            activation = keras.activations.serialize(layer.activation)
            if activation not in FEATURE_REDUCTION_ACTIVATIONS:
                continue
            chain = graph.exclusive_successor(layer, through=_passes_features)
            if chain is not None and type(chain.successor) is type(layer):
                links[index] = index_of[id(chain.successor)]
        return links

    def _fixed_axes(self, graph: ModelGraph) -> set[tuple[int, str]]:
        """Returns the (index, axis) pairs that never fuse (section 4.5).

        The columns of a layer that reads a model input through weightless
        layers only (the input layer's), and the rows of a layer whose output
        reaches a model output through weightless layers only (the
        classifier's).
        """
        fixed = set()
        for index, layer in enumerate(self._layers):
            if MODEL_INPUT in graph.sources(layer, through=is_weightless):
                fixed.add((index, "col"))
            if MODEL_OUTPUT in graph.sinks(layer, through=is_weightless):
                fixed.add((index, "row"))
        return fixed

    def _record_initial(self, model: keras.Model, graph: ModelGraph) -> None:
        cost = costs.model_cost(model)
        self._initial = {
            "params": cost.params,
            "flops_mac1": cost.flops_mac1,
            "flops_mac2": cost.flops_mac2,
            "features": {layer.name: int(layer.features_out) for layer in self._layers},
            "dropout": self._dropout_owners(model, graph),
        }
        for producer, consumer in self._links.items():
            self._edit(
                [self._layers[producer], self._layers[consumer]],
                fusion.init_feature_reduction,
            )

    def _dropout_owners(self, model: keras.Model, graph: ModelGraph) -> dict:
        """Maps each Dropout that reads a factorized layer's output to [owner, rate].

        A Dropout reads layer a's output when the graph leads from it up to a
        through `_passes_features` layers only (and to nothing else).
        """
        factorized = {id(layer) for layer in self._layers}
        owners = {}
        for layer in model.layers:
            if not isinstance(layer, keras.layers.Dropout):
                continue
            sources = graph.sources(layer, through=_passes_features)
            if len(sources) == 1 and id(sources[0]) in factorized:
                owners[layer.name] = [sources[0].name, float(layer.rate)]
        return owners

    @staticmethod
    def _edit(layers: list, edit) -> None:
        """Runs `edit` on the states of `layers`; assigns what it changed."""
        states = [layer.factor_state() for layer in layers]
        before = [copy.deepcopy(state) for state in states]
        edit(*states)
        for layer, state, old in zip(layers, states, before, strict=True):
            layer.assign_factor_state(state, unchanged=old)

    # ------------------------------------------------------- search / probe
    def _forbidden(self, index: int, axis: str) -> bool:
        """Never the input layer's columns nor the classifier's rows (4.5)."""
        return (index, axis) in self._fixed

    def _may_fuse(self, index: int, axis: str) -> bool:
        """Whether (layer, axis) can become the longer axis before a rebuild.

        Axes that cannot are left out of the loss, the search and the test:
        an axis shorter than the other can only become the longer one if the
        other may shrink.
        """
        if self._forbidden(index, axis):
            return False
        layer = self._layers[index]
        n_live = int(np.sum(layer.col_mask.numpy()))
        m_live = int(np.sum(layer.row_mask.numpy()))
        if self._axis_allowed_by_size(axis, n_live, m_live):
            return True
        mine = n_live if axis == "col" else m_live
        other_axis = "row" if axis == "col" else "col"
        return mine >= 2 and not self._forbidden(index, other_axis)

    @staticmethod
    def _axis_allowed_by_size(
        axis: str, n_live: tf.Tensor, m_live: tf.Tensor
    ) -> tf.Tensor:
        """Longer axis only (square: both), at least two live vectors."""
        mine, other = (n_live, m_live) if axis == "col" else (m_live, n_live)
        return tf.logical_and(mine >= other, mine >= 2)

    def _refresh(self, selected: tf.Tensor) -> None:
        """Searches the most parallel pair of each (layer, axis) `selected`.

        `selected` has one bool per entry of `_axes`. Then sets, for every
        (layer, axis), whether its cached pair may fuse and its eq. 16
        weight: both change only between steps (searches, fusions), so the
        step itself only reads them.
        """
        for position, (index, axis) in enumerate(self._axes):
            layer = self._layers[index]
            pair = self._pairs[layer.name][axis]

            def search(layer=layer, axis=axis, pair=pair):
                vectors, mask = axis_vectors(layer, axis)
                i, j, _ = rare.most_parallel_pair(vectors, mask)
                pair.assign(tf.stack([i, j]))
                return tf.constant(True)

            tf.cond(selected[position], search, lambda: tf.constant(False))
        if not self._axes:
            return
        counts = [
            (_live(layer.col_mask), _live(layer.row_mask)) for layer in self._layers
        ]
        sizes = [n_live * m_live for n_live, m_live in counts]
        total = 2.0 * tf.add_n(sizes)
        allowed, weights = [], []
        for index, axis in self._axes:
            layer = self._layers[index]
            pair = self._pairs[layer.name][axis]
            mask = layer.col_mask if axis == "col" else layer.row_mask
            live = tf.logical_and(
                tf.gather(mask, pair[0]) > 0, tf.gather(mask, pair[1]) > 0
            )
            live = tf.logical_and(live, pair[0] != pair[1])
            ok = tf.cast(
                tf.logical_and(live, self._axis_allowed_by_size(axis, *counts[index])),
                tf.float32,
            )
            allowed.append(ok)
            weights.append(ok * sizes[index] / total)
        self._axis_allowed.assign(tf.stack(allowed))
        self._axis_weights.assign(tf.stack(weights))

    def _pair_products(self) -> tuple[tf.Tensor, tf.Tensor]:
        """Dot products of the cached pair of each (layer, axis) in `_axes`.

        Gathers only the two vectors of each pair (the step never builds the
        effective kernel again) and takes their 2 x 2 Gram product.

        Returns:
            ``(products, scales)``: (axes, 3) ``[u.u, v.v, u.v]`` and (axes,)
            the factor that turns the vectors' lengths into effective ones.
            Columns are taken without the Frobenius scale (the squared sine
            does not depend on it, and the gradient then skips the norm);
            rows carry the bias, so they are taken effective (scale 1).
        """
        products, scales = [], []
        for index, axis in self._axes:
            layer = self._layers[index]
            scale = layer.kernel_scale()
            pair = self._pairs[layer.name][axis]
            if axis == "col":
                vectors = tf.gather(layer.kernel, pair) * layer.row_mask[None, :]
                scales.append(scale)
            else:
                # A product with a one-hot (groups_out, 2) matrix: its gradient
                # is a dense rank-2 update, cheaper than an axis-1 gather's.
                select = tf.one_hot(pair, tf.shape(layer.kernel)[1], dtype=scale.dtype)
                columns = tf.matmul(select, layer.kernel, transpose_b=True)
                vectors = scale * columns * layer.col_mask[None, :]
                if layer.use_bias:
                    bias = tf.gather(layer.bias, pair)[:, None]
                    vectors = tf.concat([vectors, bias], 1)
                scales.append(tf.ones_like(scale))
            gram = tf.matmul(vectors, vectors, transpose_b=True)
            products.append(tf.stack([gram[0, 0], gram[1, 1], gram[0, 1]]))
        return tf.stack(products), tf.stop_gradient(tf.stack(scales))

    def _pair_sines_and_probe(self) -> tuple[tf.Tensor, tf.Tensor]:
        """(axes,) squared sines of the cached pairs, and the probe rows.

        The probe rows are ``[allowed, 1 - |cos|, D_euc]`` for the fusion
        test, without gradient.
        """
        products, scales = self._pair_products()
        sin2, gap, distance = rare.pair_statistics(
            products[:, 0], products[:, 1], products[:, 2]
        )
        probe = tf.stack([self._axis_allowed, gap, distance * scales], axis=1)
        return sin2, tf.stop_gradient(probe)

    def _probe(self) -> tf.Tensor:
        return self._pair_sines_and_probe()[1]

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
        self._refresh_all()

    def _refresh_all(self) -> None:
        self._refresh_fn(tf.ones(len(self._axes), tf.bool))

    def on_step_end(self, trainer, step: int, logs) -> None:
        """Searches every `search_every` steps; fuses pairs under both thresholds."""
        if step % self.config.search_every == 0:
            self._refresh_all()
        if not self.config.fusion or not self._axes:
            return None
        if self.config.lambda1 > 0:
            probe = self._probe_values.numpy()  # written by the RaRe term
        else:
            probe = self._probe_fn().numpy()
        fused = np.zeros(len(self._axes), bool)
        for position, (row, (index, axis)) in enumerate(
            zip(probe, self._axes, strict=True)
        ):
            allowed, gap, distance = row
            if allowed and gap < self.config.tau_cos and distance < self.config.tau_euc:
                self._fuse(index, axis)
                fused[position] = True
        if fused.any():
            # Only the fused axis lost its pair. The other cached pairs stay
            # live (the step reads their current vectors); the scheduled
            # searches pick up any change of the most parallel pair.
            self._refresh_fn(tf.constant(fused))
        return None

    def _fuse(self, index: int, axis: str) -> None:
        layer = self._layers[index]
        i, j = (int(v) for v in self._pairs[layer.name][axis].numpy())
        if axis == "col":
            self._edit([layer], lambda s: fusion.fuse_columns(s, i, j))
        elif index in self._links:
            pair = [layer, self._layers[self._links[index]]]
            self._edit(pair, lambda s, n: fusion.fuse_rows(s, i, j, n))
        else:
            self._edit([layer], lambda s: fusion.fuse_rows(s, i, j))
        self._fused_since_rebuild += 1

    def on_epoch_end(self, trainer, epoch: int, logs) -> ModelRebuild | None:
        """Logs compression and dimensions; rebuilds if anything was fused."""
        self._bind(trainer.model)
        states = [layer.factor_state() for layer in self._layers]
        logs.update(self._epoch_logs(trainer.model, states))
        if not self._fused_since_rebuild:
            return None
        self._fused_since_rebuild = 0
        with trainer.strategy.scope():  # the new model's variables are mirrored
            return self._rebuild(trainer.model, states)

    def _epoch_logs(self, model, states: list[FactorState]) -> dict[str, float]:
        params = self._live_params(model, states)
        logs = {
            "params": float(params),
            "compression": 1.0 - params / self._initial["params"],
        }
        for layer, state in zip(self._layers, states, strict=True):
            counts = fusion.live_counts(state)
            logs[f"dims/{layer.name}/in"] = float(counts["groups_in"])
            logs[f"dims/{layer.name}/out"] = float(counts["groups_out"])
            logs[f"dims/{layer.name}/feat"] = float(counts["features_out"])
        return logs

    def _live_params(self, model, states: list[FactorState]) -> int:
        """Trainable parameters once dead groups are dropped."""
        total = costs.model_cost(model).params
        for state in states:
            counts = fusion.live_counts(state)
            has_bias = state.bias is not None
            total -= state.kernel.size + (state.bias.size if has_bias else 0)
            total += counts["groups_out"] * (counts["groups_in"] + has_bias)
        return total

    # -------------------------------------------------------------- rebuild
    def _rebuild(self, model: keras.Model, states: list[FactorState]) -> ModelRebuild:
        """Returns the model at compact shapes, computing the same function."""
        compact = fusion.compact(states, self._links)
        by_name = {
            layer.name: (old, new)
            for layer, old, new in zip(self._layers, states, compact, strict=True)
        }
        config = model.get_config()
        for entry in config["layers"]:
            name = entry["config"]["name"]
            if name in by_name:
                new = by_name[name][1]
                # Built again from its (possibly narrower) input when called.
                entry.pop("build_config", None)
                entry["config"].update(
                    groups_in=int(new.kernel.shape[0]),
                    groups_out=int(new.kernel.shape[1]),
                    features_out=int(new.feature_group.shape[0]),
                )
            elif name in self._initial["dropout"]:
                entry["config"]["rate"] = self._dropout_rate(name, by_name)
        rebuilt = model.__class__.from_config(config)
        slot_maps = {}
        for layer in rebuilt.layers:
            old_layer = model.get_layer(layer.name)
            if layer.name in by_name:
                old, new = by_name[layer.name]
                layer.assign_factor_state(new)
                slot_maps.update(self._slot_maps(layer, old))
            else:
                for target, source in zip(
                    layer.variables, old_layer.variables, strict=True
                ):
                    target.assign(source)
        return ModelRebuild(rebuilt, slot_maps)

    def _dropout_rate(self, name: str, by_name) -> float:
        owner, rate0 = self._initial["dropout"][name]
        features = fusion.live_counts(by_name[owner][1])["features_out"]
        return rate0 * features / self._initial["features"][owner]

    @staticmethod
    def _slot_maps(layer, old: FactorState) -> dict:
        cols, rows = np.flatnonzero(old.col_mask), np.flatnonzero(old.row_mask)
        maps = {layer.kernel.path: lambda slot: slot[np.ix_(cols, rows)]}
        if layer.use_bias:
            maps[layer.bias.path] = lambda slot: slot[rows]
        return maps

    # ------------------------------------------------------ state / report
    def get_state(self) -> dict[str, Any]:
        """Returns what a resumed run needs: the initial sizes and rates."""
        return {"initial": json.dumps(self._initial)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restores `get_state`."""
        if "initial" in state:
            self._initial = json.loads(str(state["initial"]))

    def report(self, trainer) -> dict[str, Any]:
        """Results entries: sizes before/after, compression, Table 2 dims."""
        self._bind(trainer.model)
        cost = costs.model_cost(trainer.model)
        layers = []
        for layer in self._layers:
            counts = fusion.live_counts(layer.factor_state())
            layers.append(
                {
                    "layer": layer.name,
                    "input": counts["groups_in"],
                    "output": counts["groups_out"],
                    "features": counts["features_out"],
                }
            )
        history = trainer.history
        return {
            "dlra": {
                "config": dataclasses.asdict(self.config),
                "params_before": self._initial["params"],
                "params_after": cost.params,
                "flops_mac1_before": self._initial["flops_mac1"],
                "flops_mac1_after": cost.flops_mac1,
                "flops_mac2_before": self._initial["flops_mac2"],
                "flops_mac2_after": cost.flops_mac2,
                "compression": 1.0 - cost.params / self._initial["params"],
                "layers": layers,
                "compression_per_epoch": [h.get("compression") for h in history],
            }
        }


class _RaReTerm:
    """lambda1 * eq. 16 on the cached most parallel pairs (sin^2, NOTES.md)."""

    name = "rare"

    def __init__(self, dlra: DLRA):
        self.dlra = dlra

    def __call__(self, model: keras.Model) -> tf.Tensor:
        dlra = self.dlra
        if not dlra._axes:
            return tf.constant(0.0)
        sin2, probe = dlra._pair_sines_and_probe()
        # The fusion test reads these after the step: no second pass over the
        # weights (they are the values before this step's update).
        dlra._probe_values.assign(probe)
        return dlra.config.lambda1 * tf.reduce_sum(dlra._axis_weights * sin2)


class _FactorL2Term:
    """lambda2 * eq. 17: mean over layers of ||W'||^2."""

    name = "factor_l2"

    def __init__(self, dlra: DLRA):
        self.dlra = dlra

    def __call__(self, model: keras.Model) -> tf.Tensor:
        squares = []
        for layer in self.dlra._layers:
            if self.dlra.config.l2_target == "effective" and layer.frobenius_norm:
                # ||g k W / ||W|| ||^2 = (g k)^2: no pass over the kernel.
                squares.append(tf.square(layer.gain * layer.norm0))
                continue
            kernel = layer.kernel * layer.col_mask[:, None] * layer.row_mask[None, :]
            squares.append(tf.reduce_sum(tf.square(kernel)))
        return self.dlra.config.lambda2 * tf.add_n(squares) / len(squares)
