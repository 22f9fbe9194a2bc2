"""IDX encoding, small learnable datasets (IDX files, PNG folders), batch reading,
and a small conv net for them."""

import gzip
import pathlib

import keras
import numpy as np
import tensorflow as tf

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


def write_image_folder(
    root: pathlib.Path,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
    suffix: str = ".png",
) -> pathlib.Path:
    """Writes `root/<split>/<class name>/<index>.png` for each image of each split.

    Images are uint8 arrays (N, H, W) or (N, H, W, C); file names are the
    zero-padded example index, so sorted order is the array order per class.
    """
    for split, (images, labels) in splits.items():
        for name in class_names:
            (root / split / name).mkdir(parents=True, exist_ok=True)
        for index, (image, label) in enumerate(zip(images, labels, strict=True)):
            pixels = image if image.ndim == 3 else image[..., np.newaxis]
            path = root / split / class_names[label] / f"{index:06d}{suffix}"
            path.write_bytes(tf.io.encode_png(pixels).numpy())
    return root


def make_image_folder(
    root: pathlib.Path, train: int = 600, test: int = 200, num_classes: int = 10
) -> pathlib.Path:
    """Writes a small learnable dataset (`class_images`) as a folder of PNGs."""
    names = tuple(f"class_{label:02d}" for label in range(num_classes))
    return write_image_folder(
        root,
        {
            "train": class_images(train, num_classes, 0),
            "test": class_images(test, num_classes, 1),
        },
        names,
    )


def read_batches(dataset) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Returns (images, labels, batch sizes) of a dataset of batches, in order."""
    images, labels, sizes = [], [], []
    for x, y in dataset.as_numpy_iterator():
        images.append(x)
        labels.append(y)
        sizes.append(len(y))
    return np.concatenate(images), np.concatenate(labels), sizes


def small_conv_model(hidden_units: int, seed: int = 0) -> keras.Model:
    """Conv2D "conv" (4 filters) -> Flatten "flatten" -> Dense "hidden" -> "out".

    Takes the 28x28x1 images of `make_idx_folder`; 10 logits.
    """
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(4, 3, strides=2, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(hidden_units, activation="relu", name="hidden"),
            keras.layers.Dense(10, name="out"),
        ]
    )
