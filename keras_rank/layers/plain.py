"""A model with low-rank layers as a model of plain Keras layers only."""

import keras

from keras_rank.core.cloning import clone_splitting
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
    return clone_splitting(
        model,
        lambda layer: layer.to_plain() if isinstance(layer, LowRankLayer) else None,
    )
