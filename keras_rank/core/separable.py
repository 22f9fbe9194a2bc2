"""SeparableConv2D layers split into the two layers they compute.

A SeparableConv2D is a DepthwiseConv2D (its depthwise kernel, no bias)
followed by a 1x1 Conv2D (its pointwise kernel, its bias and activation);
LiteRT runs it as those two ops. Split in the model, the 1x1 Conv2D is a
matrix layer every method compresses, and the depthwise part is a layer
that carries channels (`keras_rank.core.channel_groups`).
"""

import keras

from keras_rank.core.cloning import clone_splitting

SPLIT_SUFFIXES = ("_depthwise", "_pointwise")
"""The names of the two layers: the separable layer's name with these."""


def _halves(layer: keras.layers.SeparableConv2D) -> tuple[keras.layers.Layer, ...]:
    """Returns the DepthwiseConv2D and the 1x1 Conv2D of `layer`, built, weighted."""
    depthwise = keras.layers.DepthwiseConv2D(
        layer.kernel_size,
        strides=layer.strides,
        padding=layer.padding,
        depth_multiplier=layer.depth_multiplier,
        data_format=layer.data_format,
        dilation_rate=layer.dilation_rate,
        use_bias=False,
        name=layer.name + SPLIT_SUFFIXES[0],
        dtype=layer.dtype_policy,
    )
    pointwise = keras.layers.Conv2D(
        layer.filters,
        1,
        data_format=layer.data_format,
        activation=layer.activation,
        use_bias=layer.use_bias,
        name=layer.name + SPLIT_SUFFIXES[1],
        dtype=layer.dtype_policy,
    )
    input_shape = tuple(layer.get_build_config()["input_shape"])
    depthwise.build(input_shape)
    pointwise.build(depthwise.compute_output_shape(input_shape))
    depthwise.set_weights([layer.depthwise_kernel])
    pointwise.set_weights(
        [layer.pointwise_kernel, *([layer.bias] if layer.use_bias else [])]
    )
    return depthwise, pointwise


def split_separable_convs(model: keras.Model) -> keras.Model:
    """Returns a copy of `model` with each SeparableConv2D split in two.

    The copy computes the same outputs: ``s`` becomes ``s_depthwise``
    (DepthwiseConv2D) then ``s_pointwise`` (1x1 Conv2D), with s's weights;
    every other layer is copied with its weights, operations are kept.

    Args:
        model: A built Functional or Sequential model.
    """
    return clone_splitting(
        model,
        lambda layer: (
            _halves(layer) if type(layer) is keras.layers.SeparableConv2D else None
        ),
    )
