"""Tests of keras_rank.data.image_folder through load_splits."""

import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from synthetic import read_batches, write_image_folder

from keras_rank import data
from keras_rank.core.errors import DataError

NAMES = ("cat", "dog", "emu")
TRAIN_LABELS = np.repeat([0, 1, 2], [5, 10, 15])  # Written in this order.
TEST_LABELS = np.array([2, 0, 1, 1, 0, 2])


def gray_images(n: int, seed: int) -> np.ndarray:
    """uint8 images (n, 5, 4) whose pixel [0, 0] is the index."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 5, 4), np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images


TRAIN_IMAGES = gray_images(30, 0)
TEST_IMAGES = gray_images(6, 1)


def ids(images: np.ndarray) -> np.ndarray:
    return np.rint(images[:, 0, 0, 0] * 255).astype(int)


@pytest.fixture
def folder(tmp_path):
    return write_image_folder(
        tmp_path / "images",
        {"train": (TRAIN_IMAGES, TRAIN_LABELS), "test": (TEST_IMAGES, TEST_LABELS)},
        NAMES,
    )


def read(source, seed=None, batch_size=7, drop_remainder=False):
    return read_batches(
        source.batches(batch_size, shuffle_seed=seed, drop_remainder=drop_remainder)
    )


def test_load_splits_reads_the_images(folder):
    splits = data.load_splits(folder, validation_fraction=0.2, split_seed=4)
    assert isinstance(splits.train, data.ImageFolderSource)
    assert splits.class_names == NAMES and splits.num_classes == 3
    assert splits.input_shape == (5, 4, 1)  # Grayscale PNG: one channel.
    assert splits.source == str(folder)
    assert (
        splits.train.num_examples,
        splits.validation.num_examples,
        splits.test.num_examples,
    ) == (24, 6, 6)
    for source, images, labels in [
        (splits.train, TRAIN_IMAGES, TRAIN_LABELS),
        (splits.validation, TRAIN_IMAGES, TRAIN_LABELS),
        (splits.test, TEST_IMAGES, TEST_LABELS),
    ]:
        for seed in (None, 8):
            x, y, _ = read(source, seed)
            assert x.dtype == np.float32 and y.dtype == np.int32
            np.testing.assert_array_equal(
                x[..., 0], images[ids(x)].astype(np.float32) / 255
            )
            np.testing.assert_array_equal(y, labels[ids(x)])
    # The stored order is the listing's: classes in name order, files sorted.
    np.testing.assert_array_equal(ids(read(splits.test)[0]), [1, 4, 2, 3, 0, 5])


def test_validation_is_stratified_by_split_seed(folder):
    splits = data.load_splits(folder, validation_fraction=0.2, split_seed=4)
    val_ids = ids(read(splits.validation)[0])
    expected = data.stratified_validation_indices(TRAIN_LABELS, 0.2, 4)
    np.testing.assert_array_equal(val_ids, expected)
    assert np.bincount(TRAIN_LABELS[val_ids]).tolist() == [1, 2, 3]
    train_ids = ids(read(splits.train)[0])
    assert sorted([*train_ids, *val_ids]) == list(range(30))
    other = data.load_splits(folder, validation_fraction=0.2, split_seed=5)
    assert not np.array_equal(ids(read(other.validation)[0]), val_ids)


def test_order_is_a_full_permutation_fixed_by_the_seed(folder):
    train = data.load_splits(folder, validation_fraction=0).train
    first = ids(read(train, seed=3)[0])
    np.testing.assert_array_equal(first, np.random.default_rng(3).permutation(30))
    np.testing.assert_array_equal(ids(read(train, seed=3)[0]), first)
    assert not np.array_equal(ids(read(train, seed=4)[0]), first)
    assert read(train, seed=3, batch_size=8, drop_remainder=True)[2] == [8, 8, 8]


def test_rgb_alpha_jpeg_nested_and_custom_split_names(tmp_path):
    rgba = np.random.default_rng(0).integers(0, 256, (4, 6, 5, 4), np.uint8)
    root = write_image_folder(
        tmp_path / "rgb", {"training": (rgba, [0, 1, 0, 1])}, ("a", "b")
    )
    write_image_folder(root, {"eval": (rgba[:, :, :, :1], [1, 0, 1, 0])}, ("a", "b"))
    (root / "training" / "a" / "deeper").mkdir()
    jpeg = tf.io.encode_jpeg(np.full((6, 5, 3), 200, np.uint8)).numpy()
    (root / "training" / "a" / "deeper" / "x.JPG").write_bytes(jpeg)
    (root / "training" / "b" / "notes.txt").write_text("not an image")
    splits = data.load_splits(
        root, validation_fraction=0, train_split="training", test_split="eval"
    )
    assert splits.input_shape == (6, 5, 3)  # RGBA and gray are read as RGB.
    assert splits.train.num_examples == 5 and splits.test.num_examples == 4
    x, y, _ = read(splits.train)
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(x[0], rgba[0, ..., :3] / np.float32(255))
    assert np.abs(x[2] - 200 / 255).max() < 0.02  # The JPEG, lossy.
    test_x, _, _ = read(splits.test)
    gray = rgba[[1, 3, 0, 2], ..., :1] / np.float32(255)
    np.testing.assert_array_equal(test_x, np.repeat(gray, 3, axis=-1))


@pytest.mark.parametrize("missing", ["train", "test"])
def test_missing_split_folder(folder, missing):
    shutil.rmtree(folder / missing)
    message = (
        f"data '{folder}': missing sub-folder '{missing}'; expected 'train/' and "
        "'test/', each with one sub-folder per class"
    )
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        data.load_splits(folder)


def test_class_names_differ(folder):
    (folder / "test" / "emu").rename(folder / "test" / "eagle")
    with pytest.raises(
        DataError,
        match=re.escape(
            "class sub-folders differ: 'train' has ['cat', 'dog', 'emu'], 'test' "
            "has ['cat', 'dog', 'eagle']"
        ),
    ):
        data.load_splits(folder)


def test_mixed_image_sizes_name_the_file(folder):
    odd = folder / "train" / "dog" / "000007.png"
    odd.write_bytes(tf.io.encode_png(np.zeros((5, 3, 1), np.uint8)).numpy())
    first = folder / "train" / "cat" / "000000.png"
    with pytest.raises(
        DataError,
        match=re.escape(f"image '{odd}' is 5x3 (height x width), but '{first}' is 5x4"),
    ):
        data.load_splits(folder)


def test_train_and_test_sizes_differ(folder):
    for path in (folder / "test").rglob("*.png"):
        path.write_bytes(tf.io.encode_png(np.zeros((2, 2, 1), np.uint8)).numpy())
    with pytest.raises(DataError, match="'train' images are 5x4 but 'test' images"):
        data.load_splits(folder)


def test_no_images(folder):
    for path in (folder / "test").rglob("*.png"):
        path.unlink()
    with pytest.raises(DataError, match=re.escape(f"no images in '{folder / 'test'}'")):
        data.load_splits(folder)


def test_unreadable_image_names_the_file(folder):
    broken = folder / "train" / "emu" / "000020.png"
    broken.write_bytes(b"not a png")
    with pytest.raises(DataError, match=re.escape(f"image '{broken}': cannot read")):
        data.load_splits(folder)
