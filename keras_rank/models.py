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


def _image_input(model: str, input_shape: tuple[int, ...]) -> keras.KerasTensor:
    """Return the input of an image model, or raise unless the shape is an image's.

    Args:
        model: The zoo name of the model, for the message.
        input_shape: Shape of one example, without the batch dimension.

    Returns:
        A ``keras.Input`` named ``input`` of shape ``input_shape``.

    Raises:
        ConfigError: If ``input_shape`` is not ``(height, width, channels)``.

    """
    if len(input_shape) != 3:
        raise ConfigError(
            f"Model {model!r} needs input_shape (height, width, channels), "
            f"got {input_shape!r}."
        )
    return keras.Input(shape=input_shape, name="input")


def _lenet5(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the Caffe LeNet-5: conv 20, pool, conv 50, pool, dense 500."""
    inputs = _image_input("lenet5", input_shape)
    x = keras.layers.Conv2D(20, 5, activation="relu", name="conv_1")(inputs)
    x = keras.layers.MaxPooling2D(2, name="pool_1")(x)
    x = keras.layers.Conv2D(50, 5, activation="relu", name="conv_2")(x)
    x = keras.layers.MaxPooling2D(2, name="pool_2")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(500, activation="relu", name="dense_1")(x)
    outputs = keras.layers.Dense(num_classes, name="dense_2")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def _conv_bn(
    x: keras.KerasTensor,
    filters: int,
    kernel_size: int,
    prefix: str,
    strides: int = 1,
    suffix: str = "",
) -> keras.KerasTensor:
    """Apply a bias-free, same-padded Conv2D then a BatchNormalization.

    The layers are named ``f"{prefix}conv{suffix}"`` and ``f"{prefix}bn{suffix}"``.
    """
    x = keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        name=f"{prefix}conv{suffix}",
    )(x)
    return keras.layers.BatchNormalization(name=f"{prefix}bn{suffix}")(x)


_RESNET20_STAGE_FILTERS = (16, 32, 64)
_RESNET20_BLOCKS_PER_STAGE = 3


def _basic_block(
    x: keras.KerasTensor, filters: int, strides: int, prefix: str
) -> keras.KerasTensor:
    """Apply He et al.'s basic block: conv-BN-ReLU, conv-BN, add shortcut, ReLU."""
    y = _conv_bn(x, filters, 3, prefix, strides, suffix="_1")
    y = keras.layers.ReLU(name=f"{prefix}relu_1")(y)
    y = _conv_bn(y, filters, 3, prefix, suffix="_2")
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, f"{prefix}shortcut_", strides)
    y = keras.layers.Add(name=f"{prefix}add")([y, shortcut])
    return keras.layers.ReLU(name=f"{prefix}relu_2")(y)


