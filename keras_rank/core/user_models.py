"""A user's own Keras model: loading it and checking it fits the data.

keras_rank reads a model's layer graph (to link layers, to rebuild it at
smaller shapes, to restore it from a checkpoint), so it takes Functional and
Sequential models, the two kinds whose graph Keras records. A subclassed
model keeps its graph in Python code; it is refused with one line that says
what is supported.
"""

import json
import os
import pathlib
import zipfile

import keras
from keras.src.models.functional import Functional

from keras_rank.core.errors import ConfigError
from keras_rank.core.separable import split_separable_convs

SUPPORTED_KINDS = "Functional (keras.Model(inputs, outputs)) and Sequential"


def check_graph_model(model: keras.Model) -> None:
    """Raises `ConfigError` unless `model` is a Functional or Sequential model.

    Args:
        model: The model to check.
    """
    if not isinstance(model, keras.Model):
        raise ConfigError(f"Expected a keras.Model. Received: {model!r}")
    if isinstance(model, Functional | keras.Sequential):
        return
    raise ConfigError(
        f"Model '{model.name}' is a subclassed keras.Model "
        f"({type(model).__name__}); keras_rank supports {SUPPORTED_KINDS} "
        "models, whose layer graph it can read and rebuild."
    )


def _is_graph_model(operation) -> bool:
    return isinstance(operation, Functional | keras.Sequential)


def _flat_graph(model: keras.Model) -> keras.Model:
    """Returns `model` with its nested models' layers called in their place.

    A layer (or operation) of a nested model whose name is taken (by one of
    the outer model or of another nested model) is replaced by a copy named
    ``<nested model>_<layer>``, with its weights. Reads Keras's graph
    through its private ``_functional`` and ``_run_through_graph``.
    """
    graph = model._functional if isinstance(model, keras.Sequential) else model
    outer = {id(op) for op in graph.operations if not _is_graph_model(op)}
    names = {op.name for op in graph.operations if id(op) in outer}
    used: dict[int, object] = {}
    copies = []

    def operation_fn(operation):
        if _is_graph_model(operation) or id(operation) in used:
            return used.get(id(operation), operation)
        if operation.name in names and id(operation) not in outer:
            name, number = f"{owner[-1]}_{operation.name}", 1
            while name in names:
                name, number = f"{owner[-1]}_{operation.name}_{number}", number + 1
            copy = operation.__class__.from_config(
                {**operation.get_config(), "name": name}
            )
            copies.append((operation, copy))
            used[id(operation)] = copy
        else:
            used[id(operation)] = operation
        names.add(used[id(operation)].name)
        return used[id(operation)]

    owner = [model.name]

    def call(operation, *args, **kwargs):
        if not _is_graph_model(operation):
            return operation(*args, **kwargs)
        graph = (
            operation._functional
            if isinstance(operation, keras.Sequential)
            else operation
        )
        owner.append(operation.name)
        try:
            return graph._run_through_graph(
                args[0] if len(args) == 1 else args, operation_fn, call_fn=call
            )
        finally:
            owner.pop()

    outputs = graph._run_through_graph(model.inputs, operation_fn, call_fn=call)
    for old, new in copies:
        if getattr(old, "weights", None):
            new.set_weights(old.get_weights())
    return keras.Model(_single(model.inputs), outputs, name=model.name)


def as_functional_copy(model: keras.Model) -> keras.Model:
    """Returns a flat Functional copy of a Functional or Sequential model.

    The copy is made from the model's config, with the same weights, in the
    current distribution scope. Its variable paths are then `layer/weight`,
    as they stay through clones, rebuilds and checkpoints (a Sequential made
    in code has `model/layer/weight` paths that its own `from_config` copy
    would not share, which would detach optimizer slots from their
    variables). Nested Functional and Sequential models are flattened: their
    layers are called in place (and so can be compressed), a layer whose
    name is already taken renamed ``<nested model>_<layer>``. Each
    SeparableConv2D ``s`` becomes ``s_depthwise`` and ``s_pointwise``, the
    DepthwiseConv2D and 1x1 Conv2D it computes (`keras_rank.core.separable`),
    so that its pointwise matrix is compressed like any 1x1 convolution.

    Args:
        model: A built Functional or Sequential model.

    Raises:
        ConfigError: The model is subclassed or not built.
    """
    check_graph_model(model)
    try:
        inputs, outputs = model.inputs, model.outputs
    except (AttributeError, ValueError) as error:
        raise ConfigError(
            f"Model '{model.name}' is not built; give it an Input or call "
            "model.build(input_shape) first."
        ) from error
    if any(_is_graph_model(layer) for layer in model.layers):
        graph = _flat_graph(model)
    else:
        graph = keras.Model(_single(inputs), _single(outputs), name=model.name)
    copy = graph.__class__.from_config(graph.get_config())
    copy.set_weights(graph.get_weights())
    if any(type(layer) is keras.layers.SeparableConv2D for layer in copy.layers):
        copy = split_separable_convs(copy)
    return copy


