"""A plain Keras 3 model rebuilt in tf_keras (Keras 2), weights copied.

tensorflow-model-optimization (TFMOT) quantizes tf_keras models only. The
deployable form of a keras_rank model
(`keras_rank.layers.deployable.deployable_model`) holds plain layers, so it can be
written again layer by layer in tf_keras: the
Keras 3 functional graph is walked from its inputs (branches, residual
additions and shared layers included), each layer is constructed from a
curated list of its arguments (Keras 3 and tf_keras serialize dtype
policies and initializers differently, so configs are not fed across), and
its weights are copied. Initializers, regularizers and constraints are not
carried over: the weights are copied and inference does not use them.

Importing tf_keras does not change what `tf.keras` means; TFMOT, which does,
is not imported here.
"""

from collections.abc import Iterable
from typing import Any

import keras
import numpy as np
import tf_keras

from keras_rank.core.errors import ExportError

_ARGUMENTS: dict[type, tuple[str, ...]] = {
    keras.layers.Dense: ("units", "activation", "use_bias"),
    keras.layers.Conv2D: (
        "filters",
        "kernel_size",
        "strides",
        "padding",
        "data_format",
        "dilation_rate",
        "groups",
        "activation",
        "use_bias",
    ),
    keras.layers.DepthwiseConv2D: (
        "kernel_size",
        "strides",
        "padding",
        "depth_multiplier",
        "data_format",
        "dilation_rate",
        "activation",
        "use_bias",
    ),
    keras.layers.MaxPooling2D: ("pool_size", "strides", "padding", "data_format"),
    keras.layers.AveragePooling2D: ("pool_size", "strides", "padding", "data_format"),
    keras.layers.GlobalAveragePooling2D: ("data_format", "keepdims"),
    keras.layers.GlobalMaxPooling2D: ("data_format", "keepdims"),
    keras.layers.Flatten: ("data_format",),
    keras.layers.Reshape: ("target_shape",),
    keras.layers.Dropout: ("rate", "noise_shape", "seed"),
    keras.layers.Activation: ("activation",),
    keras.layers.ReLU: ("max_value", "negative_slope", "threshold"),
    keras.layers.Softmax: ("axis",),
    keras.layers.BatchNormalization: (
        "axis",
        "momentum",
        "epsilon",
        "center",
        "scale",
        "renorm",
        "renorm_clipping",
        "renorm_momentum",
    ),
    keras.layers.Add: (),
    keras.layers.Subtract: (),
    keras.layers.Multiply: (),
    keras.layers.Average: (),
    keras.layers.Maximum: (),
    keras.layers.Minimum: (),
    keras.layers.Concatenate: ("axis",),
    keras.layers.Rescaling: ("scale", "offset"),
    keras.layers.ZeroPadding2D: ("padding", "data_format"),
}
"""Keras 3 layer class -> the constructor arguments carried over to tf_keras's
class of the same name (`name` and `trainable` always)."""

SUPPORTED_LAYERS: tuple[str, ...] = (
    "InputLayer",
    *(layer_class.__name__ for layer_class in _ARGUMENTS),
)
"""Names of the Keras 3 layer classes `to_tf_keras` rebuilds (exact classes,
not subclasses)."""


_DIFFERENT_ACTIVATIONS = frozenset({"hard_sigmoid"})
"""Activations tf_keras defines otherwise (hard_sigmoid: 0.2 x + 0.5 clipped,
not relu6(x + 3) / 6)."""


def _unsupported(operation: Any, why: str) -> ExportError:
    """Returns the one-line error naming `operation` (a layer, model or op)."""
    if isinstance(operation, keras.Model):
        what = f"model {operation.name!r} of class {type(operation).__name__}"
    elif isinstance(operation, keras.layers.Layer):
        what = f"layer {operation.name!r} of class {type(operation).__name__}"
    else:
        what = f"keras.ops call {operation.name!r} ({type(operation).__name__})"
    return ExportError(
        f"Expected a model of plain layers of the classes {', '.join(SUPPORTED_LAYERS)}"
        f" to rebuild in tf_keras. Received: {what}{why}"
    )


def _activation_name(layer: keras.layers.Layer, activation: Any) -> str:
    """Returns the name of a built-in activation tf_keras defines alike."""
    name = keras.activations.serialize(activation)
    try:
        tf_keras.activations.get(name)
    except (TypeError, ValueError):
        raise _unsupported(layer, f" with activation {name!r}") from None
    if name in _DIFFERENT_ACTIVATIONS:
        raise _unsupported(
            layer, f" with activation {name!r}, which tf_keras defines otherwise"
        )
    return name


