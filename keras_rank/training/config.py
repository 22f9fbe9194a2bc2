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
from keras_rank.training import optimizers, task_loss

STRATEGIES = ("default", "mirrored", "multi_worker_mirrored")

OPTIMIZER_FIELDS = (
    "optimizer",
    "learning_rate",
    "momentum",
    "nesterov",
    "lr_schedule",
    "lr_decay_rate",
    "lr_cosine_alpha",
)

# Fields that may differ between a run and its resumption: asking for more
# epochs continues a finished run, and progress output is cosmetic.
RESUMABLE_CHANGES = frozenset({"epochs", "verbose", "record_units"})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines one training run.

    Attributes:
        model: Name of a model of the zoo (`keras_rank.models.MODEL_NAMES`);
            "mlp" when neither it nor `model_path` is given.
        model_path: A `.keras` file of the user's own Functional or Sequential
            model, instead of `model`; training starts from its weights.
        data: A folder of the four IDX files, a folder with train/ and test/
            sub-folders of class folders, or `tfds:NAME`.
        epochs: Number of passes over the training split.
        batch_size: Global batch size (summed over replicas).
        learning_rate: Initial learning rate, > 0.
        optimizer: One of `optimizers.OPTIMIZERS` ("adam", "sgd").
        momentum: SGD momentum in [0, 1).
        nesterov: SGD with Nesterov momentum (needs momentum > 0).
        lr_schedule: One of `optimizers.LR_SCHEDULES`: "constant",
            "exponential" (times `lr_decay_rate` every epoch) or "cosine"
            (down to `lr_cosine_alpha * learning_rate` at the last epoch).
        lr_decay_rate: Per-epoch factor of the exponential schedule, (0, 1).
        lr_cosine_alpha: Final fraction of the cosine schedule, [0, 1).
        loss: One of `task_loss.LOSSES`; "auto" is sparse categorical
            cross-entropy.
        from_logits: One of `task_loss.FROM_LOGITS`; "auto" reads the model's
            output layer (softmax: probabilities; linear: logits).
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
        record_units: Names of Dense/Conv2D layers whose unit matrices are
            written after every epoch (`keras_rank.training.unit_history`),
            for the cosine graph of their units over training.
    """

    model: str | None = None
    model_path: str | None = None
    data: str = str(data_lib.DEFAULT_DATA_DIR)
    epochs: int = 5
    batch_size: int = 128
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.0
    nesterov: bool = False
    lr_schedule: str = "constant"
    lr_decay_rate: float | None = None
    lr_cosine_alpha: float = 0.0
    loss: str = "auto"
    from_logits: str = "auto"
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
    record_units: tuple[str, ...] = ()

    def __post_init__(self):
        if self.model is not None and self.model_path is not None:
            raise ConfigError(
                f"Expected model or model_path, not both. Received: "
                f"model={self.model!r}, model_path={self.model_path!r}"
            )
        if self.model_path is not None:
            object.__setattr__(self, "model_path", os.fspath(self.model_path))
        elif self.model is None:
            object.__setattr__(self, "model", "mlp")
        if self.model is not None and self.model not in models.MODEL_NAMES:
            raise ConfigError(
                f"Unknown model name '{self.model}'. "
                f"Expected one of: {', '.join(models.MODEL_NAMES)}."
            )
        _require_positive("epochs", self.epochs)
        _require_positive("batch_size", self.batch_size)
        optimizers.check_optimizer_args(**self.optimizer_settings())
        task_loss.check_task_loss_args(self.loss, self.from_logits)
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
        if self.cpu_devices and self.strategy != "mirrored":
            raise ConfigError(
                "Expected cpu_devices=0 unless strategy='mirrored' (it splits "
                "the CPU for MirroredStrategy). Received: "
                f"cpu_devices={self.cpu_devices}, strategy={self.strategy!r}"
            )
        if self.verbose not in (0, 1, 2):
            raise ConfigError(
                f"Expected verbose in (0, 1, 2). Received: verbose={self.verbose}"
            )
        object.__setattr__(self, "data", os.fspath(self.data))
        if isinstance(self.record_units, str) or not all(
            isinstance(name, str) and name for name in self.record_units
        ):
            raise ConfigError(
                "Expected record_units: a sequence of layer names. "
                f"Received: record_units={self.record_units!r}"
            )
        object.__setattr__(self, "record_units", tuple(self.record_units))

    def optimizer_settings(self) -> dict[str, Any]:
        """Returns the arguments of `optimizers.make_optimizer` but the run's length."""
        return {name: getattr(self, name) for name in OPTIMIZER_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    def check_resumable_from(self, saved: dict[str, Any], workdir: str) -> None:
        """Raises `ConfigError` if `saved` describes a different run.

        Args:
            saved: The `to_dict()` of the config a work directory was made with.
            workdir: The work directory, named in the error.
        """
        # A cosine schedule's length is fixed by the epochs it was made for.
        resumable = RESUMABLE_CHANGES - (
            {"epochs"} if self.lr_schedule == "cosine" else set()
        )
        for name, value in self.to_dict().items():
            if name in resumable or name not in saved:
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
