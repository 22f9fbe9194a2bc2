"""Datasets for image classification: IDX folders, TFDS and tf.data pipelines.

Two kinds of source are understood by :func:`load_splits`:

* a folder of the four standard IDX files of MNIST-like datasets
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
  ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each either raw or
  gzip-compressed with a ``.gz`` suffix), such as :data:`DEFAULT_DATA_DIR`;
* the spec ``tfds:NAME``, loaded with ``tensorflow_datasets``.

:func:`load_splits` returns NumPy arrays (float32 images in [0, 1], int32
labels) with a deterministic, stratified validation split carved from the
training set; :func:`make_dataset` turns one split into a batched
``tf.data.Dataset``.
"""

from __future__ import annotations

import dataclasses
import gzip
import math
import numbers
import os
import pathlib
import zlib
from typing import Any

import numpy as np
import tensorflow as tf

from keras_rank.errors import ConfigError, DataError

DEFAULT_DATA_DIR: pathlib.Path = (
    pathlib.Path(__file__).resolve().parent.parent / "data" / "fashion_mnist"
)
"""The Fashion-MNIST IDX files shipped with the repository."""

TFDS_PREFIX = "tfds:"

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

# IDX type code -> big-endian NumPy dtype of the stored values.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# Examples per chunk when copying a TFDS split into memory.
_TFDS_CHUNK = 8192

Split = tuple[np.ndarray, np.ndarray]


