"""Post-processing of a trained model (Alvarez & Salzmann 2017, section 3.2).

Two steps turn a model trained with the nuclear-norm (and group-Lasso) prox
into a compact one:

1. :func:`remove_zero_units`: a unit (output column ``kernel[..., n]`` of a
   Dense or Conv2D layer) whose kernel column went to zero outputs the
   constant ``act(bias[n])`` at every position. It is removed together with
   the inputs of the next layer that read it, and that constant's
   contribution is folded into the next layer's bias, so the model computes
   the same outputs.
2. :func:`decompose`: every Dense/Conv2D layer's matrix M (Dense: the
   kernel; Conv2D: ``conv_kernel_as_matrix(kernel, scheme=1)``, i.e.
   ``(dh dw c) x n``) keeps the smallest rank r whose singular values hold
   ``energy`` % of the sum of its singular values (the paper's energy: the
   sum, not the sum of squares). The layer becomes LC's low-rank layer of
   rank r where that is cheaper under the criterion (storage, the default:
   fewer parameters, ``r (a + b) < a b``; flops: fewer MACs; latency: a
   lower fitted LiteRT time, `keras_rank.layers.latency`), else it stays a
   plain layer (`keras_rank.layers.rank_specs.low_rank_model`).

`keras_rank.layers.deployable.deployable_model` turns the result into plain Keras
layers for export, as for the other methods.

Tolerance (``tolerance``, default :data:`DEFAULT_TOLERANCE`, relative):

* a unit is zero when its kernel column's L2 norm is at most ``tolerance``
  times the Frobenius norm of the layer's kernel (an all-zero kernel: every
  unit);
* a singular value is zero when it is at most ``tolerance`` times the
  largest one; energies are sums of the others. At 100 % the rank is the
  number of nonzero singular values in this sense, so the decomposition
  drops only what float32 rounding left of exact zeros (a prox output
  rebuilt as ``U diag(s) V^T`` in float32 has "zero" singular values of
  order 1e-7 s_1).

When a zero unit is removed (the fold is exact only where its constant
reaches the readers whole):

* its channel group (`keras_rank.core.channel_groups`, shared with pruning)
  must not be blocked: the channel reaches only Dense/Conv2D layers, through
  layers that keep channels apart (activations, Dropout, pooling,
  BatchNormalization, DepthwiseConv2D, Flatten, Concatenate, element-wise
  merges and tensor arithmetic), never a model output;
* every layer tied to it by a merge (a residual Add's other branch) must
  have the same unit zero: the channel is the sum of both;
* the constant must stay constant on its way (`unit_removal.channel_constants`):
  a DepthwiseConv2D or ZeroPadding2D that pads it with zeros at the borders,
  or a merge with a channel that is not constant, stops that;
* the fold adds ``c * sum(W_reader[rows of the channel])`` to each reader's
  bias, c the channel's constant there. A Conv2D with ``padding="same"``
  sees the constant zero-padded at its borders (a position-dependent
  contribution no bias can take), so there only channels with ``c = 0`` are
  removed; a reader without a bias likewise takes only ``c = 0``;
* otherwise the unit is kept and the report says why; a layer keeps at
  least one unit.

Layers are visited in the model's (topological) order, so a unit whose
only nonzero weights read removed units is found zero in turn.
Training the result again (the paper's "reload") is the same function in
expectation: a Dropout no longer scales the folded constants.
"""

import dataclasses
import math
from typing import Any

import keras
import numpy as np

from keras_rank.core import costs, unit_removal
from keras_rank.core.channel_groups import channel_group
from keras_rank.core.errors import ConfigError
from keras_rank.core.graph import ModelGraph
from keras_rank.core.linalg import (
    check_rank_multiple,
    robust_svd,
    round_up_to_multiple,
    stays_dense,
)
from keras_rank.core.unit_removal import (
    ChannelwiseWeights,
    LayerWeights,
    channel_constants,
)
from keras_rank.layers.latency import LatencyTable
from keras_rank.layers.rank_specs import (
    LayerSpec,
    RankChoice,
    compressible_layers,
    layer_specs,
    low_rank_model,
)

DEFAULT_TOLERANCE = 1e-5
"""Relative tolerance of a zero unit and of a zero singular value."""


@dataclasses.dataclass(frozen=True)
class UnitRemoval:
    """The zero units of one Dense or Conv2D layer.

    Attributes:
        name: The layer's name.
        units_before: Its units in the input model.
        units_after: Its units in the result.
        removed: Indices (in the input model) of the units removed.
        kept: ``(index, reason)`` of each zero unit that was kept.
    """

    name: str
    units_before: int
    units_after: int
    removed: tuple[int, ...]
    kept: tuple[tuple[int, str], ...]


