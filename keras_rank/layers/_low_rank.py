"""Shared code of the low-rank layers W = U V^T: factor maths and the base layer.

Layout (docs/methods/lc.md, shared by every method): a layer's weight is the matrix M
(a x b), a = input side, b = output side, and a rank-r layer keeps
``M = U V^T`` with U (a x r) the input-side and V (b x r) the output-side
factor. A low-rank layer stores exactly these two matrices, as the weights
``u`` and ``v``, and computes with two plain layers' worth of kernels made
from them: the first (no bias) from U, the second (bias, activation) from
V^T. How a matrix maps to a kernel is the subclass's business (Dense: the
kernel is the matrix; Conv2D: one of two reshapes, the *scheme*).
"""

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import keras
import tensorflow as tf

from keras_rank.core.costs import register_batch_norm_folding
from keras_rank.core.errors import ConfigError
from keras_rank.layers._factorized import check_positive, is_int

Shape = tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class RankCosts:
    """Costs of one layer per unit of rank and as a full (dense) layer.

    Counts are per example; biases are not counted (as in keras_rank.core.costs).
    A rank-r layer costs ``r * params_per_rank`` parameters (plus its bias)
    and ``r * macs_per_rank`` MACs; left full it costs ``dense_params`` and
    ``dense_macs``.

    Attributes:
        params_per_rank: Parameters per unit of rank, ``a + b``.
        macs_per_rank: Multiply-adds per unit of rank (alpha of LC for the
            FLOPs criterion).
        dense_params: Parameters of the full weight, ``a * b``.
        dense_macs: Multiply-adds of the full layer.
    """

    params_per_rank: int
    macs_per_rank: int
    dense_params: int
    dense_macs: int


def check_rank(rank: object, matrix_shape: Sequence[int], owner: str) -> int:
    """Return ``rank`` as an int if ``1 <= rank <= min(a, b)``, else raise.

    Args:
        rank: The received rank.
        matrix_shape: (a, b), the shape of the matrix to be factored.
        owner: What the matrix belongs to, for the message.

    Returns:
        ``int(rank)``.

    Raises:
        ConfigError: If ``rank`` is not an integer in ``[1, min(a, b)]``.
    """
    a, b = (int(dim) for dim in matrix_shape)
    limit = min(a, b)
    if not is_int(rank) or not 1 <= rank <= limit:
        raise ConfigError(
            f"Expected 1 <= rank <= {limit} = min({a}, {b}), the matrix shape "
            f"of {owner}. Received: rank={rank!r}"
        )
    return int(rank)


