"""Converting whole models between plain and factorized layers."""

import keras

from keras_rank.errors import ConfigError
from keras_rank.layers import FactorizedConv2D, FactorizedDense
from keras_rank.layers._factorized import FactorizedLayer


def factorized_layers(model: keras.Model) -> list[FactorizedLayer]:
    """Returns the model's factorized layers in model order."""
    return [layer for layer in model.layers if isinstance(layer, FactorizedLayer)]


def _clone(model: keras.Model, convert) -> keras.Model:
    """Clones `model`, replacing each layer for which `convert` returns one."""
    replaced = set()

    def clone_function(layer):
        new = convert(layer)
        if new is None:
            return layer.__class__.from_config(layer.get_config())
        replaced.add(layer.name)
        return new

    clone = keras.models.clone_model(model, clone_function=clone_function)
    for old in model.layers:
        if old.name not in replaced and old.weights:
            clone.get_layer(old.name).set_weights(old.get_weights())
    return clone


def factorize_model(model: keras.Model, *, frobenius_norm: bool = False) -> keras.Model:
    """Returns a copy of `model` with Dense and Conv2D layers factorized.

    The copy computes exactly what `model` computes (P = I, Q = I, and with
    Frobenius normalization the reference norm is the current one).

    Args:
        model: A built functional or Sequential model.
        frobenius_norm: Give every factorized layer Frobenius normalization.

    Raises:
        ConfigError: The model has no Dense or Conv2D layer.
    """

    def convert(layer):
        if type(layer) is keras.layers.Dense:
            return FactorizedDense.from_dense(layer, frobenius_norm=frobenius_norm)
        if type(layer) is keras.layers.Conv2D:
            return FactorizedConv2D.from_conv2d(layer, frobenius_norm=frobenius_norm)
        return None

    if not any(
        type(layer) in (keras.layers.Dense, keras.layers.Conv2D)
        for layer in model.layers
    ):
        raise ConfigError(
            f"Model '{model.name}' has no Dense or Conv2D layer to factorize; "
            "factorizable layer types: Dense, Conv2D."
        )
    return _clone(model, convert)


def to_plain_model(model: keras.Model) -> keras.Model:
    """Returns the compact model built from plain Keras layers only.

    Every factorized layer becomes the Dense or Conv2D of its compact sizes
    (`FactorizedLayer.to_plain`); the result computes the same outputs and
    needs nothing from keras_rank to load, run or export.
    """

    def convert(layer):
        return layer.to_plain() if isinstance(layer, FactorizedLayer) else None

    return _clone(model, convert)