@dataclasses.dataclass(frozen=True)
class LayerDecomposition:
    """What post-processing did to one Dense or Conv2D layer.

    Attributes:
        name: The layer's name (the same in the result).
        kind: Its class in the input model, ``"Dense"`` or ``"Conv2D"``.
        units_before: Units in the input model.
        units_after: Units after removing zero units.
        zero_units_kept: ``(index, reason)`` of each zero unit kept.
        rank: The smallest rank holding the energy asked for (of the matrix
            after unit removal), rounded up to the rank multiple; the layer
            has this rank if ``low_rank``.
        max_rank: ``min(a, b)`` of that matrix.
        kept_energy: Percent of the matrix's energy the result keeps (100
            for a plain layer).
        low_rank: True if the layer became a low-rank layer of rank
            ``rank``; False if it stays a plain layer (not cheaper).
        params_before: Parameters in the input model (bias included).
        params_after: Parameters in the result.
        macs_before: Multiply-adds per example in the input model.
        macs_after: Multiply-adds per example in the result.
    """

    name: str
    kind: str
    units_before: int
    units_after: int
    zero_units_kept: tuple[tuple[int, str], ...]
    rank: int
    max_rank: int
    kept_energy: float
    low_rank: bool
    params_before: int
    params_after: int
    macs_before: int
    macs_after: int

    def as_dict(self) -> dict[str, Any]:
        """Returns the entry as a JSON-serializable dict."""
        entry = dataclasses.asdict(self)
        entry["zero_units_kept"] = [list(item) for item in self.zero_units_kept]
        return entry


def check_energy(energy: object) -> float:
    """Returns `energy` as a float if it is a percentage in (0, 100].

    Raises:
        ConfigError: If it is not a real number in (0, 100].
    """
    valid = (
        isinstance(energy, (int, float, np.integer, np.floating))
        and not isinstance(energy, bool)
        and math.isfinite(energy)
        and 0 < energy <= 100
    )
    if not valid:
        raise ConfigError(
            "Expected energy in (0, 100] (percent of the sum of singular "
            f"values). Received: energy={energy!r}"
        )
    return float(energy)


def _check_tolerance(tolerance: object) -> float:
    valid = (
        isinstance(tolerance, (int, float, np.integer, np.floating))
        and not isinstance(tolerance, bool)
        and 0 <= tolerance < 1
    )
    if not valid:
        raise ConfigError(
            f"Expected tolerance in [0, 1). Received: tolerance={tolerance!r}"
        )
    return float(tolerance)


def energy_profile(
    singular_values: Any, tolerance: float = DEFAULT_TOLERANCE
) -> np.ndarray:
    """Returns the percent of the energy held by the r largest singular values.

    The energy is the sum of the singular values; those at most
    ``tolerance * max`` count as zero.

    Args:
        singular_values: 1-D, non-negative (any order).
        tolerance: Relative tolerance of a zero singular value.

    Returns:
        float64 array of length R: entry r - 1 for rank r, non-decreasing,
        exactly 100 from the number of nonzero singular values on. Empty for
        an all-zero (or empty) spectrum.
    """
    tolerance = _check_tolerance(tolerance)
    s = np.sort(np.asarray(singular_values, np.float64).ravel())[::-1]
    if s.size == 0 or s[0] <= 0:
        return np.zeros(0)
    cumulative = np.cumsum(np.where(s > tolerance * s[0], s, 0.0))
    return 100.0 * (cumulative / cumulative[-1])


def energy_rank(
    singular_values: Any, energy: float, tolerance: float = DEFAULT_TOLERANCE
) -> int:
    """Returns the smallest rank whose singular values hold `energy` %.

    ``sum(s[:r]) >= energy / 100 * sum(s)`` for the singular values sorted
    in descending order, those at most ``tolerance * max(s)`` counted as
    zero (see :func:`energy_profile`). At 100 % this is the number of
    nonzero singular values.

    Args:
        singular_values: 1-D, non-negative (any order).
        energy: Percent of the energy to keep, in (0, 100].
        tolerance: Relative tolerance of a zero singular value.

    Returns:
        The rank; 0 for an all-zero spectrum.

    Raises:
        ConfigError: If `energy` is not in (0, 100] or `tolerance` not in
            [0, 1).
    """
    energy = check_energy(energy)
    profile = energy_profile(singular_values, tolerance)
    if profile.size == 0:
        return 0
    return int(np.searchsorted(profile, energy, side="left")) + 1


