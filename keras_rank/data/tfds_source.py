"""TensorFlow Datasets (`tfds:NAME`), streamed from TFDS' prepared files.

Nothing is copied into memory: every read goes through `builder.as_dataset`.
`tensorflow_datasets` is imported on first use only, as it is slow to import.
"""

from __future__ import annotations

import os
from typing import Any

import tensorflow as tf

from keras_rank.core.errors import DataError
from keras_rank.data.sources import (
    DEFAULT_SHUFFLE_BUFFER,
    ExampleSource,
    shuffle_stream,
)


def _one_line(err: BaseException) -> str:
    """Returns the type and first line of the message of `err`."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _import_tfds(name: str) -> Any:
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError(
            f"data 'tfds:{name}': tensorflow_datasets unavailable: {_one_line(err)}"
        ) from err
    return tfds


class TfdsSource(ExampleSource):
    """One split, or a slice of one, of a prepared TFDS dataset.

    Shuffled reading: the split's files in an order seeded by the seed
    (`shuffle_files` with `tfds.ReadConfig(shuffle_seed=...)`; not for datasets
    prepared with `disable_shuffling`), then a shuffle buffer of
    `shuffle_buffer` examples seeded by the seed. `tf.data` mixes TensorFlow's
    global seed into both, so the order is fixed by the seed and the global
    seed (`train_and_evaluate` sets it from `config.seed` on every start).
    The buffer holds `shuffle_buffer` decoded images: mind their size.

    Args:
        builder: The dataset's builder, prepared.
        split: A split name or a TFDS slice of one, e.g. `"train[6000:]"`.
        shuffle_buffer: Examples held by the shuffle buffer.
    """

    def __init__(
        self, builder: Any, split: str, *, shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER
    ):
        image_key, _ = builder.info.supervised_keys
        self._builder = builder
        self._split = split
        self._shuffle_buffer = shuffle_buffer
        self.num_examples = builder.info.splits[split].num_examples
        shape = tuple(builder.info.features[image_key].shape)
        self.example_shape = (*shape, 1) if len(shape) == 2 else shape

    def split_at(self, count: int) -> tuple[TfdsSource, TfdsSource]:
        """Returns (the first `count` examples, the rest), by TFDS slicing."""
        buffer = self._shuffle_buffer
        head, rest = f"{self._split}[:{count}]", f"{self._split}[{count}:]"
        return (
            TfdsSource(self._builder, head, shuffle_buffer=buffer),
            TfdsSource(self._builder, rest, shuffle_buffer=buffer),
        )

    def _raw_batches(self, batch_size, shuffle_seed, drop_remainder):
        tfds = _import_tfds(self._builder.name)
        shuffle = shuffle_seed is not None
        read_config = tfds.ReadConfig(
            shuffle_seed=shuffle_seed,
            shuffle_reshuffle_each_iteration=False,
            try_autocache=False,
            skip_prefetch=True,
        )
        dataset = self._builder.as_dataset(
            split=self._split,
            as_supervised=True,
            shuffle_files=shuffle and not self._builder.info.disable_shuffling,
            read_config=read_config,
        )
        dataset = shuffle_stream(dataset, shuffle_seed, self._shuffle_buffer)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        if len(dataset.element_spec[0].shape) == 3:  # (batch, height, width)
            dataset = dataset.map(lambda images, labels: (images[..., None], labels))
        return dataset


def _check_info(spec: str, info: Any, splits: dict[str, str]) -> None:
    """Raises DataError unless `info` describes fixed-size image classification."""
    if not info.supervised_keys or len(info.supervised_keys) != 2:
        raise DataError(
            f"data '{spec}': not a supervised dataset (no (image, label) "
            "supervised_keys)"
        )
    image_key, label_key = info.supervised_keys
    image, label = info.features[image_key], info.features[label_key]
    shape = tuple(getattr(image, "shape", ()))
    if len(shape) not in (2, 3) or None in shape:
        raise DataError(
            f"data '{spec}': images of shape {shape}; expected a fixed (height, "
            "width[, channels]) shape (resize the images first)"
        )
    dtype = tf.as_dtype(image.dtype)
    if dtype != tf.uint8 and not dtype.is_floating:
        raise DataError(
            f"data '{spec}': images of dtype {dtype.name}; expected uint8 or float"
        )
    if not hasattr(label, "num_classes"):
        raise DataError(
            f"data '{spec}': '{label_key}' is not a ClassLabel; expected class labels"
        )
    for argument, split in splits.items():
        if split not in info.splits:
            raise DataError(
                f"data '{spec}': no split '{split}'. Expected {argument} in "
                f"{tuple(info.splits)}. Received: {argument}={split!r}"
            )
        if info.splits[split].num_examples == 0:
            raise DataError(f"data '{spec}': split '{split}' is empty")


def load_tfds(
    name: str,
    *,
    train_split: str = "train",
    test_split: str = "test",
    data_dir: str | os.PathLike[str] | None = None,
) -> tuple[TfdsSource, TfdsSource, int, tuple[str, ...]]:
    """Opens the train and test splits of a TFDS dataset.

    The dataset is downloaded and prepared first if it is not yet in
    `data_dir` (that needs network); nothing is read into memory.

    Args:
        name: TFDS name, such as `"mnist"` or `"fashion_mnist"`.
        train_split: Name of the training split.
        test_split: Name of the test split.
        data_dir: TFDS data folder; None uses the TFDS default.

    Returns:
        (train, test, num_classes, class_names).

    Raises:
        DataError: If TFDS fails (unknown name, no network, ...), a split is
            missing or empty, or the dataset is not classification of
            fixed-size images. The one-line message names the dataset.
    """
    spec = f"tfds:{name}"
    tfds = _import_tfds(name)
    try:
        builder = tfds.builder(
            name, data_dir=None if data_dir is None else os.fspath(data_dir)
        )
        builder.download_and_prepare()
    except Exception as err:  # Any TFDS failure is a DataError.
        raise DataError(f"data '{spec}': cannot load: {_one_line(err)}") from err
    info = builder.info
    _check_info(spec, info, {"train_split": train_split, "test_split": test_split})
    label = info.features[info.supervised_keys[1]]
    return (
        TfdsSource(builder, train_split),
        TfdsSource(builder, test_split),
        int(label.num_classes),
        tuple(label.names),
    )
