"""Sources of (image, label) examples, read as batched `tf.data` pipelines.

An `ExampleSource` is one split of a dataset that can be read any number of
times. `ExampleSource.batches` returns a `tf.data.Dataset` of (float32 images,
uint8 ones divided by 255 into [0, 1]; int32 labels) whose order is fixed by
`shuffle_seed`: the engine reads epoch k with the seed of (seed, k), so a
resumed run reads exactly the batches an uninterrupted one would have read.

This module holds the interface, the in-memory `ArraySource`, the
`DatasetSource` around a user's `tf.data.Dataset`, and `as_source`, which turns
what the engine accepts into a source. Image folders and TFDS datasets have
modules of their own.
"""

from __future__ import annotations

import abc
import numbers
from typing import Any

import numpy as np
import tensorflow as tf

from keras_rank.core.errors import ConfigError, DataError

DEFAULT_SHUFFLE_BUFFER = 10_000
"""Examples held by the shuffle buffer of streamed sources (TFDS, datasets)."""


def check_batch_size(batch_size: Any) -> int:
    """Returns `batch_size` as an int; raises ConfigError unless it is >= 1."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral):
        raise ConfigError(
            f"Expected batch_size to be an integer >= 1. Received: {batch_size=!r}"
        )
    if batch_size < 1:
        raise ConfigError(f"Expected batch_size >= 1. Received: {batch_size=}")
    return int(batch_size)


def example_order(count: int, shuffle_seed: int | None) -> np.ndarray:
    """Returns the reading order of `count` examples for `shuffle_seed`.

    `None` keeps the stored order; a seed gives the full permutation
    `numpy.random.default_rng(shuffle_seed).permutation(count)`, a pure
    function of the seed (TensorFlow's global seed plays no part).
    """
    if shuffle_seed is None:
        return np.arange(count)
    return np.random.default_rng(shuffle_seed).permutation(count)


def shuffle_stream(
    dataset: tf.data.Dataset, shuffle_seed: int | None, buffer_size: int
) -> tf.data.Dataset:
    """Shuffles a stream of examples with a buffer seeded by `shuffle_seed`.

    `tf.data` derives the buffer's randomness from `shuffle_seed` and
    TensorFlow's global seed (`tf.random.set_seed`), so the order is fixed by
    the two; the iterator of the returned dataset repeats it every time.
    """
    if shuffle_seed is None:
        return dataset
    return dataset.shuffle(
        buffer_size, seed=shuffle_seed, reshuffle_each_iteration=False
    )


def _to_unit_float(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Returns float32 images (uint8 divided by 255) and int32 labels."""
    if images.dtype == tf.uint8:
        images = tf.cast(images, tf.float32) / 255.0
    else:
        images = tf.cast(images, tf.float32)
    return images, tf.cast(labels, tf.int32)


class ExampleSource(abc.ABC):
    """One split of (image, label) examples that can be read any number of times.

    Subclasses set `num_examples` and `example_shape` and implement
    `_raw_batches`; `batches` adds the conversion to float32, prefetching and
    deterministic execution.

    Attributes:
        num_examples: Number of examples, or None when unknown before reading.
        example_shape: Shape of one image, e.g. `(28, 28, 1)`.
    """

    num_examples: int | None
    example_shape: tuple[int, ...]

    def batches(
        self,
        batch_size: int,
        *,
        shuffle_seed: int | None = None,
        drop_remainder: bool = False,
    ) -> tf.data.Dataset:
        """Returns the examples as a batched, prefetched `tf.data.Dataset`.

        Every iteration of the returned dataset yields the same order, fixed by
        `shuffle_seed`: a full NumPy permutation for sources with random
        access (`ArraySource`, `ImageFolderSource`), a seeded shuffle buffer
        for streams (`DatasetSource`, `TfdsSource`), whose order `tf.data`
        also derives from TensorFlow's global seed.

        Args:
            batch_size: Examples per batch, >= 1.
            shuffle_seed: Seed of the order; None reads the source's order.
            drop_remainder: Whether to drop the last batch when it is partial.

        Returns:
            Batches of (float32 images, int32 labels), uint8 images divided
            by 255 into [0, 1], with `deterministic=True`.

        Raises:
            ConfigError: If `batch_size` is not an integer >= 1.
        """
        batch_size = check_batch_size(batch_size)
        dataset = self._raw_batches(batch_size, shuffle_seed, bool(drop_remainder))
        dataset = dataset.map(_to_unit_float).prefetch(tf.data.AUTOTUNE)
        options = tf.data.Options()
        options.deterministic = True
        return dataset.with_options(options)

    @abc.abstractmethod
    def _raw_batches(
        self, batch_size: int, shuffle_seed: int | None, drop_remainder: bool
    ) -> tf.data.Dataset:
        """Returns batches of images in their stored dtype and integer labels."""


def _check_labels(labels: np.ndarray, count: int) -> np.ndarray:
    """Returns `labels` as int32 after checking shape, dtype and sign."""
    if labels.shape != (count,):
        raise DataError(
            f"Expected labels of shape ({count},), one per image. "
            f"Received: labels of shape {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"Expected integer labels. Received: labels of dtype {labels.dtype}"
        )
    if labels.size and labels.min() < 0:
        raise DataError(
            f"Expected labels >= 0. Received: a label of {int(labels.min())}"
        )
    return labels.astype(np.int32)


class ArraySource(ExampleSource):
    """Images and labels held in memory as NumPy arrays.

    The arrays are used as given, not copied (a `numpy.memmap` is read page by
    page), and stay in their dtype: uint8 is one byte per pixel and becomes
    float32 (divided by 255) one batch at a time; floats become float32
    unchanged (scale them to [0, 1] first). Batches are gathered by NumPy
    (`tf.numpy_function`): a TensorFlow copy of the arrays would double their
    memory, and converting them costs twice their size at its peak. Shuffled
    reading is a full permutation of the examples per seed (`example_order`).

    Args:
        images: Array of shape `(N, ...)`, uint8 or float.
        labels: Array of shape `(N,)` of integers >= 0.

    Attributes:
        images: The images, as given.
        labels: The labels, an int32 NumPy array.

    Raises:
        DataError: Images are not a uint8 or float array with a batch axis,
            or the labels do not fit them.
    """

    def __init__(self, images: Any, labels: Any):
        images = np.asarray(images)
        if images.ndim < 2:
            raise DataError(
                "Expected images of shape (N, ...) with at least one axis per "
                f"image. Received: images of shape {images.shape}"
            )
        if images.dtype != np.uint8 and not np.issubdtype(images.dtype, np.floating):
            raise DataError(
                "Expected uint8 or float images. Received: images of dtype "
                f"{images.dtype}"
            )
        self.images = images
        self.labels = _check_labels(np.asarray(labels), len(images))
        self.num_examples = len(images)
        self.example_shape = tuple(int(d) for d in images.shape[1:])

    def subset(self, indices: np.ndarray) -> ArraySource:
        """Returns the examples at `indices`, in that order, as a new source."""
        return ArraySource(self.images[indices], self.labels[indices])

    def _raw_batches(self, batch_size, shuffle_seed, drop_remainder):
        images, labels = self.images, self.labels
        shape = (batch_size if drop_remainder else None, *self.example_shape)

        def gather(indices):
            return images[indices], labels[indices]

        def gather_batch(indices):
            batch_images, batch_labels = tf.numpy_function(
                gather, [indices], (tf.as_dtype(images.dtype), tf.int32), stateful=False
            )
            batch_images.set_shape(shape)
            batch_labels.set_shape(shape[:1])
            return batch_images, batch_labels

        order = example_order(self.num_examples, shuffle_seed)
        dataset = tf.data.Dataset.from_tensor_slices(order)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.map(gather_batch)


class DatasetSource(ExampleSource):
    """A `tf.data.Dataset` of unbatched (image, label) examples.

    The dataset must yield the same examples in the same order each time it
    is iterated (a resumed run reads it again). Shuffled reading goes through
    a shuffle buffer of `shuffle_buffer` examples seeded by the seed (see
    `shuffle_stream`): examples move by about the buffer's length, not across
    the whole dataset.

    A `map` over single examples is one function call per example (tens of
    microseconds on a small CPU, more than parsing a small image): parse
    records in batches and unbatch, e.g.
    `tf.data.TFRecordDataset(files).batch(256).map(parse_batch).unbatch()`.

    Args:
        dataset: Yields `(image, label)`: images of one fixed shape, uint8
            (divided by 255) or float (unchanged); integer scalar labels.
        num_examples: Number of examples; None takes the dataset's cardinality
            when `tf.data` knows it and leaves it unknown otherwise (the
            dataset is not read to count it: pass it for a progress bar with a
            target).
        shuffle_buffer: Examples held by the shuffle buffer, >= 1.

    Raises:
        DataError: The dataset does not yield (image, label) pairs of this
            kind, or is infinite.
        ConfigError: `num_examples` or `shuffle_buffer` is out of range.
    """

    def __init__(
        self,
        dataset: tf.data.Dataset,
        num_examples: int | None = None,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    ):
        spec = dataset.element_spec
        if not (
            isinstance(spec, tuple)
            and len(spec) == 2
            and all(isinstance(s, tf.TensorSpec) for s in spec)
            and spec[0].shape.is_fully_defined()
            and spec[0].shape.rank >= 1
            and (spec[0].dtype == tf.uint8 or spec[0].dtype.is_floating)
            and spec[1].shape.rank == 0
            and spec[1].dtype.is_integer
        ):
            raise DataError(
                "Expected a tf.data.Dataset of unbatched (image, label) pairs: "
                "uint8 or float images of one fixed shape and integer scalar "
                f"labels. Received: element_spec={spec}"
            )
        cardinality = int(dataset.cardinality())
        if cardinality == tf.data.INFINITE_CARDINALITY:
            raise DataError(
                "Expected a finite tf.data.Dataset (one epoch is one pass). "
                "Received: an infinite dataset"
            )
        if num_examples is None and cardinality >= 0:
            num_examples = cardinality
        if num_examples is not None and (
            isinstance(num_examples, bool)
            or not isinstance(num_examples, numbers.Integral)
            or num_examples < 0
        ):
            raise ConfigError(
                f"Expected num_examples >= 0 or None. Received: {num_examples=!r}"
            )
        if (
            isinstance(shuffle_buffer, bool)
            or not isinstance(shuffle_buffer, numbers.Integral)
            or shuffle_buffer < 1
        ):
            raise ConfigError(
                f"Expected shuffle_buffer >= 1. Received: {shuffle_buffer=!r}"
            )
        self._dataset = dataset
        self._shuffle_buffer = int(shuffle_buffer)
        self.num_examples = None if num_examples is None else int(num_examples)
        self.example_shape = tuple(int(d) for d in spec[0].shape)

    def _raw_batches(self, batch_size, shuffle_seed, drop_remainder):
        dataset = shuffle_stream(self._dataset, shuffle_seed, self._shuffle_buffer)
        return dataset.batch(batch_size, drop_remainder=drop_remainder)


def as_source(data: Any) -> ExampleSource:
    """Returns `data` as an `ExampleSource`.

    Args:
        data: An `ExampleSource` (returned as is), an `(images, labels)` tuple
            of arrays (an `ArraySource`), or a `tf.data.Dataset` of unbatched
            (image, label) pairs (a `DatasetSource`).

    Raises:
        ConfigError: `data` is none of these.
        DataError: The arrays or the dataset do not hold image examples.
    """
    if isinstance(data, ExampleSource):
        return data
    if isinstance(data, tf.data.Dataset):
        return DatasetSource(data)
    if isinstance(data, tuple | list) and len(data) == 2:
        return ArraySource(*data)
    raise ConfigError(
        "Expected an ExampleSource, an (images, labels) tuple of arrays or a "
        f"tf.data.Dataset. Received: data of type {type(data).__name__}"
    )
