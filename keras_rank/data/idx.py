"""IDX files, the format of MNIST-like datasets.

A folder of the four standard files (``train-images-idx3-ubyte``,
``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, each raw or gzip-compressed with a ``.gz``
suffix) holds a train and a test split of grayscale images.
"""

from __future__ import annotations

import gzip
import math
import os
import pathlib
import zlib

import numpy as np

from keras_rank.core.errors import DataError

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"
IDX_STEMS = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)

# IDX type code -> big-endian NumPy dtype of the stored values.
_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

Split = tuple[np.ndarray, np.ndarray]


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


def has_idx_files(folder: str | os.PathLike[str]) -> bool:
    """Returns whether `folder` holds any of the four IDX files (raw or `.gz`)."""
    folder = pathlib.Path(folder)
    return any(
        (folder / name).is_file() for stem in IDX_STEMS for name in (stem, stem + ".gz")
    )
