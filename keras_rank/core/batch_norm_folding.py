"""Folding BatchNormalization into the Dense or convolution that feeds it.

At inference a BatchNormalization computes ``y = gamma (x - mean) / sqrt(var
+ eps) + beta`` per channel: an affine map, so after a linear layer it can
be folded into that layer's weights. With ``s = gamma / sqrt(var + eps)``,
output channel n of the layer gets its kernel column times ``s[n]`` and the
bias ``(bias[n] - mean[n]) s[n] + beta[n]``; the normalization goes. LiteRT's
converter does the same on export (`keras_rank.core.costs.folded_into` says
where); folding in Keras gives a plain model whose parameters and costs are
those of the file, and which tf_keras-based tools see without the
normalization.
"""

import keras
import numpy as np

from keras_rank.core.cloning import clone_splitting
from keras_rank.core.costs import build_input_shape, folded_into


def _channels_last(bn: keras.layers.BatchNormalization) -> bool:
    axes = bn.axis if isinstance(bn.axis, (list, tuple)) else [bn.axis]
    rank = len(bn.input.shape)
    return [axis % rank for axis in axes] == [rank - 1]


def _scale_and_shift(bn: keras.layers.BatchNormalization) -> tuple[np.ndarray, ...]:
    mean = keras.ops.convert_to_numpy(bn.moving_mean).astype(np.float64)
    variance = keras.ops.convert_to_numpy(bn.moving_variance).astype(np.float64)
    gamma = keras.ops.convert_to_numpy(bn.gamma) if bn.scale else 1.0
    beta = keras.ops.convert_to_numpy(bn.beta) if bn.center else 0.0
    scale = gamma / np.sqrt(variance + bn.epsilon)
    return scale, beta - mean * scale


def _folded(layer: keras.layers.Layer, bn: keras.layers.BatchNormalization):
    """A copy of `layer` with a bias that computes ``bn(layer(x))``."""
    scale, shift = _scale_and_shift(bn)
    config = {**layer.get_config(), "use_bias": True}
    folded = layer.__class__.from_config(config)
    folded.build(build_input_shape(layer))
    weights = [np.asarray(w, np.float64) for w in layer.get_weights()]
    bias = weights.pop() if layer.use_bias else np.zeros(scale.shape)
    kernel = weights[-1]  # Separable: the pointwise kernel; else the kernel.
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        # Output channel c * multiplier + m comes from kernel[..., c, m].
        weights[-1] = kernel * scale.reshape(kernel.shape[-2:])
    else:
        weights[-1] = kernel * scale
    weights.append(bias * scale + shift)
    dtype = layer.get_weights()[0].dtype
    folded.set_weights([w.astype(dtype) for w in weights])
    return folded


def fold_batch_norms(model: keras.Model) -> tuple[keras.Model, tuple[str, ...]]:
    """Returns a copy of `model` with its foldable BatchNormalizations folded.

    A BatchNormalization over the last axis is folded into the layer that
    feeds it where LiteRT's converter would fold it
    (`keras_rank.core.costs.folded_into`: a Dense or a (depthwise,
    separable) convolution without activation whose only consumer it is).
    The copy computes the same inference outputs to float rounding (the
    folding is done in float64). Other layers, and normalizations that
    cannot be folded, are copied with their weights.

    Args:
        model: A built Functional or Sequential model, for inference.

    Returns:
        ``(model, names of the folded normalizations)``; the model is
        `model` itself when there is nothing to fold.
    """
    into = {}
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and _channels_last(layer):
            producer = folded_into(layer)
            if producer is not None:
                into[producer.name] = layer
    if not into:
        return model, ()
    removed = {bn.name for bn in into.values()}

    def split(layer):
        if layer.name in removed:
            return ()
        if layer.name in into:
            return (_folded(layer, into[layer.name]),)
        return None

    return clone_splitting(model, split), tuple(sorted(removed))
