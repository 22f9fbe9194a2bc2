"""Train, validation and test splits of an image classification dataset.

`load_splits` understands three kinds of `spec`:

* a folder of the four IDX files of MNIST-like datasets (`idx.py`), such as
  `DEFAULT_DATA_DIR`, read into memory as uint8 (`ArraySource`);
* a folder with `train/` and `test/` sub-folders holding one sub-folder of
  images per class (`image_folder.py`), decoded while training;
* `tfds:NAME`, a TensorFlow Datasets dataset (`tfds_source.py`), streamed.

The validation split is carved from the training split only, never from test.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
import pathlib

import numpy as np

from keras_rank.core.errors import ConfigError, DataError
from keras_rank.data import idx
from keras_rank.data.image_folder import ImageFolderSource, load_image_folder
from keras_rank.data.sources import ArraySource, ExampleSource
from keras_rank.data.tfds_source import TfdsSource, load_tfds

DEFAULT_DATA_DIR: pathlib.Path = (
    pathlib.Path(__file__).resolve().parents[2] / "data" / "fashion_mnist"
)
"""The Fashion-MNIST IDX files shipped with the repository."""

TFDS_PREFIX = "tfds:"

# Training splits the validation split can be carved from.
_Splittable = ArraySource | ImageFolderSource | TfdsSource


@dataclasses.dataclass(frozen=True, eq=False)
class DataSplits:
    """Train, validation and test examples of an image classification dataset.

    Attributes:
        train: Examples used for training, without the validation examples.
        validation: Examples carved from the source's training split, or None
            when the validation fraction is 0.
        test: The source's test split, untouched.
        num_classes: Number of classes (IDX: largest label over train and
            test, plus one).
        input_shape: Shape of one image, e.g. `(28, 28, 1)`.
        source: The folder or `tfds:NAME` spec the data came from.
        class_names: Names of the classes, or None when the source has none
            (IDX).
    """

    train: ExampleSource
    validation: ExampleSource | None
    test: ExampleSource
    num_classes: int
    input_shape: tuple[int, ...]
    source: str
    class_names: tuple[str, ...] | None = None


def _check_validation_fraction(validation_fraction: float) -> None:
    """Raises ConfigError unless `0 <= validation_fraction < 1`."""
    is_number = isinstance(validation_fraction, numbers.Real) and not isinstance(
        validation_fraction, bool
    )
    if not (is_number and 0 <= validation_fraction < 1):
        raise ConfigError(
            "Expected validation_fraction, a number in [0, 1). "
            f"Received: validation_fraction={validation_fraction!r}"
        )


def _check_split_names(train_split: str, test_split: str) -> None:
    """Raises ConfigError unless both names are distinct, non-empty strings."""
    for name, value in (("train_split", train_split), ("test_split", test_split)):
        if not isinstance(value, str) or not value:
            raise ConfigError(
                f"Expected {name}, a non-empty string. Received: {name}={value!r}"
            )
    if train_split == test_split:
        raise ConfigError(
            "Expected train_split != test_split (the test split is never "
            f"trained on). Received: train_split=test_split={train_split!r}"
        )


def stratified_validation_indices(
    labels: np.ndarray, validation_fraction: float, split_seed: int
) -> np.ndarray:
    """Pick a class-stratified random subset of example indices.

    `round(validation_fraction * len(labels))` indices are drawn; each class
    gets its share `validation_fraction * count` rounded down, and the
    examples left over go to the classes with the largest remainders. The
    draw depends only on `labels`, `validation_fraction` and `split_seed`.

    Args:
        labels: Integer labels of shape `(N,)`.
        validation_fraction: Fraction of examples to pick, in `[0, 1)`.
        split_seed: Seed of `numpy.random.default_rng`.

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


def _check_both_sides(picked: int, total: int, validation_fraction: float) -> None:
    """Raises ConfigError when the validation split takes none or all examples."""
    if picked == 0 or picked == total:
        raise ConfigError(
            f"validation_fraction={validation_fraction!r} leaves {picked} of "
            f"{total} training examples for validation; expected a value in "
            "[0, 1) that leaves examples on both sides"
        )


def _carve_validation(
    train: _Splittable,
    validation_fraction: float,
    split_seed: int,
) -> tuple[ExampleSource, ExampleSource | None]:
    """Splits `train` into (train without validation, validation).

    In-memory labels (IDX, image folders) give a stratified draw fixed by
    `split_seed`; a TFDS split gives its first examples, by TFDS slicing (not
    stratified; TFDS shuffled the examples when it prepared the dataset).
    """
    if validation_fraction == 0:
        return train, None
    if isinstance(train, TfdsSource):
        count = int(round(validation_fraction * train.num_examples))
        _check_both_sides(count, train.num_examples, validation_fraction)
        validation, rest = train.split_at(count)
        return rest, validation
    picked = stratified_validation_indices(
        train.labels, validation_fraction, split_seed
    )
    _check_both_sides(len(picked), train.num_examples, validation_fraction)
    keep = np.setdiff1d(np.arange(train.num_examples), picked)
    return train.subset(keep), train.subset(picked)