# ------------------------------------------------------------ zero units
def _zero_units(kernel: np.ndarray, tolerance: float) -> list[int]:
    """Returns the units whose column norm is <= tolerance * ||kernel||_F."""
    columns = kernel.reshape(-1, kernel.shape[-1]).astype(np.float64)
    norms = np.linalg.norm(columns, axis=0)
    return np.flatnonzero(norms <= tolerance * np.linalg.norm(columns)).tolist()


def _why_constant_stays(constant: float, reader: Any) -> str:
    """Returns why a channel reaching `reader` as `constant` stays, or ''."""
    if constant == 0:
        return ""
    if not reader.use_bias:
        return (
            f"it outputs the constant {constant:.4g} and {reader.name!r} has "
            "no bias to take it"
        )
    if isinstance(reader, keras.layers.Conv2D) and reader.padding != "valid":
        return (
            f"it outputs the constant {constant:.4g}, which {reader.name!r} "
            f"(padding={reader.padding!r}) sees zero-padded at its borders"
        )
    return ""


def _why_channel_stays(
    channel: int, zero: dict[str, set[int]], constants: dict[str, Any], group
) -> str:
    """Returns why a zero channel of a group stays, or '' if it can go."""
    for layer in group.producers:
        if channel not in zero[layer.name]:
            return (
                f"it is tied (by a merge) to unit {channel} of {layer.name!r}, "
                "which is not zero"
            )
    for reader in group.readers:
        constant = constants[reader.layer.name]
        if isinstance(constant, str):
            return constant
        why = _why_constant_stays(constant[channel], reader.layer)
        if why:
            return why
    return ""


def _remove_group_units(
    layer: Any,
    graph: ModelGraph,
    weights: dict[str, Any],
    tolerance: float,
) -> list[UnitRemoval]:
    """Removes the zero channels of `layer`'s group where possible.

    Returns one `UnitRemoval` per producer of the group (`layer` alone when
    its units cannot be removed).
    """
    own = weights[layer.name]
    units = own.kernel.shape[-1]
    zero_here = _zero_units(own.kernel, tolerance)
    if not zero_here:
        return [UnitRemoval(layer.name, units, units, (), ())]
    editable = {name for name, w in weights.items() if isinstance(w, LayerWeights)}
    group = channel_group(graph, layer, editable)
    if group.blocked:
        kept = tuple((n, group.blocked) for n in zero_here)
        return [UnitRemoval(layer.name, units, units, (), kept)]
    for sliced in group.sliced:
        weights.setdefault(sliced.name, ChannelwiseWeights.of(sliced))
    zero = {
        producer.name: set(_zero_units(weights[producer.name].kernel, tolerance))
        for producer in group.producers
    }
    constants = channel_constants(group, graph, weights)
    candidates = sorted(set.union(*zero.values()))
    why = {n: _why_channel_stays(n, zero, constants, group) for n in candidates}
    removed = [n for n in candidates if not why[n]]
    if len(removed) == units:
        why[removed.pop()] = "a layer keeps at least one unit"
    if removed:
        unit_removal.drop_channels(
            group,
            weights,
            removed,
            {name: value[removed] for name, value in constants.items()},
        )
    return [
        UnitRemoval(
            producer.name,
            units,
            units - len(removed),
            tuple(removed),
            tuple((n, why[n]) for n in sorted(zero[producer.name]) if why[n]),
        )
        for producer in group.producers
    ]


def remove_zero_units(
    model: keras.Model, tolerance: float = DEFAULT_TOLERANCE
) -> tuple[keras.Model, tuple[UnitRemoval, ...]]:
    """Returns a copy of `model` without the units of its layers that are zero.

    A Dense/Conv2D unit whose kernel column is zero (norm at most
    ``tolerance`` times the kernel's Frobenius norm) is removed with the
    next layer's inputs that read it, its constant output ``act(bias)``
    folded into that layer's bias; the copy computes the same outputs
    (exactly for zero columns). See the module docstring for where a unit
    is kept instead.

    Args:
        model: A built Functional or Sequential model.
        tolerance: Relative tolerance of a zero unit, in [0, 1).

    Returns:
        ``(copy, report)``: the report has one :class:`UnitRemoval` per
        Dense/Conv2D layer, in model order.

    Raises:
        ConfigError: If the model is subclassed or has no Dense/Conv2D
            layer, or `tolerance` is not in [0, 1).
    """
    tolerance = _check_tolerance(tolerance)
    graph = ModelGraph(model)
    layers = compressible_layers(model)
    weights: dict[str, Any] = {layer.name: LayerWeights.of(layer) for layer in layers}
    done: dict[str, UnitRemoval] = {}
    for layer in layers:
        if layer.name not in done:
            for entry in _remove_group_units(layer, graph, weights, tolerance):
                done[entry.name] = entry
    report = tuple(done[layer.name] for layer in layers)
    return unit_removal.rebuilt(model, weights), report


