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


def clone_splitting(model: keras.Model, split) -> keras.Model:
    """Clones `model`, calling a chain of layers in place of each layer `split` splits.

    Args:
        model: A Functional or Sequential model (a Sequential stays one).
        split: Returns the built layers, with their weights, that are called
            in turn where a layer was (none: the layer is removed and its
            single input passes through); or None to copy the layer with its
            weights. Called once per layer: a layer called several times
            has its chain shared the same way.

    Returns:
        The clone; operations (x + 3.0) are kept as they are.
    """
    chains: dict[int, tuple | None] = {}
    copies = []

    def chain_of(layer):
        if id(layer) not in chains:
            chains[id(layer)] = split(layer)
        return chains[id(layer)]

    def copy(layer):
        if not isinstance(layer, keras.Layer) or chain_of(layer) is not None:
            return layer  # An operation (no state), or split by `call`.
        new = layer.__class__.from_config(layer.get_config())
        copies.append((layer, new))
        return new

    if isinstance(model, keras.Sequential):
        layers = []
        for layer in model.layers:
            chain = chain_of(layer)
            layers.extend(chain if chain is not None else [copy(layer)])
        spec = model.inputs[0]
        inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name)
        clone = keras.Sequential([inputs, *layers], name=model.name)
    else:

        def call(layer, *args, **kwargs):
            chain = chain_of(layer) if isinstance(layer, keras.Layer) else None
            if chain is None:
                return layer(*args, **kwargs)
            if not chain:
                return args[0]
            outputs = chain[0](*args, **kwargs)
            for link in chain[1:]:
                outputs = link(outputs)
            return outputs

        clone = keras.models.clone_model(model, clone_function=copy, call_function=call)
    for old, new in copies:
        new.set_weights(old.get_weights())
    return clone
