"""Image folders: one sub-folder per class, each image decoded as it is read.

Layout (the conventions of `keras.utils.image_dataset_from_directory`)::

    PATH/train/<class name>/**/*.png|jpg|jpeg|bmp|gif
    PATH/test/<class name>/**/...

Class names are the sorted names of the class sub-folders, label i the i-th
name; train and test must have the same names. Only the file paths and the
labels are held in memory. Images keep their native size, which must be the
same for all of them.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib

import numpy as np
import tensorflow as tf
from PIL import Image

from keras_rank.core.errors import DataError
from keras_rank.data.sources import ExampleSource, example_order

IMAGE_FORMATS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
"""File name endings read as images (those of image_dataset_from_directory)."""

# PIL modes of single-channel images, and the formats TensorFlow decodes to
# one channel (it decodes BMP and GIF to three).
_GRAYSCALE_MODES = frozenset({"1", "L", "I", "I;16"})
_GRAYSCALE_FORMATS = frozenset({"PNG", "JPEG"})


@dataclasses.dataclass(frozen=True)
class _Listing:
    """The images of one split folder and what their headers say."""

    paths: list[str]
    labels: np.ndarray
    class_names: tuple[str, ...]
    size: tuple[int, int]  # (height, width)
    grayscale: bool


def _image_files(class_folder: pathlib.Path) -> list[str]:
    """Returns the image files under `class_folder`, walked in sorted order."""
    found = []
    for root, dirs, files in os.walk(class_folder):
        dirs.sort()
        found.extend(
            os.path.join(root, name)
            for name in sorted(files)
            if name.lower().endswith(IMAGE_FORMATS)
        )
    return found


def _header(path: str) -> tuple[int, int, bool]:
    """Returns (height, width, decodes to one channel) from an image's header."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            single = image.mode in _GRAYSCALE_MODES
            return height, width, single and image.format in _GRAYSCALE_FORMATS
    except OSError as err:  # PIL.UnidentifiedImageError is an OSError.
        raise DataError(f"image '{path}': cannot read: {err}") from err


def _list_split(root: pathlib.Path, split: str) -> _Listing:
    """Lists and checks the images of `root/split`."""
    folder = root / split
    class_names = tuple(sorted(d.name for d in folder.iterdir() if d.is_dir()))
    paths, labels = [], []
    for label, name in enumerate(class_names):
        files = _image_files(folder / name)
        paths.extend(files)
        labels.extend([label] * len(files))
    if not paths:
        raise DataError(
            f"data '{root}': no images in '{folder}'; expected one sub-folder per "
            f"class holding {', '.join(IMAGE_FORMATS)} files"
        )
    height, width, grayscale = _header(paths[0])
    for path in paths[1:]:
        other_height, other_width, single = _header(path)
        if (other_height, other_width) != (height, width):
            raise DataError(
                f"data '{root}': image '{path}' is {other_height}x{other_width} "
                f"(height x width), but '{paths[0]}' is {height}x{width}; "
                "expected images of one size"
            )
        grayscale = grayscale and single
    return _Listing(
        paths, np.asarray(labels, np.int32), class_names, (height, width), grayscale
    )


class ImageFolderSource(ExampleSource):
    """Image files read and decoded while the batches are read.

    Shuffled reading is a full permutation of the files per seed
    (`example_order`); the files of a batch are read and decoded in one
    `tf.data` call, batches in parallel, in order.

    Args:
        paths: Path of each image file.
        labels: Label of each image, int32 of shape `(len(paths),)`.
        example_shape: `(height, width, channels)` of every image; channels
            is 1 or 3 (files are decoded to that many channels).

    Attributes:
        labels: The labels, an int32 NumPy array.
    """

    def __init__(
        self,
        paths: list[str] | tf.Tensor,
        labels: np.ndarray,
        example_shape: tuple[int, int, int],
    ):
        with tf.device("/cpu:0"):
            self._paths = tf.convert_to_tensor(paths, tf.string)
            self._labels = tf.constant(labels, tf.int32)
        self.labels = np.asarray(labels, np.int32)
        self.num_examples = len(self.labels)
        self.example_shape = tuple(example_shape)

    def subset(self, indices: np.ndarray) -> ImageFolderSource:
        """Returns the examples at `indices`, in that order, as a new source."""
        with tf.device("/cpu:0"):
            paths = tf.gather(self._paths, indices)
        return ImageFolderSource(paths, self.labels[indices], self.example_shape)

    def _raw_batches(self, batch_size, shuffle_seed, drop_remainder):
        paths, labels, shape = self._paths, self._labels, self.example_shape

        def load(path):
            contents = tf.io.read_file(path)
            image = tf.io.decode_image(
                contents, channels=shape[-1], expand_animations=False
            )
            return tf.ensure_shape(image, shape)

        def load_batch(indices):
            # One tf.data call per batch, a loop over its files inside: a
            # tf.data call per example costs more than decoding a small PNG.
            images = tf.map_fn(
                load,
                tf.gather(paths, indices),
                fn_output_signature=tf.TensorSpec(shape, tf.uint8),
            )
            return images, tf.gather(labels, indices)

        order = example_order(self.num_examples, shuffle_seed)
        dataset = tf.data.Dataset.from_tensor_slices(order)
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
        return dataset.map(
            load_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )


def load_image_folder(
    folder: str | os.PathLike[str],
    *,
    train_split: str = "train",
    test_split: str = "test",
) -> tuple[ImageFolderSource, ImageFolderSource, tuple[str, ...]]:
    """Lists the train and test images of an image folder.

    Every image's header is read once (width, height, mode; about 0.1 ms a
    file) to check that all have one size; pixels are decoded only when
    batches are read. Images are
    decoded to one channel when every one is a single-channel PNG or JPEG,
    else to three (RGB; an alpha channel is dropped).

    Args:
        folder: The folder holding `train_split/` and `test_split/`.
        train_split: Name of the training sub-folder.
        test_split: Name of the test sub-folder.

    Returns:
        (train, test, class_names).

    Raises:
        DataError: A sub-folder is missing or holds no image, the class
            sub-folders of train and test differ, an image cannot be read, or
            images differ in size. The message names the folder or file.
    """
    root = pathlib.Path(folder)
    for split in (train_split, test_split):
        if not (root / split).is_dir():
            raise DataError(
                f"data '{root}': missing sub-folder '{split}'; expected "
                f"'{train_split}/' and '{test_split}/', each with one sub-folder "
                "per class"
            )
    train, test = _list_split(root, train_split), _list_split(root, test_split)
    if train.class_names != test.class_names:
        raise DataError(
            f"data '{root}': class sub-folders differ: '{train_split}' has "
            f"{list(train.class_names)}, '{test_split}' has "
            f"{list(test.class_names)}; expected the same names"
        )
    if train.size != test.size:
        raise DataError(
            f"data '{root}': '{train_split}' images are {train.size[0]}x"
            f"{train.size[1]} but '{test_split}' images are {test.size[0]}x"
            f"{test.size[1]} (height x width); expected one size"
        )
    shape = (*train.size, 1 if train.grayscale and test.grayscale else 3)
    return (
        ImageFolderSource(train.paths, train.labels, shape),
        ImageFolderSource(test.paths, test.labels, shape),
        train.class_names,
    )
