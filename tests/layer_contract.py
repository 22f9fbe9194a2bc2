"""The Keras contract every keras_rank layer keeps, checked in one call.

Like Keras' own ``run_layer_test`` (keras/src/testing/test_case.py), but for
layers that are often built from a state or a plain layer rather than from
constructor arguments, so it takes the layer itself (or a factory).
"""

import dataclasses
import json
import pathlib
from collections.abc import Callable

import keras
import numpy as np
import tensorflow as tf


@dataclasses.dataclass
class LayerContract:
    """What the checks built, for assertions of the caller's own.

    Attributes:
        layer: The layer checked (built; not trained by the checks).
        inputs: The input the outputs were computed on.
        outputs: ``layer(inputs)``.
        config: ``layer.get_config()`` once built.
        copy: ``from_config(config)`` built, with the layer's weights, called
            on ``inputs``, then trained one step.
        loaded: The layer of the same name in the reloaded ``.keras`` model.
    """

    layer: keras.layers.Layer
    inputs: np.ndarray
    outputs: np.ndarray
    config: dict
    copy: keras.layers.Layer
    loaded: keras.layers.Layer


def _numpy(tensor) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def _weight_specs(layer: keras.layers.Layer) -> list[tuple]:
    return [(w.name, tuple(w.shape), w.dtype, w.trainable) for w in layer.weights]


def _assert_same_weights(a: keras.layers.Layer, b: keras.layers.Layer, what: str):
    assert _weight_specs(a) == _weight_specs(b), what
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(_numpy(x), _numpy(y), err_msg=f"{what}: {x.name}")


def check_layer_contract(
    layer: keras.layers.Layer | Callable[[], keras.layers.Layer],
    input_shape: tuple[int, ...],
    folder: pathlib.Path,
    *,
    expected_output_shape: tuple[int, ...] | None = None,
    expected_params: int | None = None,
    expected_trainable_params: int | None = None,
    seed: int = 0,
    learning_rate: float = 0.1,
) -> LayerContract:
    """Check a layer's config, .keras and training contract; return what it built.

    In order:

    1. unbuilt layers only: ``from_config(get_config())`` gives the same config;
    2. the layer builds on ``input_shape`` (batch axis included) and calls on
       a seeded normal input to finite outputs of ``expected_output_shape``
       (when given) and of ``compute_output_shape``;
    3. ``count_params()`` equals ``expected_params`` and the trainable weights
       hold ``expected_trainable_params`` numbers (when given);
    4. the built config round-trips through ``from_config`` and through
       ``keras.saving.serialize_keras_object`` (JSON included) unchanged; the
       copy, built and given the layer's weights, has the same weights (names,
       shapes, dtypes, trainability), as many losses, and the same outputs;
    5. ``Input -> layer`` as a Functional model saved as ``folder/<name>.keras``
       and loaded back (safe mode) holds a layer of the same class, config and
       weights, and gives the same outputs;
    6. one SGD step on the copy (``tf.GradientTape``, mean squared error to a
       seeded target plus the layer's losses) has a finite loss, a finite
       gradient for every trainable weight, changes at least one trainable
       weight and leaves every non-trainable weight alone.

    Outputs are compared for exact equality: the same weights must give the
    same numbers.

    Args:
        layer: The layer, or a function returning it (called once).
        input_shape: Shape of the test input, batch axis first.
        folder: An empty folder for the .keras file (e.g. ``tmp_path``).
        expected_output_shape: Shape of ``layer(input)``, if to be checked.
        expected_params: ``layer.count_params()``, if to be checked.
        expected_trainable_params: Size of the trainable weights, if to be
            checked.
        seed: Seed of the input and of the training target.
        learning_rate: SGD learning rate of the training step.

    Returns:
        The layer, input, outputs, config, trained copy and loaded layer.
    """
    if callable(layer) and not isinstance(layer, keras.layers.Layer):
        layer = layer()
    cls = type(layer)
    input_shape = tuple(input_shape)
    rng = np.random.default_rng(seed)

    # 1. Config of the unbuilt layer.
    if not layer.built:
        config = layer.get_config()
        assert cls.from_config(config).get_config() == config, "unbuilt config"
        layer.build(input_shape)
    assert layer.built

    # 2. Build and call.
    x = rng.standard_normal(input_shape).astype(np.float32)
    y = _numpy(layer(x))
    assert np.all(np.isfinite(y)), "outputs are not finite"
    if expected_output_shape is not None:
        assert y.shape == tuple(expected_output_shape), y.shape
    assert tuple(layer.compute_output_shape(input_shape)) == y.shape

    # 3. Parameter counts.
    if expected_params is not None:
        assert layer.count_params() == expected_params, layer.count_params()
    if expected_trainable_params is not None:
        trainable = sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        assert trainable == expected_trainable_params, trainable

    # 4. Config of the built layer; from_config copy with the same weights.
    config = layer.get_config()
    assert cls.from_config(config).get_config() == config, "built config"
    serialized = keras.saving.serialize_keras_object(layer)
    serialized = json.loads(json.dumps(serialized))
    revived = keras.saving.deserialize_keras_object(serialized)
    assert type(revived) is cls and revived.get_config() == config, "serialized"
    copy = cls.from_config(config)
    copy.build(input_shape)
    copy.set_weights(layer.get_weights())
    _assert_same_weights(layer, copy, "from_config copy")
    np.testing.assert_array_equal(_numpy(copy(x)), y, err_msg="from_config copy")
    assert len(copy.losses) == len(layer.losses), "from_config copy losses"

    # 5. .keras file of a small Functional model.
    inputs = keras.Input(input_shape[1:], batch_size=None)
    model = keras.Model(inputs, layer(inputs))
    path = pathlib.Path(folder) / f"{layer.name}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    loaded = reloaded.get_layer(layer.name)
    assert type(loaded) is cls, type(loaded)
    assert loaded.get_config() == config, ".keras config"
    _assert_same_weights(layer, loaded, ".keras file")
    np.testing.assert_array_equal(_numpy(reloaded(x)), y, err_msg=".keras file")
    np.testing.assert_array_equal(_numpy(model(x)), y, err_msg="model")

    # 6. One training step on the copy.
    target = rng.standard_normal(y.shape).astype(np.float32)
    trainable = copy.trainable_weights
    assert trainable, "no trainable weights"
    before = [_numpy(w) for w in copy.weights]
    with tf.GradientTape() as tape:
        loss = keras.ops.mean(keras.ops.square(copy(x) - target))
        loss = loss + sum(copy.losses)
    gradients = tape.gradient(loss, trainable)
    assert np.isfinite(_numpy(loss)), f"loss {_numpy(loss)}"
    for weight, gradient in zip(trainable, gradients, strict=True):
        assert gradient is not None, f"no gradient for {weight.name}"
        assert np.all(np.isfinite(_numpy(gradient))), f"gradient of {weight.name}"
    keras.optimizers.SGD(learning_rate).apply(gradients, trainable)
    changed = []
    for weight, old in zip(copy.weights, before, strict=True):
        moved = not np.array_equal(_numpy(weight), old)
        if weight.trainable:
            changed.append(moved)
        else:
            assert not moved, f"non-trainable {weight.name} changed"
    assert any(changed), "the training step changed no trainable weight"

    return LayerContract(layer, x, y, config, copy, loaded)
