"""Parameter and FLOP counts per layer and per model.

Counts are per example (batch size 1) and cover the weight products only:

* MACs: multiply-accumulates of the product of the inputs with the weights.
  Bias adds, activations, pooling and dropout are not counted. Depthwise and
  separable convolutions count their depthwise (and pointwise) products.
  BatchNormalization counts 0 where LiteRT's converter folds it into the
  Dense or convolution that feeds it (that layer's output goes only to it),
  and one multiply-add per element elsewhere; its cost's ``note`` says
  which.
* ``flops_mac1``: one FLOP per multiply-add, i.e. ``MACs``; the convention of
  Idelbayev & Carreira-Perpinan 2020.
* ``flops_mac2``: two FLOPs per multiply-add, i.e. ``2 * MACs``; the convention
  of Lee et al. 2021, whose MLP 784-500x5-10 has 2.79 M FLOPs
  (``2 * 1,397,000``).
* Parameters: ``layer.count_params()``, every weight including biases and
  non-trainable ones, unless a parameter rule is registered for the layer's
  class (e.g. factorized layers count only their trainable factors, not the
  index vectors that encode P and Q).

MAC and parameter rules are looked up by layer class along the MRO, so a
module defining a new layer adds its rules with :func:`register_cost` and
:func:`register_params` without editing this one.
Layers without weights cost 0 MACs; layers with weights and no rule have
``macs=None`` and are listed in :attr:`ModelCost.uncounted`.
"""

import dataclasses
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import keras

from keras_rank.core.errors import ConfigError

MacRule = Callable[[keras.layers.Layer], "int | Macs"]
ParamsRule = Callable[[keras.layers.Layer], int]

FLOPS_CONVENTIONS: dict[str, str] = {
    "flops_mac1": (
        "1 FLOP per multiply-add of the weight products, bias adds not counted "
        "(Idelbayev & Carreira-Perpinan 2020)."
    ),
    "flops_mac2": (
        "2 FLOPs per multiply-add of the weight products, bias adds not counted "
        "(Lee et al. 2021)."
    ),
}

_RULES: dict[type, MacRule] = {}
_PARAMS_RULES: dict[type, ParamsRule] = {}


class Macs(NamedTuple):
    """What a MAC rule returns when the count needs a word of explanation.

    Attributes:
        count: Multiply-accumulates per example.
        note: Why the count is what it is, e.g. ``"folded into 'conv'"``.
    """

    count: int
    note: str


@dataclasses.dataclass(frozen=True)
class LayerCost:
    """Cost of one layer for one example.

    Attributes:
        name: Layer name, prefixed with ``"<nested model>/"`` for layers of
            nested models.
        kind: Class name of the layer, e.g. ``"Dense"``.
        params: Number of parameters, including biases and non-trainable ones,
            or the value of the parameter rule registered for the class.
        macs: Multiply-accumulates of the weight product, or None when the layer
            has weights but no MAC rule is registered for its class.
        note: What the rule says of the count (e.g. a folded
            BatchNormalization); empty for most layers.

    """

    name: str
    kind: str
    params: int
    macs: int | None
    note: str = ""

    @property
    def flops_mac1(self) -> int | None:
        """FLOPs counting one per multiply-add (equal to ``macs``)."""
        return self.macs

    @property
    def flops_mac2(self) -> int | None:
        """FLOPs counting two per multiply-add (``2 * macs``)."""
        return None if self.macs is None else 2 * self.macs

    def as_dict(self) -> dict[str, Any]:
        """Return the cost as a JSON-serializable dict (``note`` only if any)."""
        data = {
            "name": self.name,
            "kind": self.kind,
            "params": self.params,
            "macs": self.macs,
            "flops_mac1": self.flops_mac1,
            "flops_mac2": self.flops_mac2,
        }
        return {**data, "note": self.note} if self.note else data