def _single(tensors: list) -> list | keras.KerasTensor:
    """A one-tensor list as the tensor, as `keras.Model(x, y)` is usually made."""
    return tensors[0] if len(tensors) == 1 else tensors


def load_model_file(
    path: str | os.PathLike, argument: str = "model_path"
) -> keras.Model:
    """Loads a user's model from a `.keras` file, without its compile state.

    Training starts from the weights stored in the file. Custom layers must
    be registered (`keras.saving.register_keras_serializable`) and imported
    before the call.

    Args:
        path: A file written by `model.save("name.keras")`.
        argument: The name of the setting that gave `path`, for errors.

    Returns:
        The Functional or Sequential model.

    Raises:
        ConfigError: The file is missing, is not a `.keras` file, cannot be
            loaded, or holds a subclassed model.
    """
    file = pathlib.Path(path).expanduser()
    if file.suffix != ".keras":
        raise ConfigError(
            f"Expected {argument} to name a .keras file (written by "
            f"model.save('name.keras')). Received: {argument}='{path}'"
        )
    if not file.is_file():
        raise ConfigError(f"{argument}='{path}': no such file.")
    if not zipfile.is_zipfile(file):
        raise ConfigError(
            f"{argument}='{path}' is not a .keras file: not a zip archive "
            "(model.save('name.keras') writes one)."
        )
    try:
        model = keras.saving.load_model(file, compile=False)
    except Exception as error:  # Any loading failure is bad input here.
        raise ConfigError(
            f"{argument}='{path}' cannot be loaded: {_load_failure(file, error)}"
        ) from error
    check_graph_model(model)
    return model


def _load_failure(file: pathlib.Path, error: Exception) -> str:
    """Why Keras could not load `file`, in one sentence a user can act on."""
    try:
        with zipfile.ZipFile(file) as archive:
            class_name = json.loads(archive.read("config.json"))["class_name"]
    except (KeyError, ValueError, OSError, zipfile.BadZipFile):
        class_name = None
    if class_name is not None and class_name not in ("Functional", "Sequential"):
        return (
            f"its model class '{class_name}' is not registered. A subclassed "
            f"model cannot be compressed here: keras_rank supports "
            f"{SUPPORTED_KINDS} models."
        )
    # Keras appends the whole object config to some messages: keep the reason.
    reason = " ".join(str(error).split()).split(" Full object config")[0]
    return (
        f"{reason[:300] or type(error).__name__} (custom layers must be "
        "registered with keras.saving.register_keras_serializable and imported "
        "first)."
    )


def check_fits_data(
    model: keras.Model, input_shape: tuple[int, ...], num_classes: int
) -> None:
    """Raises `ConfigError` unless `model` takes the examples and the classes.

    Args:
        model: A Functional or Sequential model.
        input_shape: Shape of one example of the data (no batch axis).
        num_classes: Number of classes of the data.
    """
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ConfigError(
            f"Model '{model.name}' has {len(model.inputs)} inputs and "
            f"{len(model.outputs)} outputs; expected one input (the image) and "
            "one output (the class scores)."
        )
    expected = tuple(model.inputs[0].shape[1:])
    fits = len(expected) == len(input_shape) and all(
        want is None or want == got
        for want, got in zip(expected, input_shape, strict=True)
    )
    if not fits:
        raise ConfigError(
            f"Model '{model.name}' takes inputs of shape {expected}, but the data "
            f"has examples of shape {tuple(input_shape)}; add a Reshape or "
            "Flatten layer, or use data of the model's shape."
        )
    output = tuple(model.outputs[0].shape[1:])
    if len(output) != 1 or (output[0] is not None and output[0] < num_classes):
        raise ConfigError(
            f"Model '{model.name}' outputs shape {output}; the data has "
            f"{num_classes} classes, so expected (units,) with units >= "
            f"{num_classes}."
        )
