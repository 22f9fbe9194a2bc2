"""Tests of keras_rank.data.sources: ArraySource, DatasetSource, as_source."""

import numpy as np
import pytest
import tensorflow as tf
from synthetic import read_batches

from keras_rank import data
from keras_rank.core.errors import ConfigError, DataError


def arrays(n: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 3, 2, 1) whose pixel [0, 0, 0] is the index; labels % 7."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 3, 2, 1), np.uint8)
    images[:, 0, 0, 0] = np.arange(n)
    return images, (np.arange(n) % 7).astype(np.int64)


def ids(images: np.ndarray) -> np.ndarray:
    return np.rint(images[:, 0, 0, 0] * 255).astype(int)


def dataset_of(images, labels) -> tf.data.Dataset:
    return tf.data.Dataset.from_tensor_slices((images, labels))


SOURCES = {
    "array": lambda x, y: data.ArraySource(x, y),
    "dataset": lambda x, y: data.DatasetSource(dataset_of(x, y), shuffle_buffer=30),
}


@pytest.fixture(params=sorted(SOURCES))
def kind(request):
    return request.param


def order(source, seed, batch_size=16, drop_remainder=False) -> list[int]:
    images, _, _ = read_batches(
        source.batches(batch_size, shuffle_seed=seed, drop_remainder=drop_remainder)
    )
    return ids(images).tolist()


# ---------------------------------------------------------------- both sources


def test_values_and_labels_equal_the_originals(kind):
    images, labels = arrays()
    source = SOURCES[kind](images, labels)
    for seed in (None, 3):
        x, y, _ = read_batches(source.batches(16, shuffle_seed=seed))
        assert x.dtype == np.float32 and y.dtype == np.int32
        np.testing.assert_array_equal(x, images[ids(x)].astype(np.float32) / 255)
        np.testing.assert_array_equal(y, labels[ids(x)])


def test_no_seed_reads_the_stored_order(kind):
    source = SOURCES[kind](*arrays())
    assert order(source, None) == list(range(100))


def test_every_example_once_per_epoch(kind):
    source = SOURCES[kind](*arrays())
    for seed in (0, 1, 2**32 - 1):
        epoch = order(source, seed)
        assert epoch != list(range(100))
        assert sorted(epoch) == list(range(100))


def test_order_is_fixed_by_the_seed(kind):
    images, labels = arrays()
    source = SOURCES[kind](images, labels)
    first = order(source, 5)
    assert order(source, 5) == first
    assert order(SOURCES[kind](images, labels), 5) == first  # A new source.
    dataset = source.batches(16, shuffle_seed=5)
    assert ids(read_batches(dataset)[0]).tolist() == first  # Iterated twice.
    assert ids(read_batches(dataset)[0]).tolist() == first
    assert order(source, 6) != first


@pytest.mark.parametrize(
    ("drop_remainder", "sizes"), [(False, [32, 32, 32, 4]), (True, [32, 32, 32])]
)
def test_drop_remainder(kind, drop_remainder, sizes):
    source = SOURCES[kind](*arrays())
    dataset = source.batches(32, shuffle_seed=0, drop_remainder=drop_remainder)
    assert read_batches(dataset)[2] == sizes
    if drop_remainder:  # Static batch size: one trace of the train step.
        assert dataset.element_spec[0].shape.as_list() == [32, 3, 2, 1]


def test_dataset_options_deterministic(kind):
    source = SOURCES[kind](*arrays(10))
    assert source.batches(4, shuffle_seed=1).options().deterministic is True


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, "8"])
def test_bad_batch_size(kind, batch_size):
    source = SOURCES[kind](*arrays(10))
    with pytest.raises(ConfigError, match=r"batch_size"):
        source.batches(batch_size)


def test_float_images_pass_unchanged(kind):
    images = np.linspace(-1, 2, 40, dtype=np.float64).reshape(10, 4)
    labels = np.arange(10)
    source = SOURCES[kind](images, labels)
    x, y, _ = read_batches(source.batches(3))
    np.testing.assert_array_equal(x, images.astype(np.float32))
    np.testing.assert_array_equal(y, labels)


# ----------------------------------------------------------------- ArraySource


def test_array_source_is_a_numpy_permutation_of_the_seed():
    source = data.ArraySource(*arrays())
    # Pure function of the seed: TensorFlow's global seed plays no part.
    tf.random.set_seed(1)
    first = order(source, 11)
    tf.random.set_seed(2)
    assert order(source, 11) == first
    assert first == np.random.default_rng(11).permutation(100).tolist()


def test_array_source_keeps_uint8():
    images, labels = arrays()
    source = data.ArraySource(images, labels)
    assert source.images.dtype == np.uint8
    assert source.num_examples == 100 and source.example_shape == (3, 2, 1)
    assert source.labels.dtype == np.int32