def truncated_factors(matrix: Any, rank: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Best rank-r factors of a matrix, the singular values split evenly.

    With the SVD ``M = U S V^T`` (``tf.linalg.svd``), returns
    ``u = U_r sqrt(S_r)`` and ``v = V_r sqrt(S_r)``, so that ``u v^T`` is the
    rank-r truncation of M, the closest rank-r matrix in Frobenius norm
    (Eckart-Young): ``||M - u v^T||_F^2 = sum_{i > r} s_i^2``.

    Args:
        matrix: (a, b) matrix, a tensor or an array.
        rank: r, with ``1 <= r <= min(a, b)``.

    Returns:
        ``(u, v)``, (a, r) and (b, r) tensors of the matrix's dtype.

    Raises:
        ConfigError: If ``matrix`` is not 2-D or ``rank`` is out of range.
    """
    matrix = tf.convert_to_tensor(matrix)
    if matrix.shape.rank != 2:
        raise ConfigError(
            f"Expected a 2-D matrix. Received: matrix.shape={tuple(matrix.shape)}"
        )
    rank = check_rank(rank, matrix.shape, "the given matrix")
    singular_values, left, right = tf.linalg.svd(matrix)
    root = tf.sqrt(singular_values[:rank])
    return left[:, :rank] * root, right[:, :rank] * root


class LowRankLayer(keras.layers.Layer):
    """Base of LowRankDense and LowRankConv2D; not a layer to use by itself.

    Holds the common arguments, creates ``u`` (a, r), ``v`` (b, r) and the
    bias, computes ``activation(second(first(x, K1), K2) + bias)`` with
    ``K1 = kernel_from_matrix(u)`` and ``K2 = kernel_from_matrix(v^T)``, and
    converts to and from plain layers. Subclasses define, once their input
    shape is known (``build``):

    * ``_kernel_as_matrix(kernel)`` / ``_kernel_from_matrix(matrix, shape)``:
      the layout of the subclass's kernels as matrices (inverse maps);
    * ``_apply_first(x, k1)`` / ``_apply_second(x, k2)``: the two products;
    * ``_plain_pair(first_kwargs, second_kwargs)``: the two unbuilt plain
      layers the low-rank layer is made of;
    * ``build``, which resolves the sizes and calls :meth:`_build_factors`.

    Args:
        rank: r >= 1 (the upper bound min(a, b) is checked in ``build``).
        activation: Activation of the output.
        use_bias: Whether the output has a bias (added once).
        kernel_initializer: Initializer of both factors. Each factor is drawn
            with the shape of its plain layer's kernel (so its fans are
            those of that layer) and then laid out as a matrix.
        bias_initializer: Initializer of the bias.
        kernel_regularizer: Regularizer applied to each factor.
        bias_regularizer: Regularizer applied to the bias.
        **kwargs: Base layer arguments (name, dtype, trainable,
            activity_regularizer, ...).

    Raises:
        ConfigError: If ``rank`` is not an integer >= 1.
    """

    def __init__(
        self,
        rank: int,
        activation: str | Callable | None = None,
        use_bias: bool = True,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        kernel_regularizer: Any = None,
        bias_regularizer: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.rank = check_positive("rank", rank)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.bias_regularizer = keras.regularizers.get(bias_regularizer)
        self._kernel_shapes: tuple[Shape, Shape] | None = None

    # Hooks for subclasses -------------------------------------------------

    def _kernel_as_matrix(self, kernel: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _kernel_from_matrix(self, matrix: tf.Tensor, shape: Shape) -> tf.Tensor:
        raise NotImplementedError

    def _apply_first(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _apply_second(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _plain_pair(
        self, first_kwargs: dict[str, Any], second_kwargs: dict[str, Any]
    ) -> tuple[keras.layers.Layer, keras.layers.Layer]:
        raise NotImplementedError

    # Weights -------------------------------------------------------------

    def _build_factors(
        self, matrix_shape: Sequence[int], kernel_shapes: tuple[Shape, Shape]
    ) -> None:
        """Check the rank and create ``u``, ``v`` and the bias.

        Args:
            matrix_shape: (a, b) of the layer's weight matrix.
            kernel_shapes: Shapes of the first and second plain kernels,
                whose matrices are (a, r) and (r, b).
        """
        a, b = matrix_shape
        check_rank(self.rank, (a, b), f"layer {self.name!r}")
        self._kernel_shapes = (tuple(kernel_shapes[0]), tuple(kernel_shapes[1]))
        first_shape, second_shape = self._kernel_shapes
        base = self.kernel_initializer

        def first_factor(shape: Shape, dtype: Any = None) -> tf.Tensor:
            return self._kernel_as_matrix(base(first_shape, dtype=dtype))

        def second_factor(shape: Shape, dtype: Any = None) -> tf.Tensor:
            return tf.transpose(self._kernel_as_matrix(base(second_shape, dtype=dtype)))

        self.u = self.add_weight(
            name="u",
            shape=(a, self.rank),
            initializer=first_factor,
            regularizer=self.kernel_regularizer,
        )
        self.v = self.add_weight(
            name="v",
            shape=(b, self.rank),
            initializer=second_factor,
            regularizer=self.kernel_regularizer,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self._num_outputs,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
            )

    @property
    def _num_outputs(self) -> int:
        return self._kernel_shapes[1][-1]

    def _factor_kernels(self) -> tuple[tf.Tensor, tf.Tensor]:
        """The kernels of the two plain layers, made from ``u`` and ``v^T``."""
        first_shape, second_shape = self._kernel_shapes
        first = self._kernel_from_matrix(self.u, first_shape)
        second = self._kernel_from_matrix(tf.transpose(self.v), second_shape)
        return first, second

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Apply the first factor, then the second, the bias and activation."""
        first, second = self._factor_kernels()
        outputs = self._apply_second(self._apply_first(inputs, first), second)
        if self.use_bias:
            outputs = outputs + self.bias
        return self.activation(outputs)

    # Conversions ---------------------------------------------------------

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ConfigError(
                f"Cannot {what}: layer {self.name!r} is not built. "
                "Build it or call it on an input first."
            )

    def _load_truncation(self, source: keras.layers.Layer, matrix: Any | None) -> None:
        """Build on the source's input shape and set the rank-r truncation.

        Args:
            source: The built plain layer the low-rank layer replaces; its
                bias is copied.
            matrix: (a, b) matrix to factor, or None for the source's kernel
                in the layer's matrix layout.

        Raises:
            ConfigError: If the rank is out of range or ``matrix`` has another
                shape than (a, b).
        """
        self.build(tuple(source.get_build_config()["input_shape"]))
        if matrix is None:
            matrix = self._kernel_as_matrix(source.kernel)
        matrix = tf.convert_to_tensor(matrix)
        expected = (self.u.shape[0], self.v.shape[0])
        if tuple(matrix.shape) != expected:
            raise ConfigError(
                f"Expected matrix of shape {expected}, the weight matrix of "
                f"layer {source.name!r}. Received: matrix.shape="
                f"{tuple(matrix.shape)}"
            )
        u, v = truncated_factors(matrix, self.rank)
        self.u.assign(tf.cast(u, self.u.dtype))
        self.v.assign(tf.cast(v, self.v.dtype))
        if self.use_bias:
            self.bias.assign(source.bias)

    def to_plain(self) -> tuple[keras.layers.Layer, keras.layers.Layer]:
        """Return the two plain Keras layers this layer computes, built.

        The first, ``{name}_u``, has r outputs, the kernel made from ``u``
        and no bias; the second, ``{name}_v``, has the kernel made from
        ``v^T``, the bias and the activation. Applied in turn they compute
        this layer's outputs and need nothing from keras_rank.

        Returns:
            ``(first, second)``, built on this layer's input shape.

        Raises:
            ConfigError: If the layer is not built.
        """
        self._require_built("convert to plain layers")
        common = {
            "kernel_initializer": self.kernel_initializer,
            "kernel_regularizer": self.kernel_regularizer,
            "dtype": self.dtype_policy,
        }
        first, second = self._plain_pair(
            {**common, "use_bias": False, "name": f"{self.name}_u"},
            {
                **common,
                "activation": self.activation,
                "use_bias": self.use_bias,
                "bias_initializer": self.bias_initializer,
                "bias_regularizer": self.bias_regularizer,
                "activity_regularizer": self.activity_regularizer,
                "name": f"{self.name}_v",
            },
        )
        input_shape = tuple(self.get_build_config()["input_shape"])
        first.build(input_shape)
        second.build(first.compute_output_shape(input_shape))
        first_kernel, second_kernel = (
            keras.ops.convert_to_numpy(kernel) for kernel in self._factor_kernels()
        )
        first.set_weights([first_kernel])
        bias = [keras.ops.convert_to_numpy(self.bias)] if self.use_bias else []
        second.set_weights([second_kernel, *bias])
        return first, second

    def get_config(self) -> dict[str, Any]:
        """Return the common constructor arguments merged over the base's."""
        config = super().get_config()
        config.update(
            rank=self.rank,
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            kernel_regularizer=keras.regularizers.serialize(self.kernel_regularizer),
            bias_regularizer=keras.regularizers.serialize(self.bias_regularizer),
        )
        return config


# The exported pair ends in a plain Dense/Conv2D with the layer's activation.
register_batch_norm_folding(LowRankLayer)