# ---------------------------------------------------------- decomposition
@dataclasses.dataclass(frozen=True)
class _Split:
    """The energy rank of one layer and the choice `low_rank_model` gets."""

    choice: RankChoice
    rank: int
    max_rank: int
    kept_energy: float


def _split(
    spec: LayerSpec, layer: Any, energy: float, tolerance: float, multiple: int
) -> _Split:
    """Returns the rank of `layer` holding `energy` % and whether it pays."""
    matrix = spec.matrix(layer.kernel)
    singular_values, _, _ = robust_svd(matrix, spec.name)
    rank = max(energy_rank(singular_values, energy, tolerance), 1)
    rank = int(round_up_to_multiple(rank, spec.max_rank, multiple))
    dense = stays_dense(rank, spec.alpha, spec.dense_cost, spec.offset)
    profile = energy_profile(singular_values, tolerance)
    kept = 100.0 if dense or profile.size == 0 else float(profile[rank - 1])
    choice = RankChoice(
        rank=spec.max_rank if dense else rank,
        dense=dense,
        matrix=keras.ops.convert_to_numpy(matrix),
    )
    return _Split(choice, rank, spec.max_rank, kept)


def decompose(
    model: keras.Model,
    energy: float,
    *,
    tolerance: float = DEFAULT_TOLERANCE,
    criterion: str = "storage",
    latency: LatencyTable | None = None,
    rank_multiple: int = 1,
) -> tuple[keras.Model, tuple[LayerDecomposition, ...]]:
    """Removes zero units, then splits each layer at an energy threshold.

    After :func:`remove_zero_units`, each Dense/Conv2D layer's matrix (Conv2D:
    scheme 1, ``(dh dw c) x n``) keeps the smallest rank r whose singular
    values hold `energy` % of their sum (:func:`energy_rank`, at least 1),
    rounded up to a multiple of `rank_multiple` (at most the full rank).
    The layer becomes a LowRankDense/LowRankConv2D of rank r (the rank-r
    truncation) where that is cheaper under `criterion` (storage: ``r (a +
    b) < a b``), else it stays a plain layer with its weights. At 100 % the
    result computes the same outputs (up to singular values below the
    tolerance). Other layers keep their weights.

    Args:
        model: A built Functional or Sequential model.
        energy: Percent of each layer's energy to keep, in (0, 100].
        tolerance: Relative tolerance of a zero unit and of a zero singular
            value, in [0, 1).
        criterion: What the split must lower: "storage", "flops" or
            "latency".
        latency: The measured latencies, needed by the latency criterion.
        rank_multiple: Ranks are multiples of it or a layer's full rank, >= 1
            (8 suits the tiles of LiteRT's CPU kernels).

    Returns:
        ``(low-rank model, report)``: one :class:`LayerDecomposition` per
        Dense/Conv2D layer, in model order. The model's plain form for
        export is ``keras_rank.layers.deployable.deployable_model(low-rank model)``.

    Raises:
        ConfigError: If `energy` is not in (0, 100], `tolerance` not in
            [0, 1), `rank_multiple` not an integer >= 1, or the model is
            subclassed or has no Dense/Conv2D layer.
        SVDError: If an SVD fails in float32 and in float64.
    """
    energy = check_energy(energy)
    check_rank_multiple(rank_multiple)
    pruned, removals = remove_zero_units(model, tolerance)
    specs = layer_specs(pruned, criterion, scheme=1, latency=latency)
    splits = {
        spec.name: _split(
            spec, pruned.get_layer(spec.name), energy, tolerance, rank_multiple
        )
        for spec in specs
    }
    result = low_rank_model(pruned, specs, {n: s.choice for n, s in splits.items()})
    before = {cost.name: cost for cost in costs.model_cost(model).layers}
    after = {cost.name: cost for cost in costs.model_cost(result).layers}
    report = tuple(
        LayerDecomposition(
            name=removal.name,
            kind=type(model.get_layer(removal.name)).__name__,
            units_before=removal.units_before,
            units_after=removal.units_after,
            zero_units_kept=removal.kept,
            rank=splits[removal.name].rank,
            max_rank=splits[removal.name].max_rank,
            kept_energy=splits[removal.name].kept_energy,
            low_rank=not splits[removal.name].choice.dense,
            params_before=before[removal.name].params,
            params_after=after[removal.name].params,
            macs_before=int(before[removal.name].macs),
            macs_after=int(after[removal.name].macs),
        )
        for removal in removals
    )
    return result, report