def test_array_source_subset():
    images, labels = arrays()
    picked = np.array([5, 1, 99])
    part = data.ArraySource(images, labels).subset(picked)
    x, y, _ = read_batches(part.batches(8))
    assert ids(x).tolist() == [5, 1, 99]
    np.testing.assert_array_equal(y, labels[picked])
    np.testing.assert_array_equal(part.labels, labels[picked])


@pytest.mark.parametrize(
    ("images", "labels", "message"),
    [
        (np.zeros((10, 2), np.uint8), np.zeros(9, np.int64), r"shape \(10,\)"),
        (np.zeros((10, 2), np.uint8), np.zeros((10, 1), np.int64), r"shape \(10,\)"),
        (np.zeros((4, 2), np.uint8), np.array([0.0, 1, 2, 3]), "integer labels"),
        (np.zeros((4, 2), np.uint8), np.array([0, 1, -2, 3]), "labels >= 0"),
        (np.zeros(4, np.uint8), np.zeros(4, np.int64), r"shape \(N, \.\.\.\)"),
        (np.zeros((4, 2), np.int16), np.zeros(4, np.int64), "dtype int16"),
    ],
)
def test_array_source_errors(images, labels, message):
    with pytest.raises(DataError, match=message):
        data.ArraySource(images, labels)


# --------------------------------------------------------------- DatasetSource


def test_dataset_source_counts():
    images, labels = arrays()
    assert data.DatasetSource(dataset_of(images, labels)).num_examples == 100
    unknown = dataset_of(images, labels).filter(lambda x, y: y < 100)
    assert data.DatasetSource(unknown).num_examples is None
    assert data.DatasetSource(unknown, num_examples=100).num_examples == 100
    source = data.DatasetSource(unknown)
    assert source.example_shape == (3, 2, 1)
    assert sorted(order(source, 4)) == list(range(100))


def test_dataset_source_shuffle_stays_within_the_buffer():
    source = data.DatasetSource(dataset_of(*arrays()), shuffle_buffer=10)
    epoch = order(source, 1)
    # A buffer of 10 holds examples [k, k + 10) when output k is drawn.
    assert all(index < position + 10 for position, index in enumerate(epoch))


@pytest.mark.parametrize(
    "dataset",
    [
        tf.data.Dataset.from_tensor_slices(np.zeros((4, 2), np.uint8)),
        tf.data.Dataset.from_tensor_slices({"x": np.zeros((4, 2)), "y": np.zeros(4)}),
        dataset_of(*arrays(8)).batch(4),
        dataset_of(np.zeros((4, 2), np.uint8), np.zeros(4, np.float32)),
        dataset_of(np.zeros((4, 2), np.int32), np.zeros(4, np.int64)),
        tf.data.Dataset.range(4).map(lambda i: (tf.zeros([i, 2], tf.uint8), i)),
    ],
    ids=["no-label", "dict", "batched", "float-label", "int-images", "ragged"],
)
def test_dataset_source_element_spec_errors(dataset):
    with pytest.raises(DataError, match=r"unbatched \(image, label\).*element_spec"):
        data.DatasetSource(dataset)


def test_dataset_source_infinite():
    with pytest.raises(DataError, match="finite"):
        data.DatasetSource(dataset_of(*arrays(4)).repeat())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_examples": -1}, "num_examples >= 0"),
        ({"num_examples": 2.5}, "num_examples >= 0"),
        ({"shuffle_buffer": 0}, "shuffle_buffer >= 1"),
    ],
)
def test_dataset_source_argument_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        data.DatasetSource(dataset_of(*arrays(4)), **kwargs)


# ------------------------------------------------------------------- as_source


def test_as_source_kinds():
    images, labels = arrays(10)
    source = data.ArraySource(images, labels)
    assert data.as_source(source) is source
    assert isinstance(data.as_source((images, labels)), data.ArraySource)
    assert isinstance(data.as_source([images, labels]), data.ArraySource)
    from_dataset = data.as_source(dataset_of(images, labels))
    assert isinstance(from_dataset, data.DatasetSource)
    assert from_dataset.num_examples == 10


@pytest.mark.parametrize(
    ("value", "name"),
    [
        (np.zeros((4, 2)), "ndarray"),
        ((np.zeros((4, 2)), np.zeros(4), np.zeros(4)), "tuple"),
        ({"images": np.zeros((4, 2))}, "dict"),
        (None, "NoneType"),
    ],
)
def test_as_source_errors(value, name):
    with pytest.raises(ConfigError) as info:
        data.as_source(value)
    assert str(info.value) == (
        "Expected an ExampleSource, an (images, labels) tuple of arrays or a "
        f"tf.data.Dataset. Received: data of type {name}"
    )