@dataclasses.dataclass(frozen=True)
class ModelCost:
    """Costs of the layers of a model, in model order, with totals.

    Attributes:
        layers: Cost of each weight or compute layer, nested models flattened.

    """

    layers: tuple[LayerCost, ...]

    @property
    def params(self) -> int:
        """Total number of parameters."""
        return sum(layer.params for layer in self.layers)

    @property
    def macs(self) -> int:
        """Total MACs; layers in ``uncounted`` contribute 0."""
        return sum(layer.macs or 0 for layer in self.layers)

    @property
    def flops_mac1(self) -> int:
        """Total FLOPs counting one per multiply-add."""
        return self.macs

    @property
    def flops_mac2(self) -> int:
        """Total FLOPs counting two per multiply-add."""
        return 2 * self.macs

    @property
    def uncounted(self) -> tuple[str, ...]:
        """Names of the layers that have weights but no MAC rule."""
        return tuple(layer.name for layer in self.layers if layer.macs is None)

    def as_dict(self) -> dict[str, Any]:
        """Return totals, conventions and per-layer costs as a JSON-able dict."""
        return {
            "params": self.params,
            "flops_mac1": self.flops_mac1,
            "flops_mac2": self.flops_mac2,
            "flops_conventions": dict(FLOPS_CONVENTIONS),
            "uncounted": list(self.uncounted),
            "layers": [layer.as_dict() for layer in self.layers],
        }


def _check_layer_class(layer_class: object, function: str) -> None:
    """Raise unless ``layer_class`` is a subclass of ``keras.layers.Layer``."""
    if not (
        isinstance(layer_class, type) and issubclass(layer_class, keras.layers.Layer)
    ):
        raise ConfigError(
            f"{function} expects a subclass of keras.layers.Layer, got {layer_class!r}."
        )


def register_cost(
    layer_class: type[keras.layers.Layer],
) -> Callable[[MacRule], MacRule]:
    """Register a MAC rule for a layer class and its subclasses.

    The rule of the nearest class along a layer's MRO wins, so a subclass may
    override the rule of its base. Registering a class again replaces its rule.

    Example:
        >>> @register_cost(MyLowRankDense)
        ... def _low_rank_dense_macs(layer):
        ...     return layer.rank * (layer.input_dim + layer.units)

    Args:
        layer_class: A subclass of ``keras.layers.Layer``.

    Returns:
        A decorator that registers ``fn(layer) -> int`` (MACs per example of a
        built layer; or a `Macs` with a note) and returns it unchanged.

    Raises:
        ConfigError: If ``layer_class`` is not a Keras layer class.

    """
    return _registrar(_RULES, layer_class, "register_cost")


def register_params(
    layer_class: type[keras.layers.Layer],
) -> Callable[[ParamsRule], ParamsRule]:
    """Register a parameter-count rule for a layer class and its subclasses.

    Without a rule, a layer's parameters are ``layer.count_params()``. Lookup
    and replacement work as for :func:`register_cost`.

    Example:
        >>> @register_params(MyMaskedDense)
        ... def _masked_dense_params(layer):
        ...     return int(layer.kernel.shape.num_elements())  # not the mask

    Args:
        layer_class: A subclass of ``keras.layers.Layer``.

    Returns:
        A decorator that registers ``fn(layer) -> int`` (parameters of a built
        layer) and returns it unchanged.

    Raises:
        ConfigError: If ``layer_class`` is not a Keras layer class.

    """
    return _registrar(_PARAMS_RULES, layer_class, "register_params")


def _registrar(table: dict, layer_class: type, caller: str) -> Callable:
    """Returns a decorator that stores its rule in `table` for `layer_class`."""
    _check_layer_class(layer_class, caller)

    def decorator(rule):
        table[layer_class] = rule
        return rule

    return decorator


def _find_rule(
    layer: keras.layers.Layer, rules: dict[type, Callable[[keras.layers.Layer], int]]
) -> Callable[[keras.layers.Layer], int] | None:
    """Return the rule of the nearest registered class in the layer's MRO."""
    for cls in type(layer).__mro__:
        if cls in rules:
            return rules[cls]
    return None


def _describe(layer: keras.layers.Layer) -> str:
    """Name a layer for error messages, e.g. ``layer 'dense_1' (Dense)``."""
    return f"layer {layer.name!r} ({type(layer).__name__})"


def build_input_shape(layer: keras.layers.Layer) -> tuple[int | None, ...]:
    """Return the input shape, batch included, the layer was built with."""
    config = layer.get_build_config() or {}
    if "input_shape" not in config:
        raise ConfigError(
            f"Cannot count MACs of {_describe(layer)}: it was not built on a "
            "single input shape."
        )
    return tuple(config["input_shape"])


