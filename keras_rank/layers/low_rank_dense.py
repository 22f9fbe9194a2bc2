"""LowRankDense: a Dense layer whose kernel is kept as U V^T (rank r)."""

from collections.abc import Callable
from typing import Any

import keras
import tensorflow as tf

from keras_rank.core.costs import build_input_shape, known_product, register_cost
from keras_rank.core.errors import ConfigError
from keras_rank.layers._factorized import check_positive
from keras_rank.layers._low_rank import LowRankLayer, RankCosts, Shape


@keras.saving.register_keras_serializable(package="keras_rank")
class LowRankDense(LowRankLayer):
    """Dense layer ``y = activation((x @ u) @ v^T + bias)`` of rank r.

    The kernel M (m x n, Keras orientation: inputs x outputs) is kept as
    ``u v^T`` with the weights ``u`` (m x r, input side) and ``v``
    (n x r, output side), so a call is two small matmuls and one bias add:
    ``r (m + n)`` multiply-adds instead of ``m n``. Works on inputs of any
    rank >= 2, like Dense (the last axis is the features axis).
    ``to_plain()`` gives the same function as ``Dense(r, use_bias=False)``
    followed by ``Dense(units)``.

    Args:
        units: n, the number of outputs.
        rank: r, with ``1 <= r <= min(m, n)`` (checked when built).
        activation: Activation of the output.
        use_bias: Whether the output has a bias.
        kernel_initializer: Initializer of both factors (drawn as the kernels
            of the two plain Dense layers).
        bias_initializer: Initializer of the bias.
        kernel_regularizer: Regularizer applied to ``u`` and to ``v``.
        bias_regularizer: Regularizer applied to the bias.
        **kwargs: Base layer arguments (name, dtype, trainable,
            activity_regularizer, ...).

    Raises:
        ConfigError: If ``units`` or ``rank`` is not an integer >= 1.
    """

    def __init__(
        self,
        units: int,
        rank: int,
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
        self.units = check_positive("units", units)
        self.input_spec = keras.layers.InputSpec(min_ndim=2)

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        """Create ``u`` (m, r), ``v`` (n, r) and the bias for inputs ``(..., m)``.

        Raises:
            ConfigError: If m is unknown or ``rank > min(m, units)``.
        """
        features_in = input_shape[-1]
        if features_in is None:
            raise ConfigError(
                f"LowRankDense {self.name!r} needs a known last input "
                f"dimension. Received: input_shape={tuple(input_shape)}"
            )
        features_in = int(features_in)
        self._build_factors(
            (features_in, self.units),
            ((features_in, self.rank), (self.rank, self.units)),
        )
        self.input_spec = keras.layers.InputSpec(min_ndim=2, axes={-1: features_in})

    def _kernel_as_matrix(self, kernel: tf.Tensor) -> tf.Tensor:
        """A Dense kernel is its own matrix."""
        return tf.convert_to_tensor(kernel)

    def _kernel_from_matrix(self, matrix: tf.Tensor, shape: Shape) -> tf.Tensor:
        """A Dense kernel is its own matrix (``shape`` is the matrix's)."""
        return matrix

    def _apply_first(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return keras.ops.matmul(inputs, kernel)

    def _apply_second(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        return keras.ops.matmul(inputs, kernel)

    def _plain_pair(
        self, first_kwargs: dict[str, Any], second_kwargs: dict[str, Any]
    ) -> tuple[keras.layers.Dense, keras.layers.Dense]:
        return (
            keras.layers.Dense(self.rank, **first_kwargs),
            keras.layers.Dense(self.units, **second_kwargs),
        )

    def compute_output_shape(
        self, input_shape: tuple[int | None, ...]
    ) -> tuple[int | None, ...]:
        """Return ``(..., units)``."""
        return (*tuple(input_shape)[:-1], self.units)

    @classmethod
    def from_dense(
        cls,
        layer: keras.layers.Dense,
        rank: int,
        matrix: Any | None = None,
        name: str | None = None,
    ) -> "LowRankDense":
        """Build the rank-r truncation of a built Dense layer (or of a matrix).

        ``u`` and ``v`` are :func:`~keras_rank.layers.truncated_factors` of
        ``matrix``; units, activation, bias, dtype and the input shape are the
        layer's. At ``rank = min(m, n)`` the result computes what ``layer``
        computes (to float rounding).

        Args:
            layer: A built ``keras.layers.Dense``.
            rank: r, ``1 <= r <= min(m, n)``.
            matrix: (m, n) matrix to factor instead of the layer's kernel
                (e.g. LC's Theta); defaults to the kernel.
            name: Name of the new layer; defaults to ``layer.name``, so paths
                in a rebuilt model stay the same.

        Returns:
            A built LowRankDense.

        Raises:
            ConfigError: If ``layer`` is not a built Dense, ``rank`` is out of
                range or ``matrix`` is not (m, n).
        """
        if not isinstance(layer, keras.layers.Dense) or not layer.built:
            raise ConfigError(
                f"from_dense expects a built keras.layers.Dense. Received: "
                f"layer={layer!r}"
            )
        low_rank = cls(
            layer.units,
            rank,
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
        config.update(units=self.units)
        return config


def dense_rank_costs(layer: keras.layers.Dense | LowRankDense) -> RankCosts:
    """Costs per unit of rank of a Dense layer m -> n, and its full costs.

    Per example, with p positions (1 for 2-D input, else the product of the
    middle axes): params/rank ``m + n``, MACs/rank ``p (m + n)``, full
    ``m n`` parameters and ``p m n`` MACs. Biases are not counted. These are
    the figures the registered MAC rule of LowRankDense uses.

    Args:
        layer: A built Dense or LowRankDense whose input shape is fully known
            (but for the batch axis).

    Returns:
        The layer's :class:`RankCosts`.

    Raises:
        ConfigError: If ``layer`` is of another type, not built, or has an
            unknown input dimension.
    """
    if not isinstance(layer, keras.layers.Dense | LowRankDense):
        raise ConfigError(
            f"dense_rank_costs expects a Dense or LowRankDense layer. "
            f"Received: layer={layer!r}"
        )
    input_shape = build_input_shape(layer)
    positions = known_product(input_shape[1:-1], layer)
    features_in, units = known_product(input_shape[-1:], layer), layer.units
    return RankCosts(
        params_per_rank=features_in + units,
        macs_per_rank=positions * (features_in + units),
        dense_params=features_in * units,
        dense_macs=positions * features_in * units,
    )


@register_cost(LowRankDense)
def low_rank_dense_macs(layer: LowRankDense) -> int:
    """MACs of a LowRankDense: ``rank`` times :func:`dense_rank_costs`'s."""
    return layer.rank * dense_rank_costs(layer).macs_per_rank
