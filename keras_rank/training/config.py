"""The frozen configuration of one training run.

Trainers turn their flags into one `TrainConfig`; the library never reads
flags. Every field is validated in `__post_init__`, so a bad value fails before
any data is read or any model is built.
"""

import dataclasses
import json
from typing import Any

from keras_rank import models
from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import SEED_BOUNDS, setting
from keras_rank.data import DataConfig
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
class TrainConfig(DataConfig):
    """Everything that defines one training run: its data, model and optimizer.

    The data fields are `DataConfig`'s; every field is a declared setting
    (`keras_rank.core.settings`), listed with its help, bounds and flag in
    docs/cli.md. `model` is "mlp" when neither it nor `model_path` is given;
    `model_path` is a `.keras` file of the user's own Functional or
    Sequential model, and training starts from its weights.
    """

    model: str | None = setting(
        None,
        "Model of the zoo (default mlp, unless --model_path is given)",
        choices=models.MODEL_NAMES,
    )
    model_path: str | None = setting(
        None,
        "Your own Functional or Sequential model as a .keras file, instead of "
        "--model; training starts from its weights",
    )
    epochs: int = setting(5, "Number of training epochs", bounds=">= 1")
    batch_size: int = setting(
        128, "Global batch size (summed over replicas)", bounds=">= 1"
    )
    learning_rate: float = setting(1e-3, "Initial learning rate", bounds="> 0")
    optimizer: str = setting("adam", "Optimizer", choices=optimizers.OPTIMIZERS)
    momentum: float = setting(0.0, "SGD momentum", bounds="[0, 1)")
    nesterov: bool = setting(False, "SGD with Nesterov momentum (needs momentum > 0)")
    lr_schedule: str = setting(
        "constant",
        "Learning-rate schedule: constant, exponential (times --lr_decay_rate "
        "every epoch) or cosine (down to --lr_cosine_alpha of the rate at the "
        "last epoch)",
        choices=optimizers.LR_SCHEDULES,
    )
    lr_decay_rate: float | None = setting(
        None, "Per-epoch factor of --lr_schedule=exponential", bounds="(0, 1)"
    )
    lr_cosine_alpha: float = setting(
        0.0, "Final fraction of the rate of --lr_schedule=cosine", bounds="[0, 1)"
    )
    loss: str = setting(
        "auto",
        "Task loss; auto is sparse categorical cross-entropy",
        choices=task_loss.LOSSES,
    )
    from_logits: str = setting(
        "auto",
        "Whether the model outputs logits; auto reads its output layer "
        "(softmax: probabilities; linear: logits)",
        choices=task_loss.FROM_LOGITS,
    )
    seed: int = setting(
        0, "Seed of initialisation, dropout and data order", bounds=SEED_BOUNDS
    )
    strategy: str = setting("default", "tf.distribute strategy", choices=STRATEGIES)
    cpu_devices: int = setting(
        0,
        "With --strategy=mirrored and no GPU: split the CPU into this many "
        "logical devices (0 leaves the device list alone)",
        bounds=">= 0",
    )
    deterministic: bool = setting(
        True,
        "TensorFlow op determinism: equal seeds give bit-identical runs",
    )
    jit_compile: bool = setting(False, "Compile the train step with XLA")
    verbose: int = setting(
        1,
        "0 silent, 1 progress bar (one line per epoch when stdout is not a "
        "terminal), 2 one line per epoch",
        choices=(0, 1, 2),
    )
    record_units: tuple[str, ...] = setting(
        (),
        "Dense/Conv2D layers whose weights are written after every epoch, for "
        "the cosine graph of their units over training (trainers.analyze)",
    )

    def __post_init__(self):
        super().__post_init__()
        if self.model is not None and self.model_path is not None:
            raise ConfigError(
                f"Expected model or model_path, not both. Received: "
                f"model={self.model!r}, model_path={self.model_path!r}"
            )
        if self.model is None and self.model_path is None:
            object.__setattr__(self, "model", "mlp")
        optimizers.check_optimizer_args(**self.optimizer_settings())
        if self.cpu_devices and self.strategy != "mirrored":
            raise ConfigError(
                "Expected cpu_devices=0 unless strategy='mirrored' (it splits "
                "the CPU for MirroredStrategy). Received: "
                f"cpu_devices={self.cpu_devices}, strategy={self.strategy!r}"
            )
        if not all(self.record_units):
            raise ConfigError(
                "Expected record_units: a sequence of layer names. "
                f"Received: record_units={self.record_units!r}"
            )

    def optimizer_settings(self) -> dict[str, Any]:
        """Returns the arguments of `optimizers.make_optimizer` but the run's length."""
        return {name: getattr(self, name) for name in OPTIMIZER_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict."""
        return dataclasses.asdict(self)

    def changes_from(self, saved: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """Returns the settings a resumed run may not change, where they differ.

        Args:
            saved: The `to_dict()` of the config a work directory was made with.

        Returns:
            ``{name: (saved value, this run's value)}``, in field order; empty
            when this run can resume the saved one.
        """
        # A cosine schedule's length is fixed by the epochs it was made for.
        resumable = RESUMABLE_CHANGES - (
            {"epochs"} if self.lr_schedule == "cosine" else set()
        )
        return {
            name: (saved[name], value)
            for name, value in self.to_dict().items()
            if name not in resumable
            and name in saved
            and json.loads(json.dumps(saved[name])) != json.loads(json.dumps(value))
        }