def _resnet20(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build the CIFAR ResNet-20 of He et al. 2016 (section 4.2).

    A 3x3 conv of 16 filters, then 3 stages of 3 basic blocks with 16, 32 and
    64 filters; every conv is bias-free and followed by BatchNormalization.
    The first block of stages 2 and 3 has stride 2 and a projection shortcut,
    a strided 1x1 conv + BatchNormalization (option B of the paper; the
    paper's CIFAR nets use option A, zero-padded identity shortcuts). Then
    global average pooling and a Dense of logits. Layers are named
    ``stem_*``, ``stage{s}_block{b}_*``, ``pool`` and ``dense_1``.
    """
    inputs = _image_input("resnet20", input_shape)
    x = _conv_bn(inputs, _RESNET20_STAGE_FILTERS[0], 3, "stem_")
    x = keras.layers.ReLU(name="stem_relu")(x)
    for stage, filters in enumerate(_RESNET20_STAGE_FILTERS, start=1):
        for block in range(1, _RESNET20_BLOCKS_PER_STAGE + 1):
            strides = 2 if stage > 1 and block == 1 else 1
            x = _basic_block(x, filters, strides, f"stage{stage}_block{block}_")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="dense_1")(x)
    return keras.Model(inputs, outputs, name="resnet20")


_MOBILENET_STAGES = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2))
"""Per stage: expansion factor t, output channels c, blocks n, first stride s."""
_MOBILENET_STEM_FILTERS = 16
_MOBILENET_HEAD_FILTERS = 256
_MOBILENET_STEM_STRIDE_1_UP_TO = 32


def _inverted_residual(
    x: keras.KerasTensor, expansion: int, filters: int, strides: int, prefix: str
) -> keras.KerasTensor:
    """Apply MobileNetV2's block: expand, depthwise, linear projection, residual."""
    in_channels = x.shape[-1]
    y = x
    if expansion != 1:
        y = _conv_bn(y, in_channels * expansion, 1, f"{prefix}expand_")
        y = keras.layers.ReLU(6.0, name=f"{prefix}expand_relu6")(y)
    y = keras.layers.DepthwiseConv2D(
        3, strides=strides, padding="same", use_bias=False, name=f"{prefix}dw_conv"
    )(y)
    y = keras.layers.BatchNormalization(name=f"{prefix}dw_bn")(y)
    y = keras.layers.ReLU(6.0, name=f"{prefix}dw_relu6")(y)
    y = _conv_bn(y, filters, 1, f"{prefix}project_")
    if strides == 1 and in_channels == filters:
        y = keras.layers.Add(name=f"{prefix}add")([x, y])
    return y


def _mobilenetv2_small(input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Build a small MobileNetV2 (Sandler et al. 2018) for 2 CPU cores.

    A 3x3 stem conv of 16 filters, BN, ReLU6; its stride is 1 when neither
    side of the image exceeds 32 pixels and 2 otherwise (the paper's stride at
    224 pixels). Then 7 inverted residual blocks, (t, c, n, s) = (1, 16, 1, 1),
    (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 2, 2): a 1x1 expansion conv to
    ``t`` times the input channels (none when t = 1), BN, ReLU6; a 3x3
    depthwise conv of stride ``s`` (first block of a stage) or 1, BN, ReLU6;
    a linear 1x1 projection conv, BN; and a residual Add when the stride is 1
    and the channels are unchanged. Then a 1x1 conv to 256 channels, BN,
    ReLU6, global average pooling and a Dense of logits. Convs are bias-free.
    Layers are named ``stem_*``, ``block{i}_*``, ``head_*``, ``pool`` and
    ``dense_1``.
    """
    inputs = _image_input("mobilenetv2_small", input_shape)
    small = max(input_shape[:2]) <= _MOBILENET_STEM_STRIDE_1_UP_TO
    x = _conv_bn(inputs, _MOBILENET_STEM_FILTERS, 3, "stem_", 1 if small else 2)
    x = keras.layers.ReLU(6.0, name="stem_relu6")(x)
    block = 0
    for expansion, filters, repeats, first_strides in _MOBILENET_STAGES:
        for i in range(repeats):
            block += 1
            strides = first_strides if i == 0 else 1
            x = _inverted_residual(x, expansion, filters, strides, f"block{block}_")
    x = _conv_bn(x, _MOBILENET_HEAD_FILTERS, 1, "head_")
    x = keras.layers.ReLU(6.0, name="head_relu6")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = keras.layers.Dense(num_classes, name="dense_1")(x)
    return keras.Model(inputs, outputs, name="mobilenetv2_small")


_BUILDERS: dict[str, Builder] = {
    "lenet300": _lenet300,
    "lenet300_tanh": _lenet300_tanh,
    "lenet5": _lenet5,
    "mlp": _mlp,
    "mobilenetv2_small": _mobilenetv2_small,
    "resnet20": _resnet20,
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
        name: One of ``MODEL_NAMES``: ``lenet300``, ``lenet300_tanh``,
            ``lenet5``, ``mlp``, ``mobilenetv2_small`` or ``resnet20``.
        input_shape: Shape of one example, without the batch dimension. The
            MLPs flatten whatever they get; the conv nets (``lenet5``,
            ``mobilenetv2_small``, ``resnet20``) need
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
