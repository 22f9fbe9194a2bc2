"""Which layers keras_rank compresses, and which hold a weight matrix at all.

One rule for every method: a plain Dense layer, or a plain Conv2D with
channels_last, no dilation and no groups, has a compressed form (factorized
P W' Q, low-rank U V^T, units removed). Every Dense and Conv2D layer has a
weight matrix (`keras_rank.core.layer_matrices`), compressible or not.
"""

import keras

from keras_rank.core.errors import ConfigError

COMPRESSIBLE = "Dense, and Conv2D with channels_last, no dilation and no groups"
"""The layers every method compresses, in words (for error messages)."""

MATRIX_LAYERS = (keras.layers.Dense, keras.layers.Conv2D)
"""Layer types whose kernel is one weight matrix (subclasses excluded)."""


def why_not_compressible(layer: keras.layers.Layer) -> str | None:
    """Returns why a plain layer has no compressed form, or None if it has one.

    Args:
        layer: A layer of a model's top level.

    Returns:
        None for a compressible Dense or Conv2D layer, else a short reason.
    """
    if type(layer) is keras.layers.Dense:
        return None
    if isinstance(layer, keras.Model):
        return "nested model: its layers are left as they are"
    if type(layer) is keras.layers.Conv2D:
        if tuple(layer.dilation_rate) != (1, 1) or layer.groups != 1:
            return "Conv2D with dilation or groups has no factorized form"
        if layer.data_format != "channels_last":
            return "Conv2D in channels_first has no factorized form"
        return None
    return f"{type(layer).__name__} has no factorized form"


def compressible_layers(
    model: keras.Model, *, required: bool = True
) -> list[keras.layers.Layer]:
    """Returns the model's Dense and Conv2D layers that have a compressed form.

    Args:
        model: A Functional or Sequential model.
        required: Whether having none is an error (else an empty list).

    Raises:
        ConfigError: The model has none and `required` is set.
    """
    layers = [layer for layer in model.layers if why_not_compressible(layer) is None]
    if not layers and required:
        raise ConfigError(
            f"Model '{model.name}' has no layer LC can compress; it compresses "
            f"{COMPRESSIBLE}."
        )
    return layers


def matrix_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """Returns the model's Dense and Conv2D layers (any options), in model order."""
    return [layer for layer in model.layers if type(layer) in MATRIX_LAYERS]


def matrix_layer(model: keras.Model, name: str) -> keras.layers.Layer:
    """Returns `model`'s Dense or Conv2D layer called `name`.

    Raises:
        ConfigError: No layer has that name, or it is not Dense/Conv2D; the
            message lists the names allowed.
    """
    allowed = [layer.name for layer in matrix_layers(model)]
    if name not in allowed:
        found = {layer.name: type(layer).__name__ for layer in model.layers}
        what = (
            f"it is a {found[name]}" if name in found else "the model has no such layer"
        )
        raise ConfigError(
            f"Expected layer: the name of a Dense or Conv2D layer of the model, "
            f"one of {allowed}. Received: layer={name!r} ({what})."
        )
    return model.get_layer(name)