# --------------------------------------------------------------------------- IDX


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file into a NumPy array.

    Files whose name ends in ``.gz`` are decompressed with gzip; any other file
    is read as raw IDX. The file must hold exactly the bytes its header
    announces: a short file is never returned as a short array.

    Args:
        path: Path of the IDX file.

    Returns:
        An array with the shape of the header and the native-endian dtype of
        the IDX type code (``uint8`` for code 0x08).

    Raises:
        DataError: If the file is missing or unreadable, is not a valid gzip
            stream, has a bad magic number or unknown type code, or holds fewer
            or more bytes than its header announces. The message names the
            file.

    """
    path = pathlib.Path(path)
    return _parse_idx(_read_bytes(path), path)


def _read_bytes(path: pathlib.Path) -> bytes:
    """Return the (decompressed) contents of ``path``."""
    if not path.is_file():
        raise DataError(f"IDX file '{path}': no such file")
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as stream:
                return stream.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        kind = "bad gzip stream" if path.name.endswith(".gz") else "cannot read"
        raise DataError(f"IDX file '{path}': {kind}: {err}") from err


def _parse_idx(data: bytes, path: pathlib.Path) -> np.ndarray:
    """Decode the IDX bytes ``data`` read from ``path``."""
    if len(data) < 4:
        raise DataError(
            f"IDX file '{path}': truncated header: expected at least 4 bytes, "
            f"found {len(data)}"
        )
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES:
        raise DataError(
            f"IDX file '{path}': bad magic number 0x{data[:4].hex()}; expected "
            "two zero bytes then a type code in "
            f"{{{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}}}"
        )
    if ndim == 0:
        raise DataError(f"IDX file '{path}': header declares 0 dimensions")
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise DataError(
            f"IDX file '{path}': truncated header: expected {header_size} bytes "
            f"for {ndim} dimensions, found {len(data)}"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = math.prod(shape) * dtype.itemsize
    found = len(data) - header_size
    if found < expected:
        raise DataError(
            f"IDX file '{path}': truncated: expected {expected} data bytes for "
            f"shape {shape}, found {found}"
        )
    if found > expected:
        raise DataError(
            f"IDX file '{path}': {found - expected} trailing bytes after the "
            f"{expected} data bytes of shape {shape}"
        )
    values = np.frombuffer(data, dtype, math.prod(shape), offset=header_size)
    return values.reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx_file(folder: pathlib.Path, stem: str) -> pathlib.Path:
    """Return ``folder/stem.gz`` or ``folder/stem``, whichever exists."""
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"data folder '{folder}': missing file {stem}(.gz)")


def _load_idx_pair(folder: pathlib.Path, images_stem: str, labels_stem: str) -> Split:
    """Read one images/labels pair of IDX files; images get a channel axis."""
    images_path = _find_idx_file(folder, images_stem)
    labels_path = _find_idx_file(folder, labels_stem)
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(
            f"IDX file '{images_path}': expected images of shape (N, H, W), "
            f"found shape {images.shape}"
        )
    if labels.ndim != 1:
        raise DataError(
            f"IDX file '{labels_path}': expected labels of shape (N,), "
            f"found shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataError(
            f"IDX files '{images_path}' and '{labels_path}': {len(images)} images "
            f"but {len(labels)} labels"
        )
    return images[..., np.newaxis], labels


def load_idx_folder(folder: str | os.PathLike[str]) -> tuple[Split, Split]:
    """Read the train and test splits of a folder of IDX files.

    Args:
        folder: Folder holding ``train-images-idx3-ubyte``,
            ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and
            ``t10k-labels-idx1-ubyte``, each raw or with a ``.gz`` suffix.

    Returns:
        ``((train_images, train_labels), (test_images, test_labels))`` with
        images of shape ``(N, H, W, 1)`` and labels of shape ``(N,)``, in the
        dtype of the files (``uint8`` for standard datasets).

    Raises:
        DataError: If a file is missing or malformed, images are not 3-D,
            labels are not 1-D, or a split has different numbers of images and
            labels.

    """
    folder = pathlib.Path(folder)
    train = _load_idx_pair(folder, TRAIN_IMAGES, TRAIN_LABELS)
    test = _load_idx_pair(folder, TEST_IMAGES, TEST_LABELS)
    return train, test


# -------------------------------------------------------------------------- TFDS


def _one_line(err: BaseException) -> str:
    """Return the type and first line of the message of ``err``."""
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def _concat_batches(batches: list[tuple[np.ndarray, np.ndarray]]) -> Split:
    """Concatenate ``(images, labels)`` NumPy batches into one pair."""
    if not batches:
        return np.zeros((0,), np.uint8), np.zeros((0,), np.int64)
    images, labels = zip(*batches, strict=True)
    return np.concatenate(images), np.concatenate(labels)


def _tfds_split(tfds: Any, name: str, split: str, data_dir: str | None) -> Split:
    """Load one split of a TFDS dataset into memory as NumPy arrays."""
    # Chunked copy rather than batch_size=-1: TFDS turns -1 into a batch of
    # `total_num_examples or sys.maxsize`, which aborts the process when the
    # size is unknown (e.g. under tfds.testing.mock_data).
    dataset = tfds.load(name, split=split, as_supervised=True, data_dir=data_dir)
    return _concat_batches(list(tfds.as_numpy(dataset.batch(_TFDS_CHUNK))))


def load_tfds(
    name: str, data_dir: str | os.PathLike[str] | None = None
) -> tuple[Split, Split]:
    """Load the train and test splits of a TensorFlow Datasets dataset.

    ``tensorflow_datasets`` is imported on the first call only, as it is slow
    to import.

    Args:
        name: TFDS name, such as ``"mnist"`` or ``"fashion_mnist"``.
        data_dir: TFDS data folder; ``None`` uses the TFDS default.

    Returns:
        ``((train_images, train_labels), (test_images, test_labels))`` with
        images of shape ``(N, H, W, C)`` and labels of shape ``(N,)``.

    Raises:
        DataError: If TFDS fails for any reason (unknown name, download error,
            no network, missing split) or the splits are not image
            classification data. The one-line message names the dataset.

    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as err:
        raise DataError(
            f"data 'tfds:{name}': tensorflow_datasets unavailable: {_one_line(err)}"
        ) from err
    root = None if data_dir is None else os.fspath(data_dir)
    splits = []
    for split in ("train", "test"):
        try:
            images, labels = _tfds_split(tfds, name, split, root)
        except Exception as err:  # Any TFDS failure is a DataError.
            raise DataError(
                f"data 'tfds:{name}': cannot load split '{split}': {_one_line(err)}"
            ) from err
        splits.append(_check_tfds_split(name, split, images, labels))
    return splits[0], splits[1]


def _check_tfds_split(
    name: str, split: str, images: np.ndarray, labels: np.ndarray
) -> Split:
    """Check shapes of a TFDS split; gives grayscale images a channel axis."""
    if len(labels) == 0:
        raise DataError(f"data 'tfds:{name}': split '{split}' is empty")
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(
            f"data 'tfds:{name}': split '{split}' is not image classification "
            f"data: images of shape {images.shape}, labels of shape {labels.shape}"
        )
    return images, labels


# ------------------------------------------------------------------------ splits


