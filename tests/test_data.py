"""Tests of keras_rank.data: IDX files and folders, load_splits, splits."""

from __future__ import annotations

import gzip
import hashlib
import pathlib
import re

import numpy as np
import pytest
from synthetic import idx_bytes, read_batches, write_idx

from keras_rank import data
from keras_rank.core.errors import ConfigError, DataError


def make_images(n: int, height: int = 4, width: int = 3, seed: int = 0) -> np.ndarray:
    """Random uint8 images whose pixel [0, 0] is the example's index (n <= 256)."""
    images = np.random.default_rng(seed).integers(0, 256, (n, height, width))
    images[:, 0, 0] = np.arange(n)
    return images.astype(np.uint8)


def write_folder(
    folder: pathlib.Path,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    gz: bool = True,
) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    write_idx(folder / f"train-images-idx3-ubyte{suffix}", train[0])
    write_idx(folder / f"train-labels-idx1-ubyte{suffix}", train[1])
    write_idx(folder / f"t10k-images-idx3-ubyte{suffix}", test[0])
    write_idx(folder / f"t10k-labels-idx1-ubyte{suffix}", test[1])
    return folder


# Train: classes 0..3 with 10, 20, 30, 40 examples, interleaved; test has a
# class 4 that train lacks, so num_classes must look at test too.
TRAIN_LABELS = np.repeat(np.arange(4, dtype=np.uint8), [10, 20, 30, 40])
TRAIN_LABELS = np.random.default_rng(1).permutation(TRAIN_LABELS)
TEST_LABELS = np.array([0, 1, 2, 3, 4, 4, 1, 0], dtype=np.uint8)


@pytest.fixture
def folder(tmp_path: pathlib.Path) -> pathlib.Path:
    return write_folder(
        tmp_path / "ds",
        (make_images(100, seed=2), TRAIN_LABELS),
        (make_images(8, seed=3), TEST_LABELS),
    )


def ids(images: np.ndarray) -> np.ndarray:
    """Example indices encoded in pixel [0, 0] of float images in [0, 1]."""
    flat = images.reshape(len(images), -1)
    return np.rint(flat[:, 0] * 255).astype(int)


# ---------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5),
        np.array([7, 0, 255, 3], dtype=np.uint8),
        np.array([[-300, 2], [32000, -1]], dtype=np.int16),
        np.array([1.5, -2.25, 1e30], dtype=np.float32),
        np.array([[70000, -5]], dtype=np.int32),
    ],
    ids=["u8-3d", "u8-1d", "i16", "f32", "i32"],
)
def test_read_idx_round_trip(tmp_path, suffix, array):
    path = write_idx(tmp_path / f"x-idx{suffix}", array)
    result = data.read_idx(path)
    assert result.shape == array.shape
    assert result.dtype == array.dtype
    np.testing.assert_array_equal(result, array)


def test_read_idx_gz_really_decompresses(tmp_path):
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = write_idx(tmp_path / "x.gz", array)
    assert path.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(data.read_idx(str(path)), array)


def test_read_idx_missing_file(tmp_path):
    path = tmp_path / "nope-idx1-ubyte.gz"
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*no such file"):
        data.read_idx(path)


@pytest.mark.parametrize(
    "header",
    [
        b"\x01\x00\x08\x01",
        b"\x00\x02\x08\x01",
        b"\x00\x00\x07\x01",
        b"\x00\x00\xff\x01",
    ],
)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_bad_magic(tmp_path, header, suffix):
    path = write_idx(tmp_path / f"bad{suffix}", header + b"\x00\x00\x00\x02ab")
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*bad magic"):
        data.read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_truncated_data(tmp_path, suffix):
    raw = idx_bytes(np.zeros((10, 4, 3), dtype=np.uint8))
    path = write_idx(tmp_path / f"short{suffix}", raw[:-5])
    with pytest.raises(DataError) as info:
        data.read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert "truncated" in message
    assert "expected 120 " in message
    assert "found 115" in message


def test_read_idx_truncated_wide_dtype(tmp_path):
    raw = idx_bytes(np.zeros((3, 2), dtype=np.int32))  # 24 data bytes
    path = write_idx(tmp_path / "short", raw[:-1])
    with pytest.raises(DataError, match=r"expected 24 data bytes.*found 23"):
        data.read_idx(path)


@pytest.mark.parametrize(
    "payload", [b"", b"\x00\x00", b"\x00\x00\x08\x03\x00\x00\x00\x02"]
)
def test_read_idx_truncated_header(tmp_path, payload):
    path = write_idx(tmp_path / "hdr", payload)
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*truncated header"):
        data.read_idx(path)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_read_idx_trailing_bytes(tmp_path, suffix):
    raw = idx_bytes(np.zeros((2, 2), dtype=np.uint8))
    path = write_idx(tmp_path / f"long{suffix}", raw + b"xyz")
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*3 trailing bytes"):
        data.read_idx(path)


