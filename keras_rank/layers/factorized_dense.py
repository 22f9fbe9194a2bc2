"""FactorizedDense: a Dense layer kept as P W' Q (Lee et al. 2021, DLRA)."""

from collections.abc import Callable
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
    is_identity,
)
from keras_rank.layers.state import FactorState


@keras.saving.register_keras_serializable(package="keras_rank")
class FactorizedDense(FactorizedLayer):
    """Dense layer ``y = activation(P W' Q x + P b)`` with only W' trainable.

    The original weight W (``units`` x ``input_dim``) is kept as P W' Q, where
    Q and P are stored as (group index, coefficient) vectors, never dense (see
    :class:`~keras_rank.layers.state.FactorState` for every array). At
    construction P = Q = I and the layer is an ordinary Dense layer. Column
    and row fusion (another module) assigns new values into these arrays and
    masks fused groups; :meth:`from_state` rebuilds the layer at the smaller
    shapes.

    The function, with K the masked (and Frobenius-normalized) W'^T::

        K_in = segment_sum(K[q_index] * (q_coef * in_scale)[:, None], in_index)
        z = x @ K_in + bias * row_mask
        y = activation(z[..., feature_group] * feature_scale)

    is computed on transposed activations, without folding the kernel (see
    :meth:`_pre_activation`).

    Trainable weights: ``kernel`` (groups_in, groups_out), ``bias``
    (groups_out,) and, with Frobenius normalization, the scalar ``gain``.

    Args:
        units: Original number of outputs m (length of ``p_index``).
        activation: Activation applied to the output features.
        use_bias: Whether the layer has a bias.
        frobenius_norm: Whether to use Frobenius normalization (eq. 15):
            the kernel is ``gain * norm0 * K / ||K||_F``, with ``norm0`` the
            norm of the initial kernel and ``gain`` trainable (initially 1).
        kernel_initializer: Initializer of W'^T.
        bias_initializer: Initializer of the bias.
        input_dim: Original number of input coordinates n (length of
            ``q_index``); defaults to the last axis of the input.
        groups_in: Column groups n' (rows of ``kernel``); defaults to
            ``input_dim``.
        groups_out: Row groups m' (columns of ``kernel``); defaults to
            ``units``.
        features_out: Width of the output; defaults to ``units``.
        **kwargs: Base layer arguments (name, dtype, trainable, ...).

    Raises:
        ConfigError: If a size argument is not an integer >= 1.
    """

    def __init__(
        self,
        units: int,
        activation: str | Callable | None = None,
        use_bias: bool = True,
        frobenius_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        input_dim: int | None = None,
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
        self.units = check_positive("units", units)
        self.input_dim = check_positive("input_dim", input_dim, optional=True)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    @property
    def _num_outputs(self) -> int:
        return self.units

    def _input_coordinates(self) -> int:
        return self.input_dim

    def _input_channels(self) -> int:
        return self.input_dim

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create the weights for inputs of shape ``(..., features_in)``."""
        features_in = input_shape[-1]
        if features_in is None:
            raise ConfigError(
                f"FactorizedDense {self.name!r} needs a known last input "
                f"dimension. Received: input_shape={tuple(input_shape)}"
            )
        if self.input_dim is None:
            self.input_dim = int(features_in)
        self._build_factors(features_in)
        self.input_spec = keras.layers.InputSpec(
            min_ndim=2, axes={-1: int(features_in)}
        )

    def _fold_kernel(self, kernel: tf.Tensor) -> tf.Tensor:
        """(features_in, groups_out) kernel acting on the actual input."""
        expanded = expand_columns(kernel, self.q_index, self.q_coef)
        return fold_input_channels(
            expanded, self.in_index, self.in_scale, self.features_in
        )

    def _pre_activation(self, inputs: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
        """``P W' Q x + P b`` with P and Q applied to activations, not the kernel.

        With batch-major activations the gathers of P and Q would pick single
        elements; here they work on ``(coordinates, batch)`` rows: the input
        is transposed once, gathered and segment-summed onto the column groups,
        multiplied by the raw kernel (masks and the Frobenius scale act on the
        small ends), and the row groups are gathered into features before one
        transpose back. For a batch smaller than the layer's width this
        touches far less memory than folding the kernel, and the product
        already has the compact sizes. While every index is the identity
        (before any fusion), no gather runs at all.
        """
        flat = tf.reshape(inputs, (-1, self.features_in))
        coefficients = self.in_scale * self.q_coef
        row_scale = scale * self.row_mask
        bias = self._effective_bias() if self.use_bias else None

        def plain() -> tf.Tensor:
            z = tf.matmul(flat * (coefficients * self.col_mask), self.kernel)
            z = z * row_scale
            if bias is not None:
                z = z + bias
            return z * self.feature_scale

        def mapped() -> tf.Tensor:
            columns = tf.gather(tf.transpose(flat), self.in_index)
            columns = columns * coefficients[:, None]
            grouped = tf.math.unsorted_segment_sum(
                columns, self.q_index, self.groups_in
            )
            grouped = grouped * self.col_mask[:, None]
            z = tf.matmul(self.kernel, grouped, transpose_a=True)
            z = z * row_scale[:, None]
            if bias is not None:
                z = z + bias[:, None]
            features = tf.gather(z, self.feature_group)
            return tf.transpose(features * self.feature_scale[:, None])

        identity = [
            is_identity(self.in_index, self.features_in),
            is_identity(self.q_index, self.groups_in),
            is_identity(self.feature_group, self.groups_out),
        ]
        if any(flag is False for flag in identity):
            features = mapped()
        else:
            features = tf.cond(tf.reduce_all(tf.stack(identity)), plain, mapped)
        shape = tf.concat([tf.shape(inputs)[:-1], [self.features_out]], 0)
        return tf.reshape(features, shape)

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        """Return ``(..., features_out)``."""
        features_out = self.features_out or self.units
        return (*tuple(input_shape)[:-1], features_out)

    @classmethod
    def _state_config(
        cls, state: FactorState, config: dict[str, Any]
    ) -> dict[str, Any]:
        return {
            "units": int(np.size(state.p_index)),
            "input_dim": int(np.size(state.q_index)),
        }

    @classmethod
    def _build_shape(cls, features_in: int) -> tuple[int | None, ...]:
        return (None, features_in)

    def _plain_layer(self) -> keras.layers.Dense:
        return keras.layers.Dense(
            self.features_out,
            activation=self.activation,
            use_bias=self.use_bias,
            name=self.name,
            dtype=self.dtype_policy,
        )

    @classmethod
    def from_dense(
        cls, dense: keras.layers.Dense, frobenius_norm: bool = False
    ) -> "FactorizedDense":
        """Factorize a built Dense layer with P = Q = I (same outputs).

        Args:
            dense: A built ``keras.layers.Dense``.
            frobenius_norm: Whether to use Frobenius normalization; ``norm0``
                is set to the norm of the Dense kernel and ``gain`` to 1.

        Returns:
            A built FactorizedDense with the same name, units, activation and
            bias, computing the same outputs.

        Raises:
            ConfigError: If ``dense`` is not a built Dense layer.
        """
        if not isinstance(dense, keras.layers.Dense) or not dense.built:
            raise ConfigError(
                f"from_dense expects a built keras.layers.Dense, got {dense!r}."
            )
        kernel = keras.ops.convert_to_numpy(dense.kernel)
        layer = cls(
            dense.units,
            activation=dense.activation,
            use_bias=dense.use_bias,
            frobenius_norm=frobenius_norm,
            name=dense.name,
            dtype=dense.dtype_policy,
        )
        layer.build((None, kernel.shape[0]))
        bias = keras.ops.convert_to_numpy(dense.bias) if dense.use_bias else None
        layer._load_original(kernel, bias)
        return layer

    def get_config(self) -> dict[str, Any]:
        """Return every constructor argument (sizes resolved once built)."""
        config = super().get_config()
        config.update(units=self.units, input_dim=self.input_dim)
        return config


@register_cost(FactorizedDense)
def factorized_dense_macs(layer: FactorizedDense) -> int:
    """MACs of a FactorizedDense per position (one position for 2-D input).

    ``groups_in * groups_out`` for W', plus ``input_dim`` for Q when it merges
    columns (``groups_in < input_dim``) and ``units`` for P when it merges rows
    (``groups_out < units``).

    Args:
        layer: A built FactorizedDense.

    Returns:
        The MAC count.
    """
    input_shape = build_input_shape(layer)
    positions = known_product(input_shape[1:-1], layer)
    macs = layer.groups_in * layer.groups_out
    if layer.groups_in < layer.input_dim:
        macs += layer.input_dim
    if layer.groups_out < layer.units:
        macs += layer.units
    return positions * macs