def _idx_sources(folder: pathlib.Path) -> tuple[ArraySource, ArraySource, int]:
    """Reads an IDX folder: (train, test, num_classes)."""
    (train_x, train_y), (test_x, test_y) = idx.load_idx_folder(folder)
    if train_x.shape[1:] != test_x.shape[1:]:
        raise DataError(
            f"data '{folder}': train images of shape {train_x.shape[1:]} but test "
            f"images of shape {test_x.shape[1:]}"
        )
    if len(train_y) == 0 or len(test_y) == 0:
        raise DataError(
            f"data '{folder}': {len(train_y)} train and {len(test_y)} test "
            "examples; expected both non-empty"
        )
    for images in (train_x, test_x):
        if images.dtype == np.uint8:
            continue
        found = f"dtype {images.dtype}"
        if np.issubdtype(images.dtype, np.floating):
            low, high = images.min(), images.max()
            if 0 <= low <= high <= 1:
                continue
            found = f"floats in [{low}, {high}]"
        raise DataError(
            f"data '{folder}': expected uint8 images or floats in [0, 1], found {found}"
        )
    try:
        train, test = ArraySource(train_x, train_y), ArraySource(test_x, test_y)
    except DataError as err:  # Labels: the message says what is wrong.
        raise DataError(f"data '{folder}': {err}") from err
    num_classes = int(max(train.labels.max(), test.labels.max())) + 1
    return train, test, num_classes


def _open(
    spec: str,
    train_split: str,
    test_split: str,
    tfds_data_dir: str | os.PathLike[str] | None,
) -> tuple[_Splittable, ExampleSource, int, tuple[str, ...] | None, str]:
    """Opens `spec`: (train, test, num_classes, class_names, source)."""
    if spec.startswith(TFDS_PREFIX):
        name = spec[len(TFDS_PREFIX) :]
        if not name:
            raise DataError(f"data '{spec}': missing dataset name after tfds:")
        train, test, num_classes, class_names = load_tfds(
            name, train_split=train_split, test_split=test_split, data_dir=tfds_data_dir
        )
        return train, test, num_classes, class_names, spec
    folder = pathlib.Path(spec).expanduser()
    if folder.is_dir() and idx.has_idx_files(folder):
        return (*_idx_sources(folder), None, str(folder))
    if folder.is_dir() and any(
        (folder / split).is_dir() for split in (train_split, test_split)
    ):
        train, test, class_names = load_image_folder(
            folder, train_split=train_split, test_split=test_split
        )
        return train, test, len(class_names), class_names, str(folder)
    found = (
        f"neither IDX files nor {train_split}/ or {test_split}/ in the folder"
        if folder.is_dir()
        else "no such folder"
    )
    raise DataError(
        f"data '{spec}': {found}; expected a folder of the four IDX files, a "
        f"folder with {train_split}/ and {test_split}/ sub-folders of class "
        "folders, or tfds:NAME"
    )


def load_splits(
    spec: str | os.PathLike[str] = DEFAULT_DATA_DIR,
    *,
    validation_fraction: float = 0.1,
    split_seed: int = 0,
    train_split: str = "train",
    test_split: str = "test",
    tfds_data_dir: str | os.PathLike[str] | None = None,
) -> DataSplits:
    """Opens an image classification dataset as train, validation and test.

    The validation split is carved from the source's training split only (see
    `_carve_validation`): stratified by class and fixed by `split_seed` alone
    for IDX and image folders, the first examples by TFDS slicing for TFDS.

    Args:
        spec: A folder of the four IDX files, a folder with `train_split/`
            and `test_split/` sub-folders of class folders, or `"tfds:NAME"`.
        validation_fraction: Fraction of the training split held out for
            validation, in `[0, 1)`; 0 gives `validation=None`.
        split_seed: Seed of the validation draw (IDX and image folders).
        train_split: The training split: a TFDS split name, or the
            sub-folder of an image folder (IDX: unused).
        test_split: The test split, named the same way.
        tfds_data_dir: TFDS data folder for `tfds:` specs; None uses the TFDS
            default.

    Returns:
        The splits as `ExampleSource`s.

    Raises:
        ConfigError: If `validation_fraction` is outside `[0, 1)` or leaves
            no example on one side, or the split names are empty or equal.
        DataError: If `spec` is none of the three forms, or the data cannot
            be read.
    """
    _check_validation_fraction(validation_fraction)
    _check_split_names(train_split, test_split)
    train, test, num_classes, class_names, source = _open(
        os.fspath(spec), train_split, test_split, tfds_data_dir
    )
    train, validation = _carve_validation(train, validation_fraction, split_seed)
    return DataSplits(
        train=train,
        validation=validation,
        test=test,
        num_classes=num_classes,
        input_shape=train.example_shape,
        source=source,
        class_names=class_names,
    )
