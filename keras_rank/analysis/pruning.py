"""Structured pruning of a layer's units, physically, and its accuracy curves.

:func:`prune_units` removes units (output channels) of a Dense or Conv2D
layer together with everything that holds those channels: the per-channel
weights of BatchNormalization and DepthwiseConv2D layers on the way, the
same channels of every layer tied to it by a residual merge, and the inputs
of the Dense/Conv2D layers that read them (`keras_rank.core.channel_groups`,
`keras_rank.core.unit_removal`). The result is a smaller plain Keras model
that saves and exports, and computes what the original computes with the
removed channels zeroed where the next Dense/Conv2D layers read them.
:func:`pruning_curves` prunes p units for p on a grid, in the greedy orders
of `keras_rank.analysis.pruning_criteria`, without retraining, and records
the accuracy `evaluate` gives (Heitmann, section 3.1, figure 2).
"""

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from keras_rank.analysis.pruning_criteria import CRITERIA, pruning_order
from keras_rank.core import unit_removal
from keras_rank.core.channel_groups import ChannelGroup, channel_group
from keras_rank.core.compressible import COMPRESSIBLE, compressible_layers, matrix_layer
from keras_rank.core.errors import ConfigError
from keras_rank.core.graph import ModelGraph
from keras_rank.core.layer_matrices import unit_matrix


def layer_width(model: keras.Model, layer: str) -> int:
    """Returns the number of units of `model`'s Dense/Conv2D layer `layer`."""
    return int(matrix_layer(model, layer).kernel.shape[-1])


def _channel_group(model: keras.Model, layer: str) -> ChannelGroup:
    """Returns the group of `layer`'s output channels (`channel_group`).

    Raises:
        ConfigError: The layer's units cannot be removed (`check_prunable`).
    """
    target = matrix_layer(model, layer)
    editable = {other.name for other in compressible_layers(model, required=False)}
    group = channel_group(ModelGraph(model), target, editable)
    reason = group.blocked
    if not reason and layer not in editable:
        reason = f"it is not {COMPRESSIBLE}"
    if reason:
        raise ConfigError(
            f"Expected layer: a Dense/Conv2D layer whose units can be removed. "
            f"Received: layer={layer!r}, whose units cannot go: {reason}."
        )
    return group


def check_prunable(model: keras.Model, layer: str) -> None:
    """Raises `ConfigError` unless units of `layer` can be removed.

    A layer's units (output channels) can go when they reach Dense or
    Conv2D layers only, through layers that keep channels apart
    (`keras_rank.core.channel_groups`): its channels' group holds the
    layers that lose them too (a residual Add ties the channels of every
    branch). Every Dense/Conv2D layer of the group must be of the kinds LC
    and prox edit (`COMPRESSIBLE`); the model's output layer cannot lose
    units.
    """
    _channel_group(model, layer)


def check_counts(counts: Sequence[int], width: int) -> tuple[int, ...]:
    """Returns `counts` as ints after checking each is in [0, width - 1].

    Raises:
        ConfigError: A count is not an int in that range (a layer keeps at
            least one unit).
    """
    for count in counts:
        if not isinstance(count, numbers.Integral) or not 0 <= count < width:
            raise ConfigError(
                f"Expected units to prune in [0, {width - 1}] (the layer has "
                f"{width} units and keeps at least one). Received: {count!r}"
            )
    return tuple(int(count) for count in counts)


def prune_units(model: keras.Model, layer: str, units: Sequence[int]) -> keras.Model:
    """Returns a copy of `model` without the given units of `layer`.

    Args:
        model: A built Functional or Sequential model of plain layers.
        layer: Name of a Dense or Conv2D layer whose units can be removed
            (`check_prunable`).
        units: Indices of the units to remove, distinct, fewer than the
            layer's units.

    Returns:
        The smaller model; the other layers keep their weights.

    Raises:
        ConfigError: The layer does not exist, is not Dense/Conv2D or cannot
            lose units, or `units` are out of range, repeated or all of them.
    """
    group = _channel_group(model, layer)
    width = layer_width(model, layer)
    units = check_counts(units, width)
    if len(set(units)) != len(units) or len(units) >= width:
        raise ConfigError(
            f"Expected distinct units, fewer than the layer's {width}. "
            f"Received: units={list(units)}"
        )
    weights = unit_removal.group_weights(group)
    if units:
        unit_removal.drop_channels(group, weights, sorted(units))
    return unit_removal.rebuilt(model, weights)