def test_read_idx_not_gzip(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*bad gzip"):
        data.read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path):
    path = tmp_path / "cut.gz"
    compressed = gzip.compress(idx_bytes(make_images(50)))
    path.write_bytes(compressed[: len(compressed) // 2])
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*bad gzip"):
        data.read_idx(path)


def test_read_idx_corrupt_gzip_stream(tmp_path):
    path = tmp_path / "corrupt.gz"
    compressed = bytearray(gzip.compress(idx_bytes(make_images(50))))
    compressed[-6] ^= 0xFF  # Breaks the CRC32 in the gzip trailer.
    path.write_bytes(bytes(compressed))
    with pytest.raises(DataError, match=re.escape(str(path)) + ".*bad gzip"):
        data.read_idx(path)


# ------------------------------------------------------------------- IDX folders


@pytest.mark.parametrize("gz", [True, False])
def test_load_idx_folder(tmp_path, gz):
    images = make_images(6)
    labels = np.array([0, 1, 2, 0, 1, 2], dtype=np.uint8)
    folder = write_folder(
        tmp_path / "f", (images, labels), (images[:2], labels[:2]), gz=gz
    )
    (train_x, train_y), (test_x, test_y) = data.load_idx_folder(folder)
    assert train_x.shape == (6, 4, 3, 1)
    np.testing.assert_array_equal(train_x[..., 0], images)
    np.testing.assert_array_equal(train_y, labels)
    np.testing.assert_array_equal(test_x[..., 0], images[:2])
    np.testing.assert_array_equal(test_y, labels[:2])


@pytest.mark.parametrize(
    "name",
    [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ],
)
def test_folder_missing_file(folder, name):
    (folder / name).unlink()
    stem = name.removesuffix(".gz")
    with pytest.raises(
        DataError, match=re.escape(str(folder)) + ".*missing file " + re.escape(stem)
    ):
        data.load_splits(folder)


def test_folder_count_mismatch(tmp_path):
    folder = write_folder(
        tmp_path / "f",
        (make_images(5), np.zeros(4, dtype=np.uint8)),
        (make_images(2), np.zeros(2, dtype=np.uint8)),
    )
    images = folder / "train-images-idx3-ubyte.gz"
    labels = folder / "train-labels-idx1-ubyte.gz"
    with pytest.raises(DataError) as info:
        data.load_splits(folder)
    message = str(info.value)
    assert str(images) in message and str(labels) in message
    assert "5 images but 4 labels" in message


def test_folder_images_must_be_3d(tmp_path):
    folder = write_folder(
        tmp_path / "f",
        (make_images(4), np.zeros(4, dtype=np.uint8)),
        (make_images(2), np.zeros(2, dtype=np.uint8)),
    )
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.zeros((2, 12), dtype=np.uint8))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz.*\(N, H, W\)"):
        data.load_splits(folder)


def test_folder_labels_must_be_1d(tmp_path):
    folder = write_folder(
        tmp_path / "f",
        (make_images(4), np.zeros((4, 1), dtype=np.uint8)),
        (make_images(2), np.zeros(2, dtype=np.uint8)),
    )
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz.*\(N,\)"):
        data.load_splits(folder)


def test_folder_propagates_truncated_file(folder):
    path = folder / "t10k-labels-idx1-ubyte.gz"
    write_idx(path, idx_bytes(TEST_LABELS)[:-1])
    pattern = re.escape(str(path)) + ".*expected 8 .*found 7"
    with pytest.raises(DataError, match=pattern):
        data.load_splits(folder)


# -------------------------------------------------------------------- load_splits

_FORMS = (
    "expected a folder of the four IDX files, a folder with train/ and test/ "
    "sub-folders of class folders, or tfds:NAME"
)


def test_bad_spec(tmp_path):
    with pytest.raises(
        DataError, match=r"^data 'foo': no such folder; " + re.escape(_FORMS) + "$"
    ):
        data.load_splits("foo")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(DataError, match=re.escape(f"data '{a_file}': no such folder")):
        data.load_splits(a_file)


def test_folder_with_neither_idx_files_nor_splits_names_the_three_forms(tmp_path):
    (tmp_path / "other").mkdir()
    with pytest.raises(DataError) as info:
        data.load_splits(tmp_path)
    assert str(info.value) == (
        f"data '{tmp_path}': neither IDX files nor train/ or test/ in the folder; "
        + _FORMS
    )


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5, float("nan"), "0.1", True])
def test_validation_fraction_out_of_range(folder, fraction):
    with pytest.raises(ConfigError, match=r"validation_fraction.*\[0, 1\)"):
        data.load_splits(folder, validation_fraction=fraction)