@dataclasses.dataclass(frozen=True, eq=False)
class DataSplits:
    """Train, validation and test arrays of an image classification dataset.

    Attributes:
        train: ``(images, labels)`` used for training, without the validation
            examples, in the original order of the source.
        validation: ``(images, labels)`` carved from the source's training set,
            or ``None`` when the validation fraction is 0.
        test: ``(images, labels)`` of the source's test set, untouched.
        num_classes: Largest label over train and test, plus one.
        input_shape: Shape of one image, e.g. ``(28, 28, 1)`` or ``(784,)``.
        source: The folder or ``tfds:NAME`` spec the data came from.

    """

    train: Split
    validation: Split | None
    test: Split
    num_classes: int
    input_shape: tuple[int, ...]
    source: str


def _check_validation_fraction(validation_fraction: float) -> None:
    """Raise ConfigError unless ``0 <= validation_fraction < 1``."""
    is_number = isinstance(validation_fraction, numbers.Real) and not isinstance(
        validation_fraction, bool
    )
    if not (is_number and 0 <= validation_fraction < 1):
        raise ConfigError(
            f"validation_fraction={validation_fraction!r}: expected a number in [0, 1)"
        )


def _to_unit_float(images: np.ndarray, source: str) -> np.ndarray:
    """Return float32 images in [0, 1]: uint8 is divided by 255."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255)
    if np.issubdtype(images.dtype, np.floating) and (
        images.size == 0 or (images.min() >= 0 and images.max() <= 1)
    ):
        return images.astype(np.float32)
    raise DataError(
        f"data '{source}': expected uint8 images or floats in [0, 1], found "
        f"dtype {images.dtype}"
    )


def _to_labels(labels: np.ndarray, source: str) -> np.ndarray:
    """Return the labels as int32, checking they are non-negative integers."""
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"data '{source}': expected integer labels, found dtype {labels.dtype}"
        )
    if labels.size and labels.min() < 0:
        raise DataError(f"data '{source}': negative label {labels.min()}")
    return labels.astype(np.int32)


def stratified_validation_indices(
    labels: np.ndarray, validation_fraction: float, split_seed: int
) -> np.ndarray:
    """Pick a class-stratified random subset of example indices.

    ``round(validation_fraction * len(labels))`` indices are drawn; each class
    gets its share ``validation_fraction * count`` rounded down, and the
    examples left over go to the classes with the largest remainders. The
    draw depends only on ``labels``, ``validation_fraction`` and
    ``split_seed``.

    Args:
        labels: Integer labels of shape ``(N,)``.
        validation_fraction: Fraction of examples to pick, in ``[0, 1)``.
        split_seed: Seed of ``numpy.random.default_rng``.

    Returns:
        The picked indices, sorted ascending.

    """
    classes, counts = np.unique(labels, return_counts=True)
    quotas = validation_fraction * counts
    shares = np.floor(quotas).astype(np.int64)
    missing = int(round(validation_fraction * len(labels))) - int(shares.sum())
    by_remainder = np.argsort(-(quotas - shares), kind="stable")
    shares[by_remainder[: max(missing, 0)]] += 1
    rng = np.random.default_rng(split_seed)
    picked = [
        rng.permutation(np.flatnonzero(labels == label))[:share]
        for label, share in zip(classes, shares, strict=True)
    ]
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, np.int64)


def _carve_validation(
    train: Split, validation_fraction: float, split_seed: int
) -> tuple[Split, Split | None]:
    """Split ``train`` into (train without validation, validation)."""
    if validation_fraction == 0:
        return train, None
    images, labels = train
    picked = stratified_validation_indices(labels, validation_fraction, split_seed)
    if len(picked) == 0 or len(picked) == len(labels):
        raise ConfigError(
            f"validation_fraction={validation_fraction!r} leaves {len(picked)} of "
            f"{len(labels)} training examples for validation; expected a value in "
            "[0, 1) that leaves examples on both sides"
        )
    keep = np.ones(len(labels), dtype=bool)
    keep[picked] = False
    return (images[keep], labels[keep]), (images[picked], labels[picked])


def _load_raw(
    spec: str | os.PathLike[str], tfds_data_dir: str | os.PathLike[str] | None
) -> tuple[Split, Split, str]:
    """Load the raw train and test splits named by ``spec``."""
    text = os.fspath(spec)
    if text.startswith(TFDS_PREFIX):
        name = text[len(TFDS_PREFIX) :]
        if not name:
            raise DataError(f"data '{text}': missing dataset name after tfds:")
        train, test = load_tfds(name, tfds_data_dir)
        return train, test, text
    folder = pathlib.Path(text).expanduser()
    if not folder.is_dir():
        raise DataError(
            f"data '{text}': no such folder; expected a folder of IDX files or "
            "tfds:NAME"
        )
    train, test = load_idx_folder(folder)
    return train, test, str(folder)


def load_splits(
    spec: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    *,
    validation_fraction: float = 0.1,
    split_seed: int = 0,
    flatten: bool = False,
    tfds_data_dir: str | os.PathLike[str] | None = None,
) -> DataSplits:
    """Load an image classification dataset as train, validation and test.

    The validation split is carved from the source's training set only,
    stratified by class and determined by ``split_seed`` alone (not by any
    training seed). The remaining training examples keep their original
    order; shuffling is the job of :func:`make_dataset`.

    Args:
        spec: A folder of IDX files (see :func:`load_idx_folder`) or
            ``"tfds:NAME"`` for a TensorFlow Datasets dataset.
        validation_fraction: Fraction of the training set held out for
            validation, in ``[0, 1)``; 0 gives ``validation=None``.
        split_seed: Seed of the validation draw.
        flatten: Whether to reshape images to ``(N, H * W * C)``.
        tfds_data_dir: TFDS data folder for ``tfds:`` specs; ``None`` uses the
            TFDS default.

    Returns:
        The splits, with float32 images in [0, 1] and int32 labels.

    Raises:
        ConfigError: If ``validation_fraction`` is outside ``[0, 1)`` or
            leaves no example on one side of the split.
        DataError: If ``spec`` is neither an existing folder nor ``tfds:NAME``,
            or the data cannot be read.

    """
    _check_validation_fraction(validation_fraction)
    (train_x, train_y), (test_x, test_y), source = _load_raw(spec, tfds_data_dir)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"data '{source}': train images of shape {train_x.shape[1:]} but test "
            f"images of shape {test_x.shape[1:]}"
        )
    if len(train_y) == 0 or len(test_y) == 0:
        raise DataError(
            f"data '{source}': {len(train_y)} train and {len(test_y)} test "
            "examples; expected both non-empty"
        )
    train_y, test_y = _to_labels(train_y, source), _to_labels(test_y, source)
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    train_x, test_x = _to_unit_float(train_x, source), _to_unit_float(test_x, source)
    if flatten:
        train_x = train_x.reshape(len(train_x), -1)
        test_x = test_x.reshape(len(test_x), -1)
    train, validation = _carve_validation(
        (train_x, train_y), validation_fraction, split_seed
    )
    return DataSplits(
        train=train,
        validation=validation,
        test=(test_x, test_y),
        num_classes=num_classes,
        input_shape=tuple(int(d) for d in train_x.shape[1:]),
        source=source,
    )


# ----------------------------------------------------------------------- tf.data


def make_dataset(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    batch_size: int,
    shuffle: bool = False,
    seed: int | None = None,
    drop_remainder: bool = False,
) -> tf.data.Dataset:
    """Build a batched, prefetched ``tf.data.Dataset`` of one split.

    When ``shuffle`` is true the split is permuted once by
    ``numpy.random.default_rng(seed)``: every iteration of the returned
    dataset sees the same order, and that order depends on ``seed`` alone (not
    on TensorFlow's global seed). Callers wanting a new order per epoch build a
    new dataset with an epoch-dependent seed, so a resumed run sees the same
    order as an uninterrupted one. The dataset has ``deterministic=True``.

    Args:
        images: Array of shape ``(N, ...)``.
        labels: Array of shape ``(N,)``.
        batch_size: Examples per batch, > 0.
        shuffle: Whether to shuffle the examples.
        seed: Shuffle seed; ``None`` gives a non-reproducible order.
        drop_remainder: Whether to drop the last batch when it is partial.

    Returns:
        A dataset of ``(images, labels)`` batches.

    Raises:
        ConfigError: If ``batch_size`` is not a positive integer or
            ``images`` and ``labels`` have different lengths.

    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise ConfigError(f"batch_size={batch_size!r}: expected a positive integer")
    if batch_size <= 0:
        raise ConfigError(f"batch_size={batch_size}: expected a positive integer")
    if len(images) != len(labels):
        raise ConfigError(
            f"images and labels: {len(images)} images but {len(labels)} labels"
        )
    if shuffle:
        order = np.random.default_rng(seed).permutation(len(images))
        images, labels = images[order], labels[order]
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
    dataset = dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return dataset.with_options(options)
