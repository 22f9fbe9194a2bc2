"""Converting whole models between plain and factorized layers."""

import keras

from keras_rank.core.cloning import clone_replacing
from keras_rank.core.compressible import COMPRESSIBLE, why_not_compressible
from keras_rank.core.errors import ConfigError
from keras_rank.core.user_models import check_graph_model
from keras_rank.layers import FactorizedConv2D, FactorizedDense
from keras_rank.layers._factorized import FactorizedLayer


def why_left_as_is(layer: keras.layers.Layer) -> str | None:
    """Returns why `factorize_model` leaves `layer` as it is, or None.

    Args:
        layer: A layer of the model's top level.

    Returns:
        None for a layer that is factorized (or already is), else a short
        reason (`keras_rank.core.compressible.why_not_compressible`).
    """
    if isinstance(layer, FactorizedLayer):
        return None
    return why_not_compressible(layer)


def layers_left_as_is(model: keras.Model) -> list[dict[str, str]]:
    """Lists the layers with weights that `factorize_model` does not convert.

    Args:
        model: A Functional or Sequential model.

    Returns:
        One `{"layer", "class", "reason"}` dict per such layer, in model
        order.
    """
    return [
        {"layer": layer.name, "class": type(layer).__name__, "reason": reason}
        for layer in model.layers
        if layer.weights and (reason := why_left_as_is(layer)) is not None
    ]


def factorized_layers(model: keras.Model) -> list[FactorizedLayer]:
    """Returns the model's factorized layers in model order."""
    return [layer for layer in model.layers if isinstance(layer, FactorizedLayer)]


def factorize_model(model: keras.Model, *, frobenius_norm: bool = False) -> keras.Model:
    """Returns a copy of `model` with Dense and Conv2D layers factorized.

    The copy computes exactly what `model` computes (P = I, Q = I, and with
    Frobenius normalization the reference norm is the current one). Layers
    of other types, nested models and Conv2D layers with options the
    factorized form lacks are kept as they are (`layers_left_as_is` lists
    them).

    Args:
        model: A built functional or Sequential model.
        frobenius_norm: Give every factorized layer Frobenius normalization.

    Raises:
        ConfigError: The model is subclassed, or has no layer to factorize.
    """

    def converts(layer) -> bool:
        return not isinstance(layer, FactorizedLayer) and why_left_as_is(layer) is None

    def convert(layer):
        if not converts(layer):
            return None
        if type(layer) is keras.layers.Dense:
            return FactorizedDense.from_dense(layer, frobenius_norm=frobenius_norm)
        return FactorizedConv2D.from_conv2d(layer, frobenius_norm=frobenius_norm)

    check_graph_model(model)
    if not any(converts(layer) for layer in model.layers):
        raise ConfigError(
            f"Model '{model.name}' has no Dense or Conv2D layer to factorize; "
            f"factorizable: {COMPRESSIBLE}."
        )
    return clone_replacing(model, convert)


def to_plain_model(model: keras.Model) -> keras.Model:
    """Returns the compact model built from plain Keras layers only.

    Every factorized layer becomes the Dense or Conv2D of its compact sizes
    (`FactorizedLayer.to_plain`); the result computes the same outputs and
    needs nothing from keras_rank to load, run or export.
    """

    def convert(layer):
        return layer.to_plain() if isinstance(layer, FactorizedLayer) else None

    return clone_replacing(model, convert)