def test_validation_fraction_checked_before_reading():
    with pytest.raises(ConfigError, match="validation_fraction"):
        data.load_splits("no/such/folder", validation_fraction=2.0)


@pytest.mark.parametrize(
    ("names", "message"),
    [
        ({"train_split": ""}, "Expected train_split, a non-empty string"),
        ({"test_split": None}, "Received: test_split=None"),
        ({"train_split": "all", "test_split": "all"}, "train_split != test_split"),
    ],
)
def test_bad_split_names(folder, names, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        data.load_splits(folder, **names)


def test_validation_fraction_leaving_nothing(folder):
    with pytest.raises(ConfigError, match="validation_fraction=0.001 leaves 0 of 100"):
        data.load_splits(folder, validation_fraction=0.001)


def test_load_splits_sources(folder):
    raw_train = make_images(100, seed=2)
    raw_test = make_images(8, seed=3)
    splits = data.load_splits(folder, validation_fraction=0.2, split_seed=5)
    assert (
        splits.train.num_examples,
        splits.validation.num_examples,
        splits.test.num_examples,
    ) == (80, 20, 8)
    train_x, train_y, _ = read_batches(splits.train.batches(32))
    val_x, val_y, _ = read_batches(splits.validation.batches(32))
    test_x, test_y, _ = read_batches(splits.test.batches(32))

    assert train_x.shape == (80, 4, 3, 1) and train_y.shape == (80,)
    assert val_x.shape == (20, 4, 3, 1) and val_y.shape == (20,)
    assert test_x.shape == (8, 4, 3, 1) and test_y.shape == (8,)
    for images in (train_x, val_x, test_x):
        assert images.dtype == np.float32
    for labels in (train_y, val_y, test_y):
        assert labels.dtype == np.int32
    assert splits.num_classes == 5  # Label 4 appears in test only.
    assert splits.input_shape == (4, 3, 1)
    assert splits.source == str(folder)
    assert splits.class_names is None
    # Held in memory as the file's uint8, not as a float32 copy.
    for source in (splits.train, splits.validation, splits.test):
        assert source.images.dtype == np.uint8

    # Values are exactly the raw bytes / 255 and images stay with their labels.
    np.testing.assert_array_equal(
        train_x[..., 0], raw_train[ids(train_x)].astype(np.float32) / 255
    )
    np.testing.assert_array_equal(
        val_x[..., 0], raw_train[ids(val_x)].astype(np.float32) / 255
    )
    np.testing.assert_array_equal(train_y, TRAIN_LABELS[ids(train_x)])
    np.testing.assert_array_equal(val_y, TRAIN_LABELS[ids(val_x)])
    np.testing.assert_array_equal(splits.train.labels, train_y)
    # Test split untouched, in order.
    np.testing.assert_array_equal(test_x[..., 0], raw_test.astype(np.float32) / 255)
    np.testing.assert_array_equal(test_y, TEST_LABELS)


def _validation_labels(splits):
    return read_batches(splits.validation.batches(64))[1]


def test_validation_split_is_stratified(folder):
    splits = data.load_splits(folder, validation_fraction=0.2)
    # 20 % of each class of sizes 10, 20, 30, 40.
    assert np.bincount(_validation_labels(splits), minlength=4).tolist() == [2, 4, 6, 8]
    train_labels = read_batches(splits.train.batches(64))[1]
    assert np.bincount(train_labels, minlength=4).tolist() == [8, 16, 24, 32]


def test_validation_split_disjoint_union_and_order(folder):
    splits = data.load_splits(folder, validation_fraction=0.2, split_seed=3)
    train_ids = ids(read_batches(splits.train.batches(64))[0])
    val_ids = ids(read_batches(splits.validation.batches(64))[0])
    assert not set(train_ids) & set(val_ids)
    assert sorted([*train_ids, *val_ids]) == list(range(100))
    # The train part keeps the original order.
    assert np.all(np.diff(train_ids) > 0)


def test_validation_split_deterministic_and_seeded(folder):
    def val_ids(seed):
        splits = data.load_splits(folder, validation_fraction=0.2, split_seed=seed)
        return ids(read_batches(splits.validation.batches(64))[0])

    np.testing.assert_array_equal(val_ids(0), val_ids(0))
    np.testing.assert_array_equal(val_ids(7), val_ids(7))
    assert not np.array_equal(val_ids(0), val_ids(1))


def test_no_validation(folder):
    splits = data.load_splits(folder, validation_fraction=0)
    assert splits.validation is None
    images, labels, _ = read_batches(splits.train.batches(64))
    np.testing.assert_array_equal(ids(images), np.arange(100))
    np.testing.assert_array_equal(labels, TRAIN_LABELS)


def test_test_split_independent_of_validation(folder):
    a = data.load_splits(folder, validation_fraction=0.2, split_seed=0)
    b = data.load_splits(folder, validation_fraction=0.5, split_seed=9)
    for x, y in zip(
        read_batches(a.test.batches(4)), read_batches(b.test.batches(4)), strict=True
    ):
        np.testing.assert_array_equal(x, y)


def test_raw_idx_folder_and_str_spec(tmp_path):
    images = make_images(10)
    labels = np.arange(10, dtype=np.uint8) % 2
    folder = write_folder(
        tmp_path / "raw", (images, labels), (images, labels), gz=False
    )
    splits = data.load_splits(str(folder), validation_fraction=0.2)
    assert splits.train.num_examples == 8 and splits.validation.num_examples == 2
    assert splits.num_classes == 2


@pytest.mark.parametrize(
    ("images", "found"),
    [
        (np.linspace(0, 255, 24, dtype=np.float32), "floats in [0.0, 255.0]"),
        (np.zeros(24, dtype=np.int16), "dtype int16"),
    ],
)
def test_idx_images_neither_uint8_nor_unit_floats(tmp_path, images, found):
    images = images.reshape(2, 4, 3)
    labels = np.zeros(2, dtype=np.uint8)
    folder = write_folder(tmp_path / "f", (images, labels), (images, labels))
    message = f"data '{folder}': expected uint8 images or floats in [0, 1], found "
    with pytest.raises(DataError, match=f"^{re.escape(message + found)}$"):
        data.load_splits(folder)


def test_data_splits_is_frozen(folder):
    splits = data.load_splits(folder)
    with pytest.raises(AttributeError):
        splits.num_classes = 3


def test_default_data_dir_location():
    repo = pathlib.Path(__file__).resolve().parent.parent
    assert data.DEFAULT_DATA_DIR == repo / "data" / "fashion_mnist"


def test_embedded_fashion_mnist():
    splits = data.load_splits()
    assert splits.source == str(data.DEFAULT_DATA_DIR)
    assert splits.train.num_examples == 54000
    assert splits.validation.num_examples == 6000
    assert splits.test.num_examples == 10000
    assert splits.num_classes == 10
    assert splits.input_shape == (28, 28, 1)
    images, labels = next(splits.test.batches(10000).as_numpy_iterator())
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert 0.0 <= images.min() and images.max() == 1.0
    # Fashion-MNIST has 6000 training images per class: 600 go to validation.
    assert np.bincount(splits.validation.labels).tolist() == [600] * 10


def test_stratified_indices_direct():
    labels = np.repeat(np.arange(3), 4)  # 0.3 * 4 = 1.2 per class, 3.6 in all.
    picked = data.stratified_validation_indices(labels, 0.3, split_seed=0)
    assert len(picked) == 4
    assert np.all(np.diff(picked) > 0)
    assert sorted(np.bincount(labels[picked], minlength=3).tolist()) == [1, 1, 2]
    # Largest remainders get the leftovers: quotas 3.0 and 2.1 of total 5.1.
    labels = np.repeat([0, 1], [10, 7])
    picked = data.stratified_validation_indices(labels, 0.3, split_seed=0)
    assert np.bincount(labels[picked]).tolist() == [3, 2]


# sha256 sums of the embedded Fashion-MNIST files (docs/design/data.md).
_EMBEDDED_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "a521a95b4ef1a569a11a244b4e4fd79f"
    "8b7c3339ec86b597161db0be666bd725",
    "t10k-labels-idx1-ubyte.gz": "648c2694cc5493a6cf8a12b8a9f7ed14"
    "0a32e204709d30b7c50a4ccd272ab3d8",
    "train-images-idx3-ubyte.gz": "e75d5201fb75ce5a3bcd3be20ef6514a"
    "da2ff9e012e59e1e2a42687ac682afcf",
    "train-labels-idx1-ubyte.gz": "f2248f16205c05c85636fb1a77888e76"
    "9c95eaec53b2a5f533c6fe8712a1177a",
}


def test_embedded_fashion_mnist_matches_published_checksums():
    for name, expected in _EMBEDDED_SHA256.items():
        digest = hashlib.sha256((data.DEFAULT_DATA_DIR / name).read_bytes()).hexdigest()
        assert digest == expected, name
