"""Shared code of the factorized layers: the P W' Q maths and the weight set.

A factorized layer stores W'^T (``kernel``) and the bookkeeping vectors of
:class:`~keras_rank.layers.state.FactorState` as Keras variables. The pure
functions below are the tensor maths of the forward pass; the base class
creates the variables, validates arguments, and moves states in and out.
Subclasses (Dense, Conv2D) only say how the folded kernel is laid out and
applied to the input.
"""

import dataclasses
import numbers
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_rank.core.costs import register_batch_norm_folding, register_params
from keras_rank.core.errors import ConfigError
from keras_rank.layers.state import FactorState

NORM_EPSILON = 1e-12
"""Floor of the Frobenius norm in Frobenius normalization (as FactorState)."""

_INT_FIELDS = ("q_index", "p_index", "in_index", "feature_group")
_OPTIONAL_FIELDS = {
    "bias": "use_bias",
    "gain": "frobenius_norm",
    "norm0": "frobenius_norm",
}
# Index field -> (name of the size it indexes into, for messages).
_INDEX_BOUNDS = {
    "q_index": "groups_in",
    "p_index": "groups_out",
    "in_index": "features_in",
    "feature_group": "groups_out",
}


def masked_kernel(
    kernel: tf.Tensor, col_mask: tf.Tensor, row_mask: tf.Tensor
) -> tf.Tensor:
    """Switch off fused column and row groups of W'^T.

    Args:
        kernel: (groups_in, groups_out) W'^T.
        col_mask: (groups_in,) 1 for live column groups, 0 for fused ones.
        row_mask: (groups_out,) 1 for live row groups, 0 for fused ones.

    Returns:
        ``kernel * col_mask[:, None] * row_mask[None, :]``.
    """
    return kernel * col_mask[:, None] * row_mask[None, :]


def expand_columns(
    kernel: tf.Tensor, q_index: tf.Tensor, q_coef: tf.Tensor
) -> tf.Tensor:
    """Apply Q: rows of ``Q^T W'^T``, one per original input coordinate.

    Args:
        kernel: (groups_in, groups_out) effective W'^T.
        q_index: (coordinates,) int column group of each input coordinate.
        q_coef: (coordinates,) coefficient of each input coordinate.

    Returns:
        (coordinates, groups_out): row k is ``q_coef[k] * kernel[q_index[k]]``.
    """
    return tf.gather(kernel, q_index) * q_coef[:, None]


def fold_input_channels(
    weights: tf.Tensor, in_index: tf.Tensor, in_scale: tf.Tensor, features_in: int
) -> tf.Tensor:
    """Map per-original-channel weights onto the channels of the actual input.

    Original channel c reads ``in_scale[c] * input[in_index[c]]``, so its
    weights are scaled and summed into row ``in_index[c]``.

    Args:
        weights: (channels, ...) weights, leading axis = original channels.
        in_index: (channels,) int channel of the actual input.
        in_scale: (channels,) scale of each original channel.
        features_in: Number of channels of the actual input.

    Returns:
        (features_in, ...) weights acting on the actual input.
    """
    scale = tf.reshape(in_scale, [-1] + [1] * (len(weights.shape) - 1))
    return tf.math.unsorted_segment_sum(weights * scale, in_index, features_in)


def is_identity(index: tf.Tensor, size: int) -> tf.Tensor | bool:
    """Whether ``index`` is ``arange(size)``, so gathering by it is a no-op.

    Args:
        index: (length,) int32 index vector.
        size: Length of the axis it indexes into.

    Returns:
        False if the static lengths differ, else a scalar bool tensor.
    """
    if index.shape[0] != size:
        return False
    return tf.reduce_all(tf.equal(index, tf.range(size, dtype=index.dtype)))


def select_features(
    z: tf.Tensor, feature_group: tf.Tensor, feature_scale: tf.Tensor
) -> tf.Tensor:
    """Form the output features from the row-group pre-activations.

    Args:
        z: (..., groups_out) pre-activations of the row groups.
        feature_group: (features_out,) int row group of each feature.
        feature_scale: (features_out,) scale of each feature.

    Returns:
        (..., features_out): ``feature_scale[h] * z[..., feature_group[h]]``.
    """
    identity = is_identity(feature_group, z.shape[-1])
    if identity is False:
        return tf.gather(z, feature_group, axis=-1) * feature_scale
    # Skips the gather (and its gradient) while it is a no-op.
    return tf.cond(
        identity,
        lambda: z * feature_scale,
        lambda: tf.gather(z, feature_group, axis=-1) * feature_scale,
    )


