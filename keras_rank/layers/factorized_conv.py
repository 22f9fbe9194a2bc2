"""FactorizedConv2D: a Conv2D layer kept as P W' Q (Lee et al. 2021, DLRA)."""

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rank.core.costs import build_input_shape, known_product, register_cost
from keras_rank.core.errors import ConfigError
from keras_rank.layers._factorized import (
    FactorizedLayer,
    check_positive,
    expand_columns,
    fold_input_channels,
    is_int,
)
from keras_rank.layers.state import FactorState

_PADDINGS = ("valid", "same")


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    """Return an int or a pair of ints >= 1 as a pair, else raise."""
    pair = (value, value) if is_int(value) else value
    try:
        ok = len(pair) == 2 and all(is_int(v) and v >= 1 for v in pair)
    except TypeError:
        ok = False
    if not ok:
        raise ConfigError(
            f"Expected {name} to be an integer >= 1 or a pair of them. "
            f"Received: {name}={value!r}"
        )
    return int(pair[0]), int(pair[1])


def _output_length(length: int | None, size: int, stride: int, padding: str):
    """Output length of one spatial axis, or None if ``length`` is unknown."""
    if length is None:
        return None
    if padding == "same":
        return (length + stride - 1) // stride
    return max((length - size) // stride + 1, 0)


@keras.saving.register_keras_serializable(package="keras_rank")
class FactorizedConv2D(FactorizedLayer):
    """Conv2D whose weight, seen as a matrix, is kept as P W' Q.

    The original weight W has ``filters`` rows and ``kh * kw * input_channels``
    columns, the input coordinates taken in the order of
    ``conv_kernel.reshape(-1, filters)``. A paper column is then a
    1 x 1 x 1 x filters slice, a row a kh x kw x cin x 1 filter (Lee et al.
    2021, section 4.8). ``q_index``/``q_coef`` have one entry per input
    coordinate; ``in_index``/``in_scale`` one per original input channel.

    The forward pass, with K the masked (and Frobenius-normalized) W'^T::

        G = (K[q_index] * q_coef[:, None]).reshape(kh, kw, cin, groups_out)
        G = segment_sum over cin of G * in_scale, by in_index, into features_in
        z = conv2d(x, G, strides, padding) + bias * row_mask
        y = activation(z[..., feature_group] * feature_scale)

    Only ``channels_last``, no dilation and no grouped convolution.

    Args:
        filters: Original number of output channels m (length of
            ``p_index``).
        kernel_size: Window size, an int or a pair (kh, kw).
        strides: Strides, an int or a pair.
        padding: ``"valid"`` or ``"same"``.
        data_format: Must be ``"channels_last"`` (None means the Keras
            default, which must then be ``"channels_last"``).
        activation: Activation applied to the output features.
        use_bias: Whether the layer has a bias.
        frobenius_norm: Whether to use Frobenius normalization (eq. 15).
        kernel_initializer: Initializer of W'^T; with default groups it is
            drawn with the conv shape (kh, kw, cin, groups_out), so its fans
            are those of a Conv2D.
        bias_initializer: Initializer of the bias.
        input_channels: Original input channels cin (length of ``in_index``);
            defaults to the channels of the input.
        groups_in: Column groups n'; defaults to ``kh * kw * input_channels``.
        groups_out: Row groups m'; defaults to ``filters``.
        features_out: Output channels; defaults to ``filters``.
        **kwargs: Base layer arguments (name, dtype, trainable, ...).

    Raises:
        ConfigError: If a size is not an integer >= 1, or ``padding`` or
            ``data_format`` is not supported.
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        strides: int | Sequence[int] = (1, 1),
        padding: str = "valid",
        data_format: str | None = "channels_last",
        activation: str | Callable | None = None,
        use_bias: bool = True,
        frobenius_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        input_channels: int | None = None,
        groups_in: int | None = None,
        groups_out: int | None = None,
        features_out: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            activation=activation,
            use_bias=use_bias,
            frobenius_norm=frobenius_norm,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            groups_in=groups_in,
            groups_out=groups_out,
            features_out=features_out,
            **kwargs,
        )
        self.filters = check_positive("filters", filters)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.strides = _pair("strides", strides)
        resolved_padding = padding.lower() if isinstance(padding, str) else padding
        if resolved_padding not in _PADDINGS:
            raise ConfigError(
                f"Expected padding in {_PADDINGS}. Received: padding={padding!r}"
            )
        self.padding = resolved_padding
        resolved_format = data_format or keras.config.image_data_format()
        if resolved_format != "channels_last":
            raise ConfigError(
                "FactorizedConv2D supports only data_format='channels_last'. "
                f"Received: data_format={data_format!r}"
            )
        self.data_format = resolved_format
        self.input_channels = check_positive(
            "input_channels", input_channels, optional=True
        )
        self.input_spec = keras.layers.InputSpec(ndim=4)

    @property
    def _num_outputs(self) -> int:
        return self.filters

    def _input_coordinates(self) -> int:
        return self.kernel_size[0] * self.kernel_size[1] * self.input_channels

    def _input_channels(self) -> int:
        return self.input_channels

    def _kernel_initializer(self) -> Callable[..., Any]:
        """Draw W'^T with the conv shape when it is one (default groups)."""
        base = self.kernel_initializer
        if self.groups_in != self._input_coordinates():
            return base
        conv_shape = (*self.kernel_size, self.input_channels)

        def initializer(shape: Sequence[int], dtype: Any = None) -> tf.Tensor:
            return keras.ops.reshape(base((*conv_shape, shape[1]), dtype=dtype), shape)

        return initializer

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create the weights for inputs of shape ``(batch, h, w, features_in)``."""
        features_in = input_shape[-1]
        if features_in is None:
            raise ConfigError(
                f"FactorizedConv2D {self.name!r} needs a known channel "
                f"dimension. Received: input_shape={tuple(input_shape)}"
            )
        if self.input_channels is None:
            self.input_channels = int(features_in)
        self._build_factors(features_in)
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: int(features_in)})

    def _fold_kernel(self, kernel: tf.Tensor) -> tf.Tensor:
        """(kh, kw, features_in, groups_out) kernel acting on the input."""
        expanded = expand_columns(kernel, self.q_index, self.q_coef)
        conv_kernel = tf.reshape(
            expanded, (*self.kernel_size, self.input_channels, self.groups_out)
        )
        channels_first = tf.transpose(conv_kernel, (2, 0, 1, 3))
        folded = fold_input_channels(
            channels_first, self.in_index, self.in_scale, self.features_in
        )
        return tf.transpose(folded, (1, 2, 0, 3))

    def _apply_kernel(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return tf.nn.conv2d(
            inputs, kernel, strides=self.strides, padding=self.padding.upper()
        )

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        """Return ``(batch, out_h, out_w, features_out)``."""
        batch, height, width = tuple(input_shape)[:3]
        out_h, out_w = (
            _output_length(length, size, stride, self.padding)
            for length, size, stride in zip(
                (height, width), self.kernel_size, self.strides, strict=True
            )
        )
        return (batch, out_h, out_w, self.features_out or self.filters)

    @classmethod
    def _state_config(
        cls, state: FactorState, config: dict[str, Any]
    ) -> dict[str, Any]:
        if "kernel_size" not in config:
            raise ConfigError(
                "FactorizedConv2D.from_state needs kernel_size in its config; "
                "the state only has kh * kw * input_channels coordinates."
            )
        return {
            "filters": int(np.size(state.p_index)),
            "input_channels": int(np.size(state.in_index)),
        }

    @classmethod
    def _build_shape(cls, features_in: int) -> tuple[int | None, ...]:
        return (None, None, None, features_in)

    def _plain_layer(self) -> keras.layers.Conv2D:
        return keras.layers.Conv2D(
            self.features_out,
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format="channels_last",
            activation=self.activation,
            use_bias=self.use_bias,
            name=self.name,
            dtype=self.dtype_policy,
        )

    @classmethod
    def from_conv2d(
        cls, conv: keras.layers.Conv2D, frobenius_norm: bool = False
    ) -> "FactorizedConv2D":
        """Factorize a built Conv2D layer with P = Q = I (same outputs).

        Args:
            conv: A built ``keras.layers.Conv2D``, channels_last, without
                dilation or groups.
            frobenius_norm: Whether to use Frobenius normalization; ``norm0``
                is set to the norm of the conv kernel and ``gain`` to 1.

        Returns:
            A built FactorizedConv2D with the same name, filters, window,
            strides, padding, activation and bias, computing the same outputs.

        Raises:
            ConfigError: If ``conv`` is not a built Conv2D or uses an
                unsupported option.
        """
        if not isinstance(conv, keras.layers.Conv2D) or not conv.built:
            raise ConfigError(
                f"from_conv2d expects a built keras.layers.Conv2D, got {conv!r}."
            )
        if tuple(conv.dilation_rate) != (1, 1) or conv.groups != 1:
            raise ConfigError(
                f"FactorizedConv2D does not support dilation or groups; layer "
                f"{conv.name!r} has dilation_rate={conv.dilation_rate}, "
                f"groups={conv.groups}."
            )
        kernel = keras.ops.convert_to_numpy(conv.kernel)
        layer = cls(
            conv.filters,
            conv.kernel_size,
            strides=conv.strides,
            padding=conv.padding,
            data_format=conv.data_format,
            activation=conv.activation,
            use_bias=conv.use_bias,
            frobenius_norm=frobenius_norm,
            name=conv.name,
            dtype=conv.dtype_policy,
        )
        built_on = (conv.get_build_config() or {}).get("input_shape")
        layer.build(tuple(built_on or (None, None, None, kernel.shape[2])))
        bias = keras.ops.convert_to_numpy(conv.bias) if conv.use_bias else None
        layer._load_original(kernel.reshape(-1, conv.filters), bias)
        return layer

    def get_config(self) -> dict[str, Any]:
        """Return every constructor argument (sizes resolved once built)."""
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            data_format=self.data_format,
            input_channels=self.input_channels,
        )
        return config


@register_cost(FactorizedConv2D)
def factorized_conv_macs(layer: FactorizedConv2D) -> int:
    """MACs of a FactorizedConv2D per example.

    Per output position: ``groups_in * groups_out`` for W', plus
    ``kh * kw * input_channels`` for Q when it merges columns, plus
    ``filters`` for P when it merges rows.

    Args:
        layer: A built FactorizedConv2D.

    Returns:
        The MAC count.

    Raises:
        ConfigError: If the spatial input dimensions are unknown.
    """
    output_shape = layer.compute_output_shape(build_input_shape(layer))
    positions = known_product(output_shape[1:3], layer)
    per_position = layer.groups_in * layer.groups_out
    coordinates = layer._input_coordinates()
    if layer.groups_in < coordinates:
        per_position += coordinates
    if layer.groups_out < layer.filters:
        per_position += layer.filters
    return positions * per_position
