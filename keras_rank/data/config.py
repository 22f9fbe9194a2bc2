"""`DataConfig`: which data a run reads and how its validation split is carved."""

import dataclasses
from typing import Any

from keras_rank.core.settings import SEED_BOUNDS, check_settings, setting
from keras_rank.data.splits import DEFAULT_DATA_DIR, DataSplits, load_splits


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The data of a run, shared by training, export and analysis.

    Attributes:
        data: A folder of the four IDX files, a folder with train/ and test/
            sub-folders of class folders, or `tfds:NAME`.
        train_split: The training split: a TFDS split name, or the sub-folder
            of an image folder.
        test_split: The test split, named the same way (not every TFDS
            dataset has a `test` split).
        validation_fraction: Share of the training split held out for
            validation (stratified, fixed by `split_seed`), in [0, 1).
        split_seed: Seed of the validation split; kept apart from the
            training seed so that runs with different seeds are validated on
            the same examples.
    """

    data: str = setting(
        str(DEFAULT_DATA_DIR),
        "A folder of the four IDX files, a folder with train/ and test/ "
        "sub-folders of class folders of images, or tfds:NAME",
        shown_default="data/fashion_mnist of the clone",
    )
    train_split: str = setting(
        "train",
        "The split to train on: a tfds split name, or an image folder's sub-folder",
    )
    test_split: str = setting("test", "The split to test on, named the same way")
    validation_fraction: float = setting(
        0.1,
        "Share of the training split held out for validation",
        bounds="[0, 1)",
    )
    split_seed: int = setting(0, "Seed of the validation split", bounds=SEED_BOUNDS)

    def __post_init__(self):
        check_settings(self)

    def data_settings(self) -> dict[str, Any]:
        """Returns the `DataConfig` fields of this config (of a subclass too)."""
        return {field.name: getattr(self, field.name) for field in _DATA_FIELDS}

    def load_splits(self) -> DataSplits:
        """Opens the data as train, validation and test (`load_splits`)."""
        return load_splits(
            self.data,
            validation_fraction=self.validation_fraction,
            split_seed=self.split_seed,
            train_split=self.train_split,
            test_split=self.test_split,
        )


_DATA_FIELDS = dataclasses.fields(DataConfig)
