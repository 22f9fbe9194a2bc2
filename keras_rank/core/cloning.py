"""Copying a Keras model with some of its layers replaced."""

import keras


def clone_replacing(model: keras.Model, convert) -> keras.Model:
    """Clones `model`, replacing each layer for which `convert` returns one.

    Args:
        model: A Functional or Sequential model.
        convert: Returns the built layer that takes a layer's place (same
            name, so that variable paths stay stable), or None to copy it.

    Returns:
        The clone; layers that are copied keep their weights.
    """
    replaced = set()

    def clone_function(layer):
        if not isinstance(layer, keras.Layer):
            return layer  # An operation (x + 3.0): no state, its name kept.
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