def is_int(value: object) -> bool:
    """Tell whether ``value`` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_positive(name: str, value: object, optional: bool = False) -> int | None:
    """Return ``value`` as an int >= 1 (or None if optional), else raise.

    Args:
        name: Argument name, for the message.
        value: The received value.
        optional: Whether None is allowed.

    Returns:
        ``int(value)``, or None.

    Raises:
        ConfigError: If ``value`` is not an integer >= 1.
    """
    if value is None and optional:
        return None
    if not is_int(value) or value < 1:
        raise ConfigError(f"Expected {name} >= 1. Received: {name}={value!r}")
    return int(value)


def _array_initializer(values: np.ndarray) -> Callable[..., np.ndarray]:
    """An initializer that returns fixed values (shape checked by Keras)."""

    def initializer(shape: Sequence[int], dtype: Any = None) -> np.ndarray:
        return np.reshape(values, shape).astype(dtype or values.dtype)

    return initializer


def _placeholder_index(length: int, size: int) -> np.ndarray:
    """``arange(length) mod size`` as int32: valid indices into ``size``."""
    return (np.arange(length) % size).astype(np.int32)


class FactorizedLayer(keras.layers.Layer):
    """Base of the factorized layers P W' Q; not a layer to use by itself.

    Holds the arguments common to every factorized layer, creates the
    variables named after the :class:`FactorState` fields, computes the
    forward pass ``activation(features(apply(x, folded kernel) + bias))``, and
    gets or assigns states. Subclasses define:

    * ``_num_outputs``: original number of outputs m (``units``/``filters``);
    * ``_input_coordinates()``: n, the original input coordinates;
    * ``_input_channels()``: original input channels (``in_index`` length);
    * ``_fold_kernel(k)``: the kernel acting on the actual input from the
      effective kernel, last axis = row groups;
    * ``_apply_kernel(x, kernel)``: the product with the input (used by the
      default ``_pre_activation``, which a subclass may replace);
    * ``_state_config(state)``, ``_build_shape(features_in)``,
      ``_plain_layer()``: for :meth:`from_state` and :meth:`to_plain`.
    """

    def __init__(
        self,
        activation: str | Callable | None = None,
        use_bias: bool = True,
        frobenius_norm: bool = False,
        kernel_initializer: Any = "glorot_uniform",
        bias_initializer: Any = "zeros",
        groups_in: int | None = None,
        groups_out: int | None = None,
        features_out: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        object.__setattr__(self, "_traced_scale", None)
        self.activation = keras.activations.get(activation)
        self.use_bias = bool(use_bias)
        self.frobenius_norm = bool(frobenius_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.groups_in = check_positive("groups_in", groups_in, optional=True)
        self.groups_out = check_positive("groups_out", groups_out, optional=True)
        self.features_out = check_positive("features_out", features_out, optional=True)
        self.features_in: int | None = None

    # Hooks for subclasses -------------------------------------------------

    @property
    def _num_outputs(self) -> int:
        raise NotImplementedError

    def _input_coordinates(self) -> int:
        raise NotImplementedError

    def _input_channels(self) -> int:
        raise NotImplementedError

    def _kernel_initializer(self) -> Callable[..., Any]:
        """Initializer of the (groups_in, groups_out) kernel."""
        return self.kernel_initializer

    def _fold_kernel(self, kernel: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    def _apply_kernel(self, inputs: tf.Tensor, kernel: tf.Tensor) -> tf.Tensor:
        raise NotImplementedError

    @classmethod
    def _state_config(
        cls, state: FactorState, config: dict[str, Any]
    ) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _build_shape(cls, features_in: int) -> tuple[int | None, ...]:
        raise NotImplementedError

    def _plain_layer(self) -> keras.layers.Layer:
        raise NotImplementedError

    # Weights -------------------------------------------------------------

    def _build_factors(self, features_in: int) -> None:
        """Resolve default sizes and create every variable.

        Must be called by the subclass's ``build`` after it has resolved its
        own original sizes (``input_dim`` / ``input_channels``).

        Args:
            features_in: Channels of the actual input (last axis).
        """
        self.features_in = int(features_in)
        coordinates = self._input_coordinates()
        channels = self._input_channels()
        outputs = self._num_outputs
        if self.groups_in is None:
            self.groups_in = coordinates
        if self.groups_out is None:
            self.groups_out = outputs
        if self.features_out is None:
            self.features_out = outputs
        groups_in, groups_out = self.groups_in, self.groups_out

        self.kernel = self.add_weight(
            name="kernel",
            shape=(groups_in, groups_out),
            initializer=self._kernel_initializer(),
            trainable=True,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(groups_out,),
                initializer=self.bias_initializer,
                trainable=True,
            )
        self.gain = self.norm0 = None
        if self.frobenius_norm:
            self.gain = self.add_weight(
                name="gain", shape=(), initializer="ones", trainable=True
            )
            self.norm0 = self.add_weight(
                name="norm0", shape=(), initializer="ones", trainable=False
            )

        def fixed(name: str, values: np.ndarray) -> keras.Variable:
            return self.add_weight(
                name=name,
                shape=values.shape,
                dtype="int32" if values.dtype == np.int32 else self.variable_dtype,
                initializer=_array_initializer(values),
                trainable=False,
            )

        ones = np.ones
        features_out = self.features_out
        self.col_mask = fixed("col_mask", ones(groups_in, np.float32))
        self.row_mask = fixed("row_mask", ones(groups_out, np.float32))
        self.q_index = fixed("q_index", _placeholder_index(coordinates, groups_in))
        self.q_coef = fixed("q_coef", ones(coordinates, np.float32))
        self.p_index = fixed("p_index", _placeholder_index(outputs, groups_out))
        self.p_coef = fixed("p_coef", ones(outputs, np.float32))
        self.in_index = fixed("in_index", _placeholder_index(channels, features_in))
        self.in_scale = fixed("in_scale", ones(channels, np.float32))
        self.feature_group = fixed(
            "feature_group", _placeholder_index(features_out, groups_out)
        )
        self.feature_scale = fixed("feature_scale", ones(features_out, np.float32))
        if self.frobenius_norm:
            self.reset_frobenius_reference()

    def reset_frobenius_reference(self) -> None:
        """Set ``norm0`` to the current masked kernel norm and ``gain`` to 1.

        Afterwards the Frobenius-normalized kernel equals the masked kernel.
        Does nothing without Frobenius normalization.
        """
        if not self.frobenius_norm:
            return
        self.norm0.assign(self._masked_norm())
        self.gain.assign(1.0)

    # Forward pass --------------------------------------------------------

    def _masked_norm(self) -> tf.Tensor:
        """``||masked K||_F``, floored at :data:`NORM_EPSILON`.

        Computed as ``sqrt(col_mask . (K * K) row_mask)``, which never forms
        the masked kernel (one pass over K fewer, forward and backward); the
        floor keeps the gradient of an all-zero kernel finite.
        """
        squares = tf.linalg.matvec(tf.square(self.kernel), self.row_mask)
        squared_norm = tf.reduce_sum(squares * self.col_mask)
        return tf.sqrt(tf.maximum(squared_norm, NORM_EPSILON**2))

    def _scale(self) -> tf.Tensor:
        """The scalar c with effective kernel = c * masked kernel.

        ``gain * norm0 / ||masked K||`` under Frobenius normalization, else 1.
        """
        if not self.frobenius_norm:
            return tf.constant(1.0, self.kernel.dtype)
        return self.gain * self.norm0 / self._masked_norm()

    def kernel_scale(self) -> tf.Tensor:
        """The scalar c with ``effective_kernel() == c * masked kernel``.

        1 without Frobenius normalization. Inside a traced function that
        already called the layer, the value computed by that call is reused,
        so loss terms that need a few effective vectors cost almost nothing.
        """
        cached = self._traced_scale
        if (
            cached is not None
            and tf.inside_function()
            and getattr(cached, "graph", None) is tf.compat.v1.get_default_graph()
        ):
            return cached
        return self._scale()

    def effective_kernel(self) -> tf.Tensor:
        """W'^T as the layer computes with it: masked, Frobenius-normalized.

        Matches :attr:`FactorState.effective_kernel` of :meth:`factor_state`.

        Returns:
            (groups_in, groups_out) tensor, differentiable in the trainable
            weights.
        """
        kernel = masked_kernel(self.kernel, self.col_mask, self.row_mask)
        return kernel * self._scale() if self.frobenius_norm else kernel

    def _effective_bias(self) -> tf.Tensor:
        return self.bias * self.row_mask

    def _pre_activation(self, inputs: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
        """The output features before the activation, ``(..., features_out)``.

        Folds the effective kernel onto the actual input, applies it, adds the
        bias and forms the features. Subclasses may override with a cheaper
        equivalent.

        Args:
            inputs: The layer's input.
            scale: :meth:`kernel_scale` of this call.
        """
        kernel = masked_kernel(self.kernel, self.col_mask, self.row_mask)
        if self.frobenius_norm:
            kernel = kernel * scale
        z = self._apply_kernel(inputs, self._fold_kernel(kernel))
        if self.use_bias:
            z = z + self._effective_bias()
        return select_features(z, self.feature_group, self.feature_scale)

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        """Apply the layer: P W' Q with input mapping and output features."""
        scale = self._scale()
        # Not tracked by Keras: a tensor of the current trace, see kernel_scale.
        object.__setattr__(self, "_traced_scale", scale)
        return self.activation(self._pre_activation(inputs, scale))

    # States --------------------------------------------------------------

    def _require_built(self, what: str) -> None:
        if not self.built:
            raise ConfigError(
                f"Cannot {what} of layer {self.name!r}: it is not built. "
                "Build it or call it on an input first."
            )

    def factor_state(self) -> FactorState:
        """Return a copy of every factor array as NumPy.

        Returns:
            A :class:`FactorState`; ``bias`` is None without bias, ``gain``
            and ``norm0`` are None without Frobenius normalization.

        Raises:
            ConfigError: If the layer is not built.
        """
        self._require_built("get the factor state")
        values = {}
        for field in dataclasses.fields(FactorState):
            variable = getattr(self, field.name)
            values[field.name] = (
                None
                if variable is None
                else np.array(keras.ops.convert_to_numpy(variable), copy=True)
            )
        return FactorState(**values)

    def assign_factor_state(
        self, state: FactorState, unchanged: FactorState | None = None
    ) -> None:
        """Assign every factor array from a state of the same shapes.

        Everything is checked before anything is assigned, so a rejected state
        leaves the layer unchanged.

        Args:
            state: Arrays with exactly the shapes of :meth:`factor_state`.
            unchanged: Optionally, the layer's current state (as
                :meth:`factor_state` returned it); fields equal to it are not
                assigned again. A fusion changes a few of the arrays only.

        Raises:
            ConfigError: If the layer is not built, a field's shape differs
                (the message names the field and both shapes), an optional
                field is present on only one side, or an index is out of range.
        """
        self._require_built("assign a factor state")
        updates = []
        for field in dataclasses.fields(FactorState):
            name = field.name
            variable, value = getattr(self, name), getattr(state, name)
            if variable is None or value is None:
                if (variable is None) != (value is None):
                    raise ConfigError(
                        f"FactorState field {name!r} is "
                        f"{'None' if value is None else 'set'}, but layer "
                        f"{self.name!r} was built with "
                        f"{_OPTIONAL_FIELDS[name]}={variable is not None}."
                    )
                continue
            value = np.asarray(value)
            if tuple(value.shape) != tuple(variable.shape):
                raise ConfigError(
                    f"FactorState field {name!r} has shape {tuple(value.shape)}, "
                    f"layer {self.name!r} expects {tuple(variable.shape)}."
                )
            if name in _INT_FIELDS:
                bound = getattr(self, _INDEX_BOUNDS[name])
                if value.size and (value.min() < 0 or value.max() >= bound):
                    raise ConfigError(
                        f"FactorState field {name!r} has indices in "
                        f"[{value.min()}, {value.max()}], expected [0, "
                        f"{bound - 1}] ({_INDEX_BOUNDS[name]}={bound})."
                    )
            if unchanged is not None and np.array_equal(
                value, getattr(unchanged, name)
            ):
                continue
            updates.append((variable, value.astype(variable.dtype)))
        for variable, value in updates:
            variable.assign(value)

    @classmethod
    def from_state(cls, state: FactorState, **config: Any) -> "FactorizedLayer":
        """Build a layer whose shapes are those of ``state`` and assign it.

        Sizes (outputs, groups, input coordinates, features, use of bias and
        Frobenius normalization) come from the state and override the same
        keys in ``config``, so ``config`` may be an older ``get_config()``.

        Args:
            state: The factor arrays.
            **config: Other constructor arguments (name, activation, ...),
                plus optionally ``features_in``, the channels of the actual
                input (default: ``max(in_index) + 1``), or ``input_shape``,
                the full build shape, batch axis included (give it for a
                convolution whose MACs should be counted: the spatial size
                is not in the state).

        Returns:
            A built layer holding ``state``.

        Raises:
            ConfigError: If the state is inconsistent.
        """
        input_shape = config.pop("input_shape", None)
        features_in = config.pop("features_in", None)
        if input_shape is not None:
            input_shape = tuple(input_shape)
            if features_in is not None and features_in != input_shape[-1]:
                raise ConfigError(
                    f"from_state got features_in={features_in!r} and "
                    f"input_shape={input_shape!r}, whose last axis differs."
                )
            features_in = input_shape[-1]
        if features_in is None:
            if np.size(state.in_index) == 0:
                raise ConfigError(
                    "from_state cannot infer features_in from an empty in_index; "
                    "pass features_in."
                )
            features_in = int(np.max(state.in_index)) + 1
        features_in = check_positive("features_in", features_in)
        if input_shape is None:
            input_shape = cls._build_shape(features_in)
        groups_in, groups_out = np.shape(state.kernel)
        config.update(
            groups_in=int(groups_in),
            groups_out=int(groups_out),
            features_out=int(np.size(state.feature_group)),
            use_bias=state.bias is not None,
            frobenius_norm=state.gain is not None,
        )
        config.update(cls._state_config(state, config))
        layer = cls(**config)
        layer.build(input_shape)
        layer.assign_factor_state(state)
        return layer

    def _load_original(self, kernel: np.ndarray, bias: np.ndarray | None) -> None:
        """Load a plain layer's (coordinates, outputs) kernel and its bias."""
        self.kernel.assign(np.asarray(kernel).reshape(self.kernel.shape))
        if self.use_bias:
            self.bias.assign(np.asarray(bias))
        self.reset_frobenius_reference()

    def _plain_weights(self) -> list[np.ndarray]:
        """Kernel (and bias) of the equivalent plain layer, features last."""
        kernel = select_features(
            self._fold_kernel(self.effective_kernel()),
            self.feature_group,
            self.feature_scale,
        )
        weights = [keras.ops.convert_to_numpy(kernel)]
        if self.use_bias:
            bias = select_features(
                self._effective_bias(), self.feature_group, self.feature_scale
            )
            weights.append(keras.ops.convert_to_numpy(bias))
        return weights

    def to_plain(self) -> keras.layers.Layer:
        """Fold the factors into an equivalent, built plain Keras layer.

        Returns:
            A layer with ``features_out`` outputs, the same name and
            activation, that computes the same function on the same input.

        Raises:
            ConfigError: If the layer is not built.
        """
        self._require_built("fold into a plain layer")
        plain = self._plain_layer()
        # The input shape this layer was built on (spatial sizes included, so
        # costs can be counted), with its actual channel count.
        built_on = (self.get_build_config() or {}).get("input_shape")
        if built_on is None:
            plain.build(self._build_shape(self.features_in))
        else:
            plain.build((*built_on[:-1], self.features_in))
        plain.set_weights(self._plain_weights())
        return plain

    def get_config(self) -> dict[str, Any]:
        """Return the common constructor arguments merged over the base's."""
        config = super().get_config()
        config.update(
            activation=keras.activations.serialize(self.activation),
            use_bias=self.use_bias,
            frobenius_norm=self.frobenius_norm,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer),
            groups_in=self.groups_in,
            groups_out=self.groups_out,
            features_out=self.features_out,
        )
        return config


@register_params(FactorizedLayer)
def trainable_param_count(layer: FactorizedLayer) -> int:
    """Parameters of a factorized layer: kernel, bias and gain only.

    The index, coefficient and mask vectors and ``norm0`` are bookkeeping of
    P and Q, not learned parameters.

    Args:
        layer: A built factorized layer.

    Returns:
        ``groups_in * groups_out`` (+ ``groups_out`` with bias) (+ 1 with FN).
    """
    count = int(np.prod(layer.kernel.shape))
    if layer.use_bias:
        count += int(layer.bias.shape[0])
    if layer.frobenius_norm:
        count += 1
    return count


# It exports as one plain Dense/Conv2D with the layer's activation.
register_batch_norm_folding(FactorizedLayer)
