"""A small zoo of reference classifiers, built by name.

Every model outputs logits (no softmax), so losses must use ``from_logits=True``.
Layers carry explicit, stable names (``dense_1``, ``conv_1``, ...) so that a
model rebuilt later from its config has the same variable paths, which lets
checkpoints and rank schedules refer to layers by name.
"""

import numbers
from collections.abc import Callable, Sequence

import keras

from keras_rank.core.errors import ConfigError

Builder = Callable[[tuple[int, ...], int], keras.Model]

_MLP_HIDDEN_LAYERS = 5
_MLP_HIDDEN_UNITS = 500
_MLP_DROPOUT_RATE = 0.2


def _mlp(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the 784-500x5-10 MLP of Lee et al. 2021, with dropout 0.2."""
    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for i in range(1, _MLP_HIDDEN_LAYERS + 1):
        hidden = keras.layers.Dense(
            _MLP_HIDDEN_UNITS, activation="relu", name=f"dense_{i}"
        )
        x = keras.layers.Dropout(_MLP_DROPOUT_RATE, name=f"dropout_{i}")(hidden(x))
    logits = keras.layers.Dense(num_classes, name=f"dense_{_MLP_HIDDEN_LAYERS + 1}")
    outputs = logits(x)
    return keras.Model(inputs, outputs, name="mlp")


def _lenet300(
    input_shape: tuple[int, ...], num_classes: int, activation: str = "relu"
) -> keras.Model:
    """Build LeNet-300-100: two hidden layers of 300 and 100 units."""
    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Flatten(name="flatten")(inputs)
    x = keras.layers.Dense(300, activation=activation, name="dense_1")(x)
    x = keras.layers.Dense(100, activation=activation, name="dense_2")(x)
    outputs = keras.layers.Dense(num_classes, name="dense_3")(x)
    suffix = "" if activation == "relu" else f"_{activation}"
    return keras.Model(inputs, outputs, name=f"lenet300{suffix}")


def _lenet300_tanh(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build LeNet-300-100 with tanh units, as in Idelbayev & Carreira-Perpinan."""
    return _lenet300(input_shape, num_classes, activation="tanh")


def _lenet5(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the Caffe LeNet-5: conv 20, pool, conv 50, pool, dense 500."""
    if len(input_shape) != 3:
        raise ConfigError(
            "Model 'lenet5' needs input_shape (height, width, channels), "
            f"got {input_shape!r}."
        )
    inputs = keras.Input(shape=input_shape, name="input")
    x = keras.layers.Conv2D(20, 5, activation="relu", name="conv_1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool_1")(x)
    x = keras.layers.Conv2D(50, 5, activation="relu", name="conv_2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool_2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(500, activation="relu", name="dense_1")(x)
    outputs = keras.layers.Dense(num_classes, name="dense_2")(x)
    return keras.Model(inputs, outputs, name="lenet5")


_BUILDERS: dict[str, Builder] = {
    "lenet300": _lenet300,
    "lenet300_tanh": _lenet300_tanh,
    "lenet5": _lenet5,
    "mlp": _mlp,
}

MODEL_NAMES: tuple[str, ...] = tuple(sorted(_BUILDERS))


def _is_int(value: object) -> bool:
    """Tell whether ``value`` is an integer (Python or NumPy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    """Return ``input_shape`` as a tuple of ints, or raises if it is bad."""
    shape = tuple(input_shape)
    if not shape or not all(_is_int(dim) and dim >= 1 for dim in shape):
        raise ConfigError(
            "input_shape must be a non-empty sequence of positive integers "
            f"(batch dimension excluded), got {input_shape!r}."
        )
    return tuple(int(dim) for dim in shape)


def _check_num_classes(num_classes: int) -> None:
    """Raise unless ``num_classes`` is an integer of at least 2."""
    if not _is_int(num_classes) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}.")


def build_model(
    name: str,
    input_shape: Sequence[int] = (28, 28, 1),
    num_classes: int = 10,
) -> keras.Model:
    """Build a fresh, untrained model of the zoo by name.

    Args:
        name: One of ``MODEL_NAMES``: ``lenet300``, ``lenet300_tanh``, ``lenet5``
            or ``mlp``.
        input_shape: Shape of one example, without the batch dimension. The
            MLPs flatten whatever they get; ``lenet5`` needs
            ``(height, width, channels)``.
        num_classes: Number of output logits, at least 2.

    Returns:
        A built functional ``keras.Model`` named ``name`` that outputs logits of
        shape ``(batch, num_classes)``.

    Raises:
        ConfigError: If ``name`` is unknown, ``num_classes`` is below 2 or
            ``input_shape`` does not suit the model.

    """
    builder = _BUILDERS.get(name)
    if builder is None:
        raise ConfigError(
            f"Unknown model name {name!r}. Expected one of: {', '.join(MODEL_NAMES)}."
        )
    _check_num_classes(num_classes)
    return builder(_check_input_shape(input_shape), int(num_classes))