@dataclasses.dataclass(frozen=True)
class PruningCurve:
    """Accuracy after pruning p units of one layer by one criterion.

    Attributes:
        criterion: One of `pruning_criteria.CRITERIA`.
        counts: The numbers p of units removed.
        accuracy: Accuracy at each count (the mean over seeds for
            ``random``).
        std: Standard deviation over seeds at each count (``random``
            only, else None).
        seeds: The seeds of the random orders (empty for the others).
    """

    criterion: str
    counts: tuple[int, ...]
    accuracy: tuple[float, ...]
    std: tuple[float, ...] | None = None
    seeds: tuple[int, ...] = ()

    def at(self, count: int) -> float:
        """Returns the accuracy after pruning `count` units."""
        return self.accuracy[self.counts.index(count)]

    def as_dict(self) -> dict[str, Any]:
        """Returns the curve as a JSON-serializable dict."""
        return dataclasses.asdict(self)


def pruning_curves(
    model: keras.Model,
    layer: str,
    counts: Sequence[int],
    evaluate: Callable[[keras.Model], float],
    criteria: Sequence[str] = CRITERIA,
    seeds: int = 5,
    progress: Callable[[str], None] | None = None,
) -> list[PruningCurve]:
    """Returns the accuracy after pruning `counts` units of `layer`, per criterion.

    Each point prunes the first p units of the criterion's greedy order from
    the unpruned model (no retraining) and calls `evaluate` on the smaller
    model, once per distinct set of units (pruning none is evaluated once).

    Args:
        model: A built Functional or Sequential model of plain layers.
        layer: The Dense/Conv2D layer to prune (`check_prunable`).
        counts: Numbers of units to remove, each in [0, units - 1].
        evaluate: Returns a model's accuracy.
        criteria: Criteria of `pruning_criteria.CRITERIA`.
        seeds: Random orders averaged for ``random`` (seeds 0..seeds-1).
        progress: Called with one line per criterion (and seed), if given.

    Raises:
        ConfigError: Bad layer, counts, criteria or seeds.
    """
    check_prunable(model, layer)
    counts = check_counts(counts, layer_width(model, layer))
    unknown = [name for name in criteria if name not in CRITERIA]
    if unknown or not criteria:
        raise ConfigError(
            f"Expected criteria from {CRITERIA}. Received: {list(criteria)}"
        )
    if "random" in criteria and (not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"Expected seeds >= 1. Received: seeds={seeds!r}")
    matrix = unit_matrix(model.get_layer(layer).kernel)
    # The same units pruned give the same model, whichever order named them
    # (pruning none, in every order): each set of units is evaluated once.
    accuracies: dict[frozenset[int], float] = {}

    def accuracy(units: np.ndarray) -> float:
        key = frozenset(int(unit) for unit in units)
        if key not in accuracies:
            accuracies[key] = evaluate(prune_units(model, layer, units))
        return accuracies[key]

    curves = []
    for criterion in criteria:
        runs = range(seeds) if criterion == "random" else (0,)
        table = []
        for seed in runs:
            order = pruning_order(matrix, criterion, seed)
            table.append([accuracy(order[:p]) for p in counts])
            if progress is not None:
                where = f" seed {seed}" if criterion == "random" else ""
                progress(
                    f"pruning {layer} by {criterion}{where}: accuracy "
                    + " ".join(f"{a:.3f}" for a in table[-1])
                )
        table = np.asarray(table)
        random = criterion == "random"
        curves.append(
            PruningCurve(
                criterion,
                counts,
                tuple(float(a) for a in table.mean(axis=0)),
                tuple(float(s) for s in table.std(axis=0)) if random else None,
                tuple(runs) if random else (),
            )
        )
    return curves