def _rebuild_layer(layer: keras.layers.Layer) -> tf_keras.layers.Layer:
    """Returns an unbuilt tf_keras layer with `layer`'s name and arguments."""
    if type(layer) not in _ARGUMENTS:
        raise _unsupported(layer, "")
    config = layer.get_config()
    arguments = {key: config[key] for key in _ARGUMENTS[type(layer)]}
    if "activation" in arguments:
        arguments["activation"] = _activation_name(layer, layer.activation)
    layer_class = getattr(tf_keras.layers, type(layer).__name__)
    try:
        return layer_class(name=layer.name, trainable=layer.trainable, **arguments)
    except (TypeError, ValueError) as error:
        raise _unsupported(layer, f": {error}") from None


def _producing_node(tensor: keras.KerasTensor) -> Any:
    history = tensor._keras_history
    return history.operation._inbound_nodes[history.node_index]


def _nodes_in_call_order(inputs: list, outputs: list) -> list:
    """Returns the nodes between `inputs` and `outputs`, each after those it reads."""
    input_ids = {id(tensor) for tensor in inputs}
    ordered, visited = [], set()
    stack = [(_producing_node(tensor), False) for tensor in reversed(outputs)]
    while stack:
        node, inputs_done = stack.pop()
        if inputs_done:
            ordered.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for tensor in reversed(node.input_tensors):
            if id(tensor) not in input_ids:
                stack.append((_producing_node(tensor), False))
    return ordered


def _copy_weights(source: keras.layers.Layer, target: tf_keras.layers.Layer) -> None:
    weights = source.get_weights()
    shapes = [tuple(weight.shape) for weight in weights]
    target_shapes = [tuple(weight.shape) for weight in target.get_weights()]
    if shapes != target_shapes:
        raise _unsupported(
            source, f" whose weights {shapes} do not match tf_keras's {target_shapes}"
        )
    target.set_weights(weights)


def to_tf_keras(model: keras.Model) -> tf_keras.Model:
    """Returns `model` rebuilt as a tf_keras functional model, weights copied.

    Every call of a layer in `model`'s graph becomes a call of one tf_keras
    layer of the same class and name (a layer called twice is shared again),
    so branching models (residual additions, concatenations) keep their
    shape. Inputs keep their names, shapes and dtypes.

    Args:
        model: A built Functional or Sequential Keras 3 model of the layer
            classes in `SUPPORTED_LAYERS` (the deployable form, no factorized
            or low-rank layers).

    Returns:
        The tf_keras model; it computes `model`'s outputs.

    Raises:
        ExportError: If `model` has no layer graph (subclassed) or a layer of
            another class, a nested model, an operation that is not a layer,
            or an activation tf_keras does not have.
    """
    inputs, outputs = getattr(model, "inputs", None), getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise _unsupported(model, " without a layer graph (a subclassed model?)")
    tensors: dict[int, Any] = {}
    for tensor in inputs:
        tensors[id(tensor)] = tf_keras.Input(
            shape=tensor.shape[1:],
            batch_size=tensor.shape[0],
            dtype=tensor.dtype,
            name=tensor._keras_history.operation.name,
        )
    rebuilt: dict[int, tuple[keras.layers.Layer, tf_keras.layers.Layer]] = {}
    for node in _nodes_in_call_order(inputs, outputs):
        layer = node.operation
        if id(layer) not in rebuilt:
            rebuilt[id(layer)] = (layer, _rebuild_layer(layer))
        args, kwargs = keras.tree.map_structure(
            lambda value: (
                tensors[id(value)] if isinstance(value, keras.KerasTensor) else value
            ),
            (node.arguments.args, node.arguments.kwargs),
        )
        results = keras.tree.flatten(rebuilt[id(layer)][1](*args, **kwargs))
        for tensor, result in zip(node.output_tensors, results, strict=True):
            tensors[id(tensor)] = result
    for source, target in rebuilt.values():
        _copy_weights(source, target)
    new_inputs = [tensors[id(tensor)] for tensor in inputs]
    new_outputs = [tensors[id(tensor)] for tensor in outputs]
    return tf_keras.Model(
        inputs=new_inputs[0] if len(new_inputs) == 1 else new_inputs,
        outputs=new_outputs[0] if len(new_outputs) == 1 else new_outputs,
        name=model.name,
    )


def max_abs_difference(
    model: keras.Model, rebuilt: tf_keras.Model, inputs: np.ndarray | Iterable
) -> float:
    """Returns the largest absolute difference of two models' outputs.

    Args:
        model: The Keras 3 model.
        rebuilt: Its tf_keras rebuild (`to_tf_keras(model)`).
        inputs: What both models are run on (inference mode), e.g. the
            representative examples.

    Returns:
        Max over every output element of ``|model(x) - rebuilt(x)|``.
    """
    expected = keras.tree.flatten(model.predict(inputs, verbose=0))
    received = keras.tree.flatten(rebuilt.predict(inputs, verbose=0))
    return max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0))
        for a, b in zip(expected, received, strict=True)
    )
