"""LowRankConv2D: a Conv2D as two convolutions of rank r, in two schemes.

A Conv2D kernel K (dh, dw, c, n) is seen as a matrix M (a x b), input side
first, in one of two layouts (Idelbayev & Carreira-Perpinan 2020; docs/methods/lc.md):

* scheme 1: ``M = reshape(K, (dh dw c, n))``. ``M = U V^T`` is a Conv2D of r
  filters (dh, dw) (the layer's strides and padding, no bias) followed by n
  1 x 1 filters (bias, activation).
* scheme 2: ``M[(h, c), (w, n)] = K[h, w, c, n]``, (dh c) x (dw n).
  ``M = U V^T`` is a Conv2D of r filters (dh, 1) with strides (sh, 1)
  followed by n filters (1, dw) with strides (1, sw), both with the layer's
  padding mode: TensorFlow pads each spatial axis on its own, so this is
  exact for "valid" and "same".

In both schemes the first kernel is ``conv_kernel_from_matrix(U, ...)`` and
the second ``conv_kernel_from_matrix(V^T, ...)`` in the same scheme.
"""

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_rank.core.costs import build_input_shape, known_product, register_cost
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import (
    check_scheme,
    conv_kernel_as_matrix,
    conv_kernel_from_matrix,
    conv_matrix_shape,
)
from keras_rank.layers._factorized import check_positive
from keras_rank.layers._low_rank import LowRankLayer, RankCosts, Shape
from keras_rank.layers.factorized_conv import _PADDINGS, _output_length, _pair


@dataclasses.dataclass(frozen=True)
class ConvStage:
    """Window, strides and padding of one of the two convolutions.

    Attributes:
        kernel_size: (kh, kw).
        strides: (sh, sw).
        padding: ``"valid"`` or ``"same"``.
    """

    kernel_size: tuple[int, int]
    strides: tuple[int, int]
    padding: str

    def output_shape(
        self, input_shape: Sequence[int | None], filters: int
    ) -> tuple[int | None, ...]:
        """``(batch, out_h, out_w, filters)`` for an input ``(batch, h, w, c)``."""
        out_h, out_w = (
            _output_length(length, size, stride, self.padding)
            for length, size, stride in zip(
                input_shape[1:3], self.kernel_size, self.strides, strict=True
            )
        )
        return (input_shape[0], out_h, out_w, filters)


def conv_stages(
    kernel_size: tuple[int, int], strides: tuple[int, int], padding: str, scheme: int
) -> tuple[ConvStage, ConvStage]:
    """The two convolutions that replace a Conv2D in a scheme.

    Args:
        kernel_size: (dh, dw) of the Conv2D.
        strides: (sh, sw) of the Conv2D.
        padding: Its padding, ``"valid"`` or ``"same"``.
        scheme: 1 or 2.

    Returns:
        Scheme 1: ((dh, dw), (sh, sw), padding) then ((1, 1), (1, 1),
        "valid"). Scheme 2: ((dh, 1), (sh, 1), padding) then
        ((1, dw), (1, sw), padding).
    """
    (dh, dw), (sh, sw) = kernel_size, strides
    if check_scheme(scheme) == 1:
        return (
            ConvStage((dh, dw), (sh, sw), padding),
            ConvStage((1, 1), (1, 1), "valid"),
        )
    return (
        ConvStage((dh, 1), (sh, 1), padding),
        ConvStage((1, dw), (1, sw), padding),
    )


def _check_padding(padding: object) -> str:
    resolved = padding.lower() if isinstance(padding, str) else padding
    if resolved not in _PADDINGS:
        raise ConfigError(
            f"Expected padding in {_PADDINGS}. Received: padding={padding!r}"
        )
    return resolved


def _check_plain_conv2d(layer: object, caller: str) -> None:
    """Raise unless ``layer`` is a built Conv2D that has a low-rank form."""
    if not isinstance(layer, keras.layers.Conv2D) or not layer.built:
        raise ConfigError(
            f"{caller} expects a built keras.layers.Conv2D. Received: layer={layer!r}"
        )
    if (
        tuple(layer.dilation_rate) != (1, 1)
        or layer.groups != 1
        or layer.data_format != "channels_last"
    ):
        raise ConfigError(
            f"{caller} supports Conv2D with dilation_rate=(1, 1), groups=1 and "
            f"data_format='channels_last'. Received: layer {layer.name!r} with "
            f"dilation_rate={tuple(layer.dilation_rate)}, groups={layer.groups}, "
            f"data_format={layer.data_format!r}"
        )


