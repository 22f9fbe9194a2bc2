"""The task loss of a classifier, chosen from its output layer, never assumed.

A model that ends in softmax outputs probabilities, one with a linear last
layer outputs logits, and the two need different losses: feeding probabilities
to a from-logits cross-entropy trains on the wrong objective without any error.
`resolve_task_loss` reads the layer that produces the model's output and
returns a `TaskLoss` whose tensor functions the train and eval steps call.

Configs and flags spell the choice with strings, `loss` in `LOSSES` and
`from_logits` in `FROM_LOGITS` ("auto" reads the model), so that a config is
JSON-able and a flag's value is the config's value.
"""

import dataclasses

import keras
import tensorflow as tf

from keras_rank.core.errors import ConfigError

LOSSES = ("auto", "sparse_categorical_crossentropy", "categorical_crossentropy")
FROM_LOGITS = ("auto", "true", "false")

# What "auto" means for `loss`: our data sources yield integer class labels.
_DEFAULT_LOSS = "sparse_categorical_crossentropy"

_SUPPORTED_OUTPUTS = (
    "a layer with activation 'softmax' (probabilities) or 'linear'/None "
    "(logits), keras.layers.Softmax(axis=-1), keras.layers.Activation('softmax')"
)


@dataclasses.dataclass(frozen=True)
class TaskLoss:
    """A classification loss and accuracy, as tensor functions.

    Both functions are plain TensorFlow maths, usable inside a `tf.function`
    and a `strategy.run` replica step. Labels are integer class ids of shape
    `(batch,)`; with `categorical_crossentropy` they may also be one-hot (or
    soft) labels of the outputs' shape.

    Attributes:
        kind: `"sparse_categorical_crossentropy"` or
            `"categorical_crossentropy"`.
        from_logits: Whether the model's outputs are logits (True) or
            probabilities (False).
    """

    kind: str = _DEFAULT_LOSS
    from_logits: bool = True

    def __post_init__(self):
        if self.kind not in LOSSES[1:]:
            raise ConfigError(
                f"Expected kind in {LOSSES[1:]}. Received: kind={self.kind!r}"
            )
        if not isinstance(self.from_logits, bool):
            raise ConfigError(
                "Expected from_logits in (True, False). "
                f"Received: from_logits={self.from_logits!r}"
            )

    def per_example_loss(self, labels, outputs) -> tf.Tensor:
        """Returns the cross-entropy of each example, shape `(batch,)`.

        Args:
            labels: Integer class ids `(batch,)`; for categorical
                cross-entropy also one-hot labels `(batch, classes)`.
            outputs: The model's outputs `(batch, classes)`.

        Raises:
            ConfigError: One-hot labels given to the sparse loss.
        """
        labels = tf.convert_to_tensor(labels)
        outputs = tf.convert_to_tensor(outputs)
        if _are_class_ids(labels, outputs):
            if self.kind == "sparse_categorical_crossentropy":
                return keras.losses.sparse_categorical_crossentropy(
                    labels, outputs, from_logits=self.from_logits
                )
            labels = tf.one_hot(
                tf.cast(labels, tf.int32), tf.shape(outputs)[-1], dtype=outputs.dtype
            )
        elif self.kind == "sparse_categorical_crossentropy":
            raise ConfigError(
                "loss='sparse_categorical_crossentropy' takes integer class ids "
                f"of shape (batch,). Received: labels of shape {labels.shape} for "
                f"outputs of shape {outputs.shape}; use "
                "loss='categorical_crossentropy' for one-hot labels."
            )
        return keras.losses.categorical_crossentropy(
            tf.cast(labels, outputs.dtype), outputs, from_logits=self.from_logits
        )

    def correct(self, labels, outputs) -> tf.Tensor:
        """Returns 1.0 where the argmax of `outputs` is the label, else 0.0.

        Args:
            labels: Integer class ids `(batch,)` or one-hot labels
                `(batch, classes)` (their argmax is the class).
            outputs: The model's outputs `(batch, classes)`.

        Returns:
            A float32 tensor of shape `(batch,)`.
        """
        labels = tf.convert_to_tensor(labels)
        outputs = tf.convert_to_tensor(outputs)
        if _are_class_ids(labels, outputs):
            classes = tf.cast(labels, tf.int32)
        else:
            classes = tf.argmax(labels, axis=-1, output_type=tf.int32)
        predictions = tf.argmax(outputs, axis=-1, output_type=tf.int32)
        return tf.cast(tf.equal(predictions, classes), tf.float32)


def _are_class_ids(labels: tf.Tensor, outputs: tf.Tensor) -> bool:
    """Tells integer class ids (one axis less than outputs) from one-hot labels."""
    return labels.shape.rank == outputs.shape.rank - 1