def known_product(dims: Sequence[int | None], layer: keras.layers.Layer) -> int:
    """Multiply dimensions, or raise if one of them is unknown."""
    if any(dim is None for dim in dims):
        raise ConfigError(
            f"Cannot count MACs of {_describe(layer)}: dimensions {tuple(dims)} "
            "are not all known; build the model with a fully defined input_shape."
        )
    return math.prod(dims)


@register_cost(keras.layers.Dense)
def _dense_macs(layer: keras.layers.Dense) -> int:
    """MACs of Dense m->n: ``m * n`` per position (one position for 2-D input)."""
    input_shape = build_input_shape(layer)
    positions = known_product(input_shape[1:-1], layer)
    return positions * input_shape[-1] * layer.units


def _conv_geometry(layer: keras.layers.Layer) -> tuple[int, int]:
    """Returns a convolution's input channels and number of output positions."""
    input_shape = build_input_shape(layer)
    output_shape = layer.compute_output_shape(input_shape)
    if layer.data_format == "channels_last":
        in_channels, out_positions = input_shape[-1], output_shape[1:-1]
    else:
        in_channels, out_positions = input_shape[1], output_shape[2:]
    return known_product([in_channels], layer), known_product(out_positions, layer)


@register_cost(keras.layers.Conv1D)
@register_cost(keras.layers.Conv2D)
@register_cost(keras.layers.Conv3D)
def _conv_macs(layer: keras.layers.Layer) -> int:
    """MACs of ConvND: output positions * kernel size * (cin / groups) * cout."""
    in_channels, positions = _conv_geometry(layer)
    per_position = math.prod(layer.kernel_size) * (in_channels // layer.groups)
    return positions * per_position * layer.filters


@register_cost(keras.layers.DepthwiseConv1D)
@register_cost(keras.layers.DepthwiseConv2D)
def _depthwise_macs(layer: keras.layers.Layer) -> int:
    """MACs of a depthwise conv: output positions * kernel size * cin * multiplier."""
    in_channels, positions = _conv_geometry(layer)
    kernel = math.prod(layer.kernel_size)
    return positions * kernel * in_channels * layer.depth_multiplier


@register_cost(keras.layers.SeparableConv1D)
@register_cost(keras.layers.SeparableConv2D)
def _separable_macs(layer: keras.layers.Layer) -> int:
    """MACs of a separable conv: its depthwise part, then its pointwise (1x1) part.

    Output positions * cin * multiplier * (kernel size + filters).
    """
    in_channels, positions = _conv_geometry(layer)
    depthwise_channels = in_channels * layer.depth_multiplier
    kernel = math.prod(layer.kernel_size)
    return positions * depthwise_channels * (kernel + layer.filters)


_FOLDS_BATCH_NORM = [
    keras.layers.Dense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv1D,
    keras.layers.SeparableConv2D,
]
"""Layers LiteRT's converter folds a following BatchNormalization into
(`register_batch_norm_folding` adds more).

Not Conv3D: after it the converter keeps the normalization's MUL and ADD.
"""


def register_batch_norm_folding(layer_class: type[keras.layers.Layer]) -> None:
    """Declares that a BatchNormalization after `layer_class` folds on export.

    For a layer whose exported form ends in a Dense or convolution (e.g. a
    low-rank pair), so that the training-time model's count is the exported
    model's.

    Args:
        layer_class: A subclass of ``keras.layers.Layer``.

    Raises:
        ConfigError: If ``layer_class`` is not a Keras layer class.
    """
    _check_layer_class(layer_class, "register_batch_norm_folding")
    if layer_class not in _FOLDS_BATCH_NORM:
        _FOLDS_BATCH_NORM.append(layer_class)


def folded_into(layer: keras.layers.Layer) -> keras.layers.Layer | None:
    """Returns the layer a BatchNormalization folds into on export, if any.

    LiteRT's converter folds the inference-time scale and shift into the
    weights of the Dense or convolution that feeds the normalization, when
    that layer has no activation and its only consumer is the normalization
    (a model graph with one call of each).
    """
    nodes = getattr(layer, "_inbound_nodes", [])
    if len(nodes) != 1 or len(nodes[0].parent_nodes) != 1:
        return None
    producer = nodes[0].parent_nodes[0].operation
    if (
        not isinstance(producer, tuple(_FOLDS_BATCH_NORM))
        or len(producer._outbound_nodes) != 1
    ):
        return None
    if producer.get_config().get("activation", "linear") != "linear":
        return None
    return producer


@register_cost(keras.layers.BatchNormalization)
def _batch_norm_macs(layer: keras.layers.BatchNormalization) -> Macs:
    """MACs of BatchNormalization: 0 when folded on export, else 1 per element."""
    producer = folded_into(layer)
    if producer is not None:
        return Macs(0, f"folded into {producer.name!r} on export")
    elements = known_product(build_input_shape(layer)[1:], layer)
    return Macs(elements, "not folded: one multiply-add per element")


def _layer_macs(layer: keras.layers.Layer) -> tuple[int | None, str]:
    """MACs of a built layer and its rule's note.

    Its rule's count, else 0 without weights, else None.
    """
    rule = _find_rule(layer, _RULES)
    if rule is not None:
        macs = rule(layer)
        if isinstance(macs, Macs):
            return int(macs.count), macs.note
        return int(macs), ""
    return (None if layer.weights else 0), ""


def _layer_params(layer: keras.layers.Layer) -> int:
    """Parameters of a built layer: its rule, else ``count_params()``."""
    rule = _find_rule(layer, _PARAMS_RULES)
    return int(rule(layer)) if rule is not None else layer.count_params()


def layer_cost(layer: keras.layers.Layer) -> LayerCost:
    """Count the parameters and MACs of one built layer.

    Args:
        layer: A built Keras layer.

    Returns:
        The layer's cost; ``macs`` is None if it has weights but no rule.

    Raises:
        ConfigError: If the layer is not built, or its MAC rule needs input
            dimensions that are unknown.

    """
    if not layer.built:
        raise ConfigError(
            f"Cannot count the costs of {_describe(layer)}: it is not built. "
            "Build the model or call it on an input first."
        )
    macs, note = _layer_macs(layer)
    return LayerCost(
        name=layer.name,
        kind=type(layer).__name__,
        params=_layer_params(layer),
        macs=macs,
        note=note,
    )


def _walk(model: keras.Model, prefix: str) -> Iterator[LayerCost]:
    """Yield the costs of a model's layers, descending into nested models."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            yield from _walk(layer, f"{prefix}{layer.name}/")
        else:
            cost = layer_cost(layer)
            yield dataclasses.replace(cost, name=prefix + cost.name)


def model_cost(model: keras.Model) -> ModelCost:
    """Count the parameters and MACs of every layer of a built model.

    Nested models are walked recursively; their layers are named
    ``"<nested model>/<layer>"``. Input layers are skipped.

    Args:
        model: A built Keras model.

    Returns:
        The per-layer costs and their totals.

    Raises:
        ConfigError: If the model or one of its layers is not built.

    """
    if not model.built:
        raise ConfigError(
            f"Cannot count the costs of model {model.name!r}: it is not built. "
            "Build the model or call it on an input first."
        )
    return ModelCost(layers=tuple(_walk(model, prefix="")))


def _format_count(count: int | None) -> str:
    """Format a count with thousands separators, or "n/a" for None."""
    return "n/a" if count is None else f"{count:,}"


def format_cost_table(cost: ModelCost) -> str:
    """Format model costs as a fixed-width text table with a total row.

    Args:
        cost: The result of :func:`model_cost`.

    Returns:
        Lines of ``layer, kind, params, MACs``, a total row, both FLOP
        conventions, the rules' notes (e.g. a folded BatchNormalization) and,
        if any, the layers whose MACs were not counted.

    """
    header = ("layer", "kind", "params", "MACs")
    rows = [
        (layer.name, layer.kind, _format_count(layer.params), _format_count(layer.macs))
        for layer in cost.layers
    ]
    total = ("total", "", _format_count(cost.params), _format_count(cost.macs))
    columns = zip(header, *rows, total, strict=True)
    widths = [max(map(len, column)) for column in columns]

    def line(cells: Sequence[str]) -> str:
        padded = [
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    separator = "-" * len(line(["-" * width for width in widths]))
    lines = [line(header), separator, *map(line, rows), separator, line(total)]
    lines.append(
        f"FLOPs: {cost.flops_mac1:,} (flops_mac1, 1 per multiply-add); "
        f"{cost.flops_mac2:,} (flops_mac2, 2 per multiply-add)"
    )
    lines += [f"{layer.name}: {layer.note}" for layer in cost.layers if layer.note]
    if cost.uncounted:
        lines.append(f"MACs not counted (no rule): {', '.join(cost.uncounted)}")
    return "\n".join(lines)