@keras.saving.register_keras_serializable(package="keras_rank")
class LowRankConv2D(LowRankLayer):
    """Conv2D of rank r: two convolutions, the bias once on the second.

    The kernel's matrix M (see the module doc for both schemes) is kept as
    ``u v^T`` with the weights ``u`` (a x r, input side) and ``v``
    (b x r, output side); the call convolves with the kernel made from
    ``u`` (r filters), then with the one made from ``v^T`` (``filters``
    filters), adds the bias and applies the activation. ``to_plain()`` gives
    the two Conv2D layers. Only ``channels_last``, no dilation, no groups.

    Args:
        filters: n, the number of output channels.
        kernel_size: (dh, dw), an int or a pair.
        rank: r, with ``1 <= r <= min(a, b)`` (checked when built).
        scheme: 1 (r filters dh x dw, then n 1 x 1) or 2 (r filters dh x 1,
            then n filters 1 x dw).
        strides: (sh, sw), an int or a pair.
        padding: ``"valid"`` or ``"same"``.
        activation: Activation of the output.
        use_bias: Whether the output has a bias.
        kernel_initializer: Initializer of both factors (drawn as the kernels
            of the two plain Conv2D layers).
        bias_initializer: Initializer of the bias.
        kernel_regularizer: Regularizer applied to ``u`` and to ``v``.
        bias_regularizer: Regularizer applied to the bias.
        **kwargs: Base layer arguments (name, dtype, trainable,
            activity_regularizer, ...).

    Raises:
        ConfigError: If a size is not an integer >= 1, ``scheme`` is not 1 or
            2, or ``padding`` is not "valid" or "same".
    """

    def __init__(
        self,
        filters: int,
        kernel_size: int | Sequence[int],
        rank: int,
        scheme: int = 1,
        strides: int | Sequence[int] = (1, 1),
        padding: str = "valid",
        activation: str | Callable | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            rank,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            **kwargs,
        )
        self.filters = check_positive("filters", filters)
        self.kernel_size = _pair("kernel_size", kernel_size)
        self.scheme = check_scheme(scheme)
        self.strides = _pair("strides", strides)
        self.padding = _check_padding(padding)
        self._stages = conv_stages(
            self.kernel_size, self.strides, self.padding, self.scheme
        )
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create ``u``, ``v`` and the bias for inputs ``(batch, h, w, c)``.

        Raises:
            ConfigError: If c is unknown or ``rank > min(a, b)``.
        """
        channels = input_shape[-1]
        if channels is None:
            raise ConfigError(
                f"LowRankConv2D {self.name!r} needs a known channel dimension. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        channels = int(channels)
        first, second = self._stages
        self._build_factors(
            conv_matrix_shape((*self.kernel_size, channels, self.filters), self.scheme),
            (
                (*first.kernel_size, channels, self.rank),
                (*second.kernel_size, self.rank, self.filters),
            ),
        )
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: channels})

    def _kernel_as_matrix(self, kernel: tf.Tensor) -> tf.Tensor:
        return conv_kernel_as_matrix(kernel, self.scheme)

    def _kernel_from_matrix(self, matrix: tf.Tensor, shape: Shape) -> tf.Tensor:
        return conv_kernel_from_matrix(matrix, shape, self.scheme)

    def _convolve(
        self, inputs: tf.Tensor, kernel: tf.Tensor, stage: ConvStage
    ) -> tf.Tensor:
        return keras.ops.conv(
            inputs,
            kernel,
            strides=stage.strides,
            padding=stage.padding,
            data_format="channels_last",
        )

    def _apply_first(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return self._convolve(inputs, kernel, self._stages[0])

    def _apply_second(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return self._convolve(inputs, kernel, self._stages[1])

    def _plain_pair(
        self, first_kwargs: dict[str, Any], second_kwargs: dict[str, Any]
    ) -> tuple[keras.layers.Conv2D, keras.layers.Conv2D]:
        return tuple(
            keras.layers.Conv2D(
                filters,
                stage.kernel_size,
                strides=stage.strides,
                padding=stage.padding,
                data_format="channels_last",
                **kwargs,
            )
            for filters, stage, kwargs in zip(
                (self.rank, self.filters),
                self._stages,
                (first_kwargs, second_kwargs),
                strict=True,
            )
        )

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        """Return ``(batch, out_h, out_w, filters)``, as the Conv2D's."""
        first, second = self._stages
        return second.output_shape(
            first.output_shape(tuple(input_shape), self.rank), self.filters
        )

    @classmethod
    def from_conv2d(
        cls,
        layer: keras.layers.Conv2D,
        rank: int,
        scheme: int = 1,
        matrix: Any | None = None,
        name: str | None = None,
    ) -> "LowRankConv2D":
        """Build the rank-r truncation of a built Conv2D (or of a matrix).

        ``u`` and ``v`` are :func:`~keras_rank.layers.truncated_factors` of
        ``matrix``; filters, window, strides, padding, activation, bias, dtype
        and the input shape are the layer's. At ``rank = min(a, b)`` the
        result computes what ``layer`` computes (to float rounding).

        Args:
            layer: A built ``keras.layers.Conv2D``, channels_last, without
                dilation or groups, padding "valid" or "same".
            rank: r, ``1 <= r <= min(a, b)`` of the scheme's matrix.
            scheme: 1 or 2.
            matrix: (a, b) matrix to factor in the scheme's layout instead of
                ``conv_kernel_as_matrix(layer.kernel, scheme)`` (e.g. LC's
                Theta).
            name: Name of the new layer; defaults to ``layer.name``, so paths
                in a rebuilt model stay the same.

        Returns:
            A built LowRankConv2D.

        Raises:
            ConfigError: If ``layer`` is not a supported built Conv2D,
                ``scheme`` or ``rank`` is out of range, or ``matrix`` is not
                (a, b).
        """
        _check_plain_conv2d(layer, "from_conv2d")
        low_rank = cls(
            layer.filters,
            layer.kernel_size,
            rank,
            scheme=scheme,
            strides=layer.strides,
            padding=layer.padding,
            activation=layer.activation,
            use_bias=layer.use_bias,
            name=name or layer.name,
            dtype=layer.dtype_policy,
        )
        low_rank._load_truncation(layer, matrix)
        return low_rank

    def get_config(self) -> dict[str, Any]:
        """Return every constructor argument."""
        config = super().get_config()
        config.update(
            filters=self.filters,
            kernel_size=self.kernel_size,
            scheme=self.scheme,
            strides=self.strides,
            padding=self.padding,
        )
        return config