def check_task_loss_args(loss: str, from_logits: str) -> None:
    """Raises `ConfigError` unless `loss` and `from_logits` are allowed values.

    Args:
        loss: One of `LOSSES`.
        from_logits: One of `FROM_LOGITS`.
    """
    if loss not in LOSSES:
        raise ConfigError(f"Expected loss in {LOSSES}. Received: loss={loss!r}")
    if from_logits not in FROM_LOGITS:
        raise ConfigError(
            f"Expected from_logits in {FROM_LOGITS}. "
            f"Received: from_logits={from_logits!r}"
        )


def resolve_task_loss(
    model: keras.Model, loss: str = "auto", from_logits: str = "auto"
) -> TaskLoss:
    """Returns the task loss for `model`, reading its output layer.

    The layer producing the model's single output decides whether the model
    outputs probabilities (activation softmax, `keras.layers.Softmax`,
    `keras.layers.Activation("softmax")`) or logits (a layer whose activation
    is linear or None). Models nested at the output are followed to their own
    output layer; Sequential models need not be built.

    Args:
        model: A functional or Sequential Keras model with one output. A
            subclassed model has no graph to read: pass `from_logits`.
        loss: One of `LOSSES`; "auto" is sparse categorical cross-entropy
            (integer class labels).
        from_logits: One of `FROM_LOGITS`; "auto" reads the output layer,
            "true"/"false" decide, and must agree with a softmax or linear
            output layer.

    Returns:
        The `TaskLoss` to train and evaluate `model` with.

    Raises:
        ConfigError: A bad `loss` or `from_logits`; a model with several
            outputs; with "auto", an output layer that is neither softmax nor
            linear; an explicit `from_logits` that contradicts the output
            layer (a softmax output is never fed to a from-logits loss).
    """
    check_task_loss_args(loss, from_logits)
    found_logits, found = _output_kind(_output_layer(model))
    if from_logits == "auto":
        if found_logits is None:
            raise ConfigError(
                f"Cannot tell whether model '{model.name}' outputs logits or "
                f"probabilities: its output comes from {found}. Supported: "
                f"{_SUPPORTED_OUTPUTS}. Pass from_logits='true' or 'false' to "
                "choose. Received: from_logits='auto'"
            )
        chosen = found_logits
    else:
        chosen = from_logits == "true"
        if found_logits is not None and chosen != found_logits:
            raise ConfigError(
                f"Model '{model.name}' outputs "
                f"{'logits' if found_logits else 'probabilities'} (its output "
                f"comes from {found}), but from_logits={from_logits!r}: a softmax "
                "output is never fed to a from-logits loss, nor logits to a "
                "loss on probabilities. Use from_logits='auto' or "
                f"{'true' if found_logits else 'false'!r}."
            )
    return TaskLoss(_DEFAULT_LOSS if loss == "auto" else loss, chosen)


def _output_layer(model: keras.Model) -> keras.Layer | None:
    """Returns the layer computing the model's output; None without a graph.

    Raises:
        ConfigError: The model (or a model nested at its output) has several
            outputs, or a list or dict of one.
    """
    if isinstance(model, keras.Sequential):
        layer = model.layers[-1] if model.layers else None
    else:
        outputs = getattr(model, "outputs", None)
        if outputs is None:
            return None
        if len(outputs) != 1 or not isinstance(model.output, keras.KerasTensor):
            raise ConfigError(
                "Expected a model with a single output tensor. Received: model "
                f"'{model.name}' whose output is a {type(model.output).__name__} "
                f"of {len(outputs)} tensor(s)."
            )
        # KerasHistory (operation, node_index, tensor_index): the producer.
        layer = outputs[0]._keras_history.operation
    if isinstance(layer, keras.Model) and layer is not model:
        return _output_layer(layer)
    return layer


def _output_kind(layer: keras.Layer | None) -> tuple[bool | None, str]:
    """Returns (outputs are logits: True/False/None if unknown, description)."""
    if layer is None:
        return None, "a model without a functional graph (subclassed, or empty)"
    name = f"layer '{layer.name}' ({type(layer).__name__})"
    if isinstance(layer, keras.layers.Softmax):
        if layer.axis == -1:
            return False, name
        return None, f"{name} over axis={layer.axis}"
    if not hasattr(layer, "activation"):
        return None, f"{name}, which has no activation attribute"
    activation = layer.activation
    if activation is None or activation is keras.activations.linear:
        return True, f"{name} with a linear activation"
    if activation is keras.activations.softmax:
        return False, f"{name} with activation 'softmax'"
    activation_name = getattr(activation, "__name__", repr(activation))
    return None, f"{name} with activation '{activation_name}'"
