"""Fusions into a factorized model's layers, and rebuilds at compact shapes.

Between rebuilds a fusion only assigns new values to a layer's P, W', Q
arrays (shapes unchanged: the function is exactly the masked one). Once an
epoch the model is rebuilt at the compact shapes (`ModelRebuild`), Dropout
rates set by eq. 14 from the live feature count.
"""

import copy
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rank.core import costs
from keras_rank.core.graph import ModelGraph
from keras_rank.dlra import fusion
from keras_rank.layers import FactorState
from keras_rank.training.hooks import ModelRebuild

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


def _edit(layers: list, edit) -> None:
    """Runs `edit` on the states of `layers`; assigns what it changed."""
    states = [layer.factor_state() for layer in layers]
    before = [copy.deepcopy(state) for state in states]
    edit(*states)
    for layer, state, old in zip(layers, states, before, strict=True):
        layer.assign_factor_state(state, unchanged=old)


class ModelEditor:
    """Fuses pairs into a model's factorized layers and rebuilds it compact.

    A layer is named by its index in `layers`. The sizes of the model as
    first seen are kept in `initial`, for the compression in the logs, the
    report and the Dropout rates.

    Args:
        feature_reduction: Share activations of fused rows (section 4.3) for
            ReLU-family layers feeding a factorized layer.

    Attributes:
        layers: The bound model's factorized layers.
        links: Feature-space reduction: {producer index: consumer index}.
        initial: Parameters and FLOPs of the model as first seen, the
            feature count of each factorized layer, and each Dropout that
            reads one's features as {dropout name: [layer name, rate]}.
            Restored on resume.
    """

    def __init__(self, feature_reduction: bool):
        self.feature_reduction = feature_reduction
        self.layers: list = []
        self.links: dict[int, int] = {}
        self.initial: dict[str, Any] = {}
        self._fused_since_rebuild = 0

    def bind(self, model: keras.Model, layers: list, graph: ModelGraph) -> None:
        """Binds to the factorized `layers` of `model`, whose graph is `graph`.

        On the model as first seen, records `initial` and switches
        feature-space reduction on for every link.
        """
        self.layers = layers
        self.links = self._find_links(graph)
        if not self.initial:
            self._record_initial(model, graph)

    def _find_links(self, graph: ModelGraph) -> dict[int, int]:
        """Returns {a: b} for factorized layers b that read a's features.

        Layer b reads a's features when its only input is a's output passed
        through `_passes_features` layers only, that output (and every tensor
        on the way) feeding nothing else and being no model output, a and b
        each called once (`ModelGraph.exclusive_successor`); a has a
        ReLU-family activation and b is of a's type.
        """
        if not self.feature_reduction:
            return {}
        index_of = {id(layer): index for index, layer in enumerate(self.layers)}
        links = {}
        for index, layer in enumerate(self.layers):
            activation = keras.activations.serialize(layer.activation)
            if activation not in FEATURE_REDUCTION_ACTIVATIONS:
                continue
            chain = graph.exclusive_successor(layer, through=_passes_features)
            if chain is not None and type(chain.successor) is type(layer):
                links[index] = index_of[id(chain.successor)]
        return links

    def _record_initial(self, model: keras.Model, graph: ModelGraph) -> None:
        cost = costs.model_cost(model)
        self.initial = {
            "params": cost.params,
            "flops_mac1": cost.flops_mac1,
            "flops_mac2": cost.flops_mac2,
            "features": {layer.name: int(layer.features_out) for layer in self.layers},
            "dropout": self._dropout_owners(model, graph),
        }
        for producer, consumer in self.links.items():
            _edit(
                [self.layers[producer], self.layers[consumer]],
                fusion.init_feature_reduction,
            )

    def _dropout_owners(self, model: keras.Model, graph: ModelGraph) -> dict:
        """Maps each Dropout that reads a factorized layer's output to [owner, rate].

        A Dropout reads layer a's output when the graph leads from it up to a
        through `_passes_features` layers only (and to nothing else).
        """
        factorized = {id(layer) for layer in self.layers}
        owners = {}
        for layer in model.layers:
            if not isinstance(layer, keras.layers.Dropout):
                continue
            sources = graph.sources(layer, through=_passes_features)
            if len(sources) == 1 and id(sources[0]) in factorized:
                owners[layer.name] = [sources[0].name, float(layer.rate)]
        return owners

    # ---------------------------------------------------------------- fusion
    def fuse(self, index: int, axis: str, i: int, j: int) -> None:
        """Fuses vector j into vector i along `axis` of layer `index`.

        Rows of a linked layer move its features and the next layer's
        entries too. Shapes do not change until the next rebuild.
        """
        layer = self.layers[index]
        if axis == "col":
            _edit([layer], lambda s: fusion.fuse_columns(s, i, j))
        elif index in self.links:
            pair = [layer, self.layers[self.links[index]]]
            _edit(pair, lambda s, n: fusion.fuse_rows(s, i, j, n))
        else:
            _edit([layer], lambda s: fusion.fuse_rows(s, i, j))
        self._fused_since_rebuild += 1

    def end_epoch(
        self, model: keras.Model, strategy: tf.distribute.Strategy, logs: dict
    ) -> ModelRebuild | None:
        """Logs compression and dimensions; rebuilds if anything was fused.

        Args:
            model: The bound model.
            strategy: The trainer's strategy; the new model's variables are
                created in its scope (mirrored).
            logs: The epoch's logs, updated in place.

        Returns:
            The model at compact shapes, or None if nothing was fused since
            the last rebuild.
        """
        states = self.log_epoch(model, logs)
        if not self._fused_since_rebuild:
            return None
        self._fused_since_rebuild = 0
        with strategy.scope():
            return self._rebuild(model, states)

    def log_epoch(self, model: keras.Model, logs: dict) -> list[FactorState]:
        """Adds the compression and each layer's live dimensions to `logs`.

        Returns:
            The layers' factor states, as read.
        """
        states = [layer.factor_state() for layer in self.layers]
        logs.update(self._epoch_logs(model, states))
        return states

    def _epoch_logs(self, model, states: list[FactorState]) -> dict[str, float]:
        params = self._live_params(model, states)
        logs = {
            "params": float(params),
            "compression": 1.0 - params / self.initial["params"],
        }
        for layer, state in zip(self.layers, states, strict=True):
            counts = fusion.live_counts(state)
            logs[f"dims/{layer.name}/in"] = float(counts["groups_in"])
            logs[f"dims/{layer.name}/out"] = float(counts["groups_out"])
            logs[f"dims/{layer.name}/feat"] = float(counts["features_out"])
        return logs

    @staticmethod
    def _live_params(model, states: list[FactorState]) -> int:
        """Trainable parameters once dead groups are dropped."""
        total = costs.model_cost(model).params
        for state in states:
            counts = fusion.live_counts(state)
            has_bias = state.bias is not None
            total -= state.kernel.size + (state.bias.size if has_bias else 0)
            total += counts["groups_out"] * (counts["groups_in"] + has_bias)
        return total

    # --------------------------------------------------------------- rebuild
    def _rebuild(self, model: keras.Model, states: list[FactorState]) -> ModelRebuild:
        """Returns the model at compact shapes, computing the same function."""
        compact = fusion.compact(states, self.links)
        by_name = {
            layer.name: (old, new)
            for layer, old, new in zip(self.layers, states, compact, strict=True)
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
            elif name in self.initial["dropout"]:
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
        """Eq. 14: the initial rate times the owner's share of live features."""
        owner, rate0 = self.initial["dropout"][name]
        features = fusion.live_counts(by_name[owner][1])["features_out"]
        return rate0 * features / self.initial["features"][owner]

    @staticmethod
    def _slot_maps(layer, old: FactorState) -> dict:
        cols, rows = np.flatnonzero(old.col_mask), np.flatnonzero(old.row_mask)
        maps = {layer.kernel.path: lambda slot: slot[np.ix_(cols, rows)]}
        if layer.use_bias:
            maps[layer.bias.path] = lambda slot: slot[rows]
        return maps

    # ---------------------------------------------------------------- report
    def report(self, model: keras.Model, history: list[dict]) -> dict[str, Any]:
        """Returns sizes before/after, compression and Table 2's dimensions.

        Args:
            model: The bound model.
            history: The trainer's per-epoch logs.
        """
        cost = costs.model_cost(model)
        layers = []
        for layer in self.layers:
            counts = fusion.live_counts(layer.factor_state())
            layers.append(
                {
                    "layer": layer.name,
                    "input": counts["groups_in"],
                    "output": counts["groups_out"],
                    "features": counts["features_out"],
                }
            )
        return {
            "params_before": self.initial["params"],
            "params_after": cost.params,
            "flops_mac1_before": self.initial["flops_mac1"],
            "flops_mac1_after": cost.flops_mac1,
            "flops_mac2_before": self.initial["flops_mac2"],
            "flops_mac2_after": cost.flops_mac2,
            "compression": 1.0 - cost.params / self.initial["params"],
            "layers": layers,
            "compression_per_epoch": [h.get("compression") for h in history],
        }