def conv2d_rank_costs(
    layer: keras.layers.Conv2D | LowRankConv2D, scheme: int
) -> RankCosts:
    """Costs per unit of rank of a Conv2D in a scheme, and its full costs.

    Per example, with c input and n output channels, the first convolution's
    window k1 and output positions P1, the second's k2 and P2
    (:func:`conv_stages`): params/rank ``k1 c + k2 n``, MACs/rank
    ``P1 k1 c + P2 k2 n``; full ``dh dw c n`` parameters and
    ``H_o W_o dh dw c n`` MACs. That is, scheme 1:
    ``H_o W_o (dh dw c + n)``; scheme 2: ``H_o W_i dh c + H_o W_o dw n``.
    Biases are not counted. These are the figures the registered MAC rule of
    LowRankConv2D uses.

    Args:
        layer: A built Conv2D (channels_last, no dilation, no groups) or
            LowRankConv2D, whose input shape is fully known but for the batch.
        scheme: 1 or 2.

    Returns:
        The layer's :class:`RankCosts` in that scheme.

    Raises:
        ConfigError: If the layer is not supported or not built, an input
            dimension is unknown, or ``scheme`` is not 1 or 2.
    """
    if not isinstance(layer, LowRankConv2D):
        _check_plain_conv2d(layer, "conv2d_rank_costs")
    input_shape = build_input_shape(layer)
    channels, filters = known_product(input_shape[-1:], layer), layer.filters
    padding = _check_padding(layer.padding)
    first, second = conv_stages(layer.kernel_size, layer.strides, padding, scheme)
    middle = first.output_shape(input_shape, 1)
    first_positions = known_product(middle[1:3], layer)
    second_positions = known_product(second.output_shape(middle, 1)[1:3], layer)
    full = ConvStage(tuple(layer.kernel_size), tuple(layer.strides), padding)
    full_positions = known_product(full.output_shape(input_shape, 1)[1:3], layer)
    first_window = math.prod(first.kernel_size) * channels
    second_window = math.prod(second.kernel_size) * filters
    dense_params = math.prod(layer.kernel_size) * channels * filters
    return RankCosts(
        params_per_rank=first_window + second_window,
        macs_per_rank=first_positions * first_window + second_positions * second_window,
        dense_params=dense_params,
        dense_macs=full_positions * dense_params,
    )


@register_cost(LowRankConv2D)
def low_rank_conv2d_macs(layer: LowRankConv2D) -> int:
    """MACs of a LowRankConv2D: ``rank`` times :func:`conv2d_rank_costs`'s."""
    return layer.rank * conv2d_rank_costs(layer, layer.scheme).macs_per_rank
