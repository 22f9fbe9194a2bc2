"""Small learnable datasets written as IDX files, for fast tests."""

import gzip
import pathlib

import numpy as np

_DTYPE_CODES = {np.dtype(np.uint8): 0x08}


def write_idx(path: pathlib.Path, array: np.ndarray) -> None:
    """Writes `array` (uint8) as an IDX file, gzip-compressed if `path` ends in .gz."""
    array = np.asarray(array)
    header = bytes([0, 0, _DTYPE_CODES[array.dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    if path.name.endswith(".gz"):
        payload = gzip.compress(payload)
    path.write_bytes(payload)


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
