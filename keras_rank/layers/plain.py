"""A model with low-rank layers as a model of plain Keras layers only."""

import keras

from keras_rank.core.user_models import check_graph_model
from keras_rank.layers._low_rank import LowRankLayer


def low_rank_to_plain_model(model: keras.Model) -> keras.Model:
    """Return a copy of a model with every low-rank layer split in two plain ones.

    Each top-level LowRankDense / LowRankConv2D ``x`` becomes its
    :meth:`~LowRankLayer.to_plain` pair ``x_u`` then ``x_v`` (Dense + Dense,
    Conv2D + Conv2D), wired where ``x`` was; every other layer is copied from
    its config with its weights. The copy computes the same outputs, has the
    same kind (Sequential stays Sequential) and name, and a ``.keras`` file
    of it loads without keras_rank. A layer called several times is split
    once, its two plain layers shared the same way. Layers of nested models
    are copied as they are.

    Args:
        model: A built Functional or Sequential model.

    Returns:
        The plain model, built, with the weights set.

    Raises:
        ConfigError: If the model is subclassed.
    """
    check_graph_model(model)
    pairs: dict[int, tuple[keras.layers.Layer, keras.layers.Layer]] = {}
    copies: list[tuple[keras.layers.Layer, keras.layers.Layer]] = []

    def plain_pair(layer: LowRankLayer) -> tuple[keras.layers.Layer, ...]:
        if id(layer) not in pairs:
            pairs[id(layer)] = layer.to_plain()
        return pairs[id(layer)]

    def copy(layer: keras.layers.Layer) -> keras.layers.Layer:
        if isinstance(layer, LowRankLayer) or not isinstance(layer, keras.Layer):
            # Low-rank layers are split by `call` below (or the Sequential
            # branch); operations (x + 3.0) hold no state and keep their names.
            return layer
        new = layer.__class__.from_config(layer.get_config())
        copies.append((layer, new))
        return new

    if isinstance(model, keras.Sequential):
        layers = []
        for layer in model.layers:
            if isinstance(layer, LowRankLayer):
                layers.extend(plain_pair(layer))
            else:
                layers.append(copy(layer))
        spec = model.inputs[0]
        inputs = keras.Input(batch_shape=spec.shape, dtype=spec.dtype, name=spec.name)
        plain = keras.Sequential([inputs, *layers], name=model.name)
    else:

        def call(layer: keras.layers.Layer, *args, **kwargs):
            if isinstance(layer, LowRankLayer):
                first, second = plain_pair(layer)
                return second(first(*args, **kwargs))
            return layer(*args, **kwargs)

        plain = keras.models.clone_model(model, clone_function=copy, call_function=call)
    for old, new in copies:
        new.set_weights(old.get_weights())
    return plain
