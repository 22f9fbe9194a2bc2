"""The deployable form of any model keras_rank trains: plain Keras layers only.

A trained model may hold factorized layers P W' Q (DLRA) or low-rank layers
U V^T (LC). Phones run neither: what ships is the same function written
with plain Dense / Conv2D layers of the compact sizes. Its parameters are
the honest size of a method's result; a method's own count can differ
(DLRA counts W', while the plain layer that expresses a fused column group
keeps its full input width).
"""

from typing import Any

import keras

from keras_rank.core import costs
from keras_rank.core.batch_norm_folding import fold_batch_norms
from keras_rank.layers import low_rank_to_plain_model
from keras_rank.layers._low_rank import LowRankLayer
from keras_rank.layers.factorize import factorized_layers, to_plain_model


def deployable_model(
    model: keras.Model, *, fold_batch_norm: bool = False
) -> keras.Model:
    """Returns `model` written with plain Keras layers only.

    Factorized layers are folded into the plain layers of their compact
    sizes and low-rank layers are split into their two plain layers; a
    model with neither is returned as it is (not copied). The result
    computes the same outputs and loads without keras_rank.

    Args:
        model: A built Functional or Sequential model.
        fold_batch_norm: Also fold each BatchNormalization into the layer
            that feeds it where LiteRT's converter would
            (`keras_rank.core.batch_norm_folding`): the model then computes
            the same inference outputs with the parameters of the file.

    Returns:
        The plain model.

    Raises:
        ConfigError: If the model is subclassed and has layers to convert.
    """
    if factorized_layers(model):
        model = to_plain_model(model)
    if any(isinstance(layer, LowRankLayer) for layer in model.layers):
        model = low_rank_to_plain_model(model)
    if fold_batch_norm:
        model, _ = fold_batch_norms(model)
    return model


def deployable_size(model: keras.Model) -> dict[str, Any]:
    """Returns the parameters and FLOPs of `model`'s deployable form.

    Args:
        model: A built Functional or Sequential model.

    Returns:
        ``{"params", "flops_mac1", "flops_mac2"}`` of `deployable_model(model)`,
        counted with `keras_rank.core.costs`.
    """
    cost = costs.model_cost(deployable_model(model))
    return {
        "params": cost.params,
        "flops_mac1": cost.flops_mac1,
        "flops_mac2": cost.flops_mac2,
    }
