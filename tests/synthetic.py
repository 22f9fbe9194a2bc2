"""IDX encoding and small learnable datasets written as IDX files, for tests."""

import gzip
import pathlib

import numpy as np

_CODES = {
    np.dtype("uint8"): 0x08,
    np.dtype("int8"): 0x09,
    np.dtype("int16"): 0x0B,
    np.dtype("int32"): 0x0C,
    np.dtype("float32"): 0x0D,
    np.dtype("float64"): 0x0E,
}


def idx_bytes(array: np.ndarray, *, code: int | None = None) -> bytes:
    """Raw IDX encoding of `array`: 0, 0, type code, ndim, big-endian dims, data."""
    array = np.asarray(array)
    code = _CODES[array.dtype] if code is None else code
    header = bytes([0, 0, code, array.ndim])
    dims = np.asarray(array.shape, dtype=">u4").tobytes()
    return header + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: pathlib.Path, payload: bytes | np.ndarray) -> pathlib.Path:
    """Writes IDX bytes (or an array, encoded) to `path`; gzip when it ends in .gz."""
    raw = idx_bytes(payload) if isinstance(payload, np.ndarray) else payload
    path.write_bytes(gzip.compress(raw) if path.name.endswith(".gz") else raw)
    return path


def class_images(
    count: int, num_classes: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Returns `count` 28x28 uint8 images whose bright block tells the class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % num_classes
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for label in range(num_classes):
        row, col = divmod(label, 4)
        images[labels == label, row * 7 : row * 7 + 7, col * 7 : col * 7 + 7] += 150
    return images, labels.astype(np.uint8)


def make_idx_folder(
    folder: pathlib.Path, train: int = 600, test: int = 200, num_classes: int = 10
) -> pathlib.Path:
    """Writes the four IDX files of a small learnable dataset into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count, seed in (("train", train, 0), ("t10k", test, 1)):
        images, labels = class_images(count, num_classes, seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder
