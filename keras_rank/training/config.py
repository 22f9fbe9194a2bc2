"""The frozen configuration of one training run.

Trainers turn their flags into one `TrainConfig`; the library never reads
flags. Every field is validated in `__post_init__`, so a bad value fails before
any data is read or any model is built.
"""

import dataclasses
import json
import os
from typing import Any

from keras_rank import data as data_lib
from keras_rank import models
from keras_rank.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")

# Fields that may differ between a run and its resumption: asking for more
# epochs continues a finished run, and progress output is cosmetic.
RESUMABLE_CHANGES = frozenset({"epochs", "verbose"})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run.

    Attributes:
        model: Name of a model of the zoo (`keras_rank.models.MODEL_NAMES`).
        data: A folder of the four IDX files, a folder with train/ and test/
            sub-folders of class folders, or `tfds:NAME`.
        epochs: Number of passes over the training split.
        batch_size: Global batch size (summed over replicas).
        learning_rate: Adam learning rate.
        seed: Seed of weight initialisation, dropout and data order.
        validation_fraction: Share of the training split held out for
            validation (stratified, fixed by `split_seed`), in [0, 1).
        split_seed: Seed of the validation split; kept apart from `seed` so
            that runs with different seeds are validated on the same examples.
        train_split: The training split: a TFDS split name, or the sub-folder
            of an image folder.
        test_split: The test split, named the same way (not every TFDS
            dataset has a `test` split).
        strategy: One of `STRATEGIES`.
        cpu_devices: With `strategy="mirrored"` and no GPU, split the CPU into
            this many logical devices (0 leaves the device list alone).
        deterministic: Enable TensorFlow op determinism, so that equal seeds
            give bit-identical runs.
        jit_compile: Compile the train step with XLA.
        verbose: 0 silent, 1 progress bar, 2 one line per epoch.
    """

    model: str = "mlp"
    data: str = str(data_lib.DEFAULT_DATA_DIR)
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0
    validation_fraction: float = 0.1
    split_seed: int = 0
    train_split: str = "train"
    test_split: str = "test"
    strategy: str = "default"
    cpu_devices: int = 0
    deterministic: bool = True
    jit_compile: bool = False
    verbose: int = 1

    def __post_init__(self):
        if self.model not in models.MODEL_NAMES:
            raise ConfigError(
                f"Unknown model name '{self.model}'. "
                f"Expected one of: {', '.join(models.MODEL_NAMES)}."
            )
        _require_positive("epochs", self.epochs)
        _require_positive("batch_size", self.batch_size)
        if not self.learning_rate > 0:
            raise ConfigError(
                "Expected learning_rate > 0. "
                f"Received: learning_rate={self.learning_rate}"
            )
        if not 0 <= self.validation_fraction < 1:
            raise ConfigError(
                "Expected validation_fraction in [0, 1). "
                f"Received: validation_fraction={self.validation_fraction}"
            )
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"Unknown strategy '{self.strategy}'. "
                f"Expected one of: {', '.join(STRATEGIES)}."
            )
        if self.cpu_devices < 0:
            raise ConfigError(
                f"Expected cpu_devices >= 0. Received: cpu_devices={self.cpu_devices}"
            )
        if self.verbose not in (0, 1, 2):
            raise ConfigError(
                f"Expected verbose in (0, 1, 2). Received: verbose={self.verbose}"
            )
        object.__setattr__(self, "data", os.fspath(self.data))

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    def check_resumable_from(self, saved: dict[str, Any], workdir: str) -> None:
        """Raises `ConfigError` if `saved` describes a different run.

        Args:
            saved: The `to_dict()` of the config a work directory was made with.
            workdir: The work directory, named in the error.
        """
        for name, value in self.to_dict().items():
            if name in RESUMABLE_CHANGES or name not in saved:
                continue
            if json.loads(json.dumps(saved[name])) != json.loads(json.dumps(value)):
                raise ConfigError(
                    f"workdir '{workdir}' holds a run with {name}={saved[name]!r}, "
                    f"but this run asks for {name}={value!r}. Use a new workdir "
                    "or the same settings to resume."
                )


def _require_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or value <= 0:
        raise ConfigError(f"Expected {name} > 0. Received: {name}={value!r}")
