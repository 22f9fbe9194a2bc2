"""`ExportConfig`: which LiteRT files to write and how to check them."""

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

from keras_rank import data as data_lib
from keras_rank.errors import ConfigError, check_at_least

FORMATS = ("float32", "dynamic", "float16", "int8", "qat_int8")
"""LiteRT formats: float32; dynamic-range (int8 weights, float activations);
float16 weights; full int8 by post-training quantization; full int8 after
quantization-aware training (TFMOT)."""

QUANTIZED_FORMATS = frozenset({"dynamic", "int8", "qat_int8"})
"""Formats compared with the Keras model by predicted class, not by logits."""


def parse_formats(formats: str | Iterable[str]) -> tuple[str, ...]:
    """Returns the format names of a comma-separated string or an iterable.

    Args:
        formats: E.g. ``"float32,int8"`` or ``("float32", "int8")``.

    Returns:
        The names in the order of `FORMATS`, each once.

    Raises:
        ConfigError: If a name is not one of `FORMATS` or none is given.
    """
    names = formats.split(",") if isinstance(formats, str) else list(formats)
    names = [str(name).strip() for name in names if str(name).strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown or not names:
        raise ConfigError(
            f"Expected formats from: {', '.join(FORMATS)}. "
            f"Received: formats={','.join(names) or '(none)'!r}"
        )
    return tuple(name for name in FORMATS if name in names)


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    """How models are exported to LiteRT and measured.

    Attributes:
        formats: Names of `FORMATS` to write (a comma-separated string is
            accepted).
        data: The dataset the models were trained on (a folder of IDX files,
            an image folder or `tfds:NAME`): the representative examples and
            the QAT fine-tuning come from its training split, the accuracy
            from its test split.
        train_split: The training split (TFDS split or image sub-folder).
        test_split: The test split, named the same way.
        validation_fraction: Share of the training split held out as in
            training, so that only the training part is drawn from.
        split_seed: Seed of that hold-out, as in training.
        representative_examples: Training examples that calibrate the int8
            activation ranges, >= 1.
        qat_epochs: Epochs of quantization-aware fine-tuning, >= 1; the
            epoch of highest validation accuracy is kept.
        qat_learning_rate: Adam learning rate of that fine-tuning, > 0.
        qat_batch_size: Batch size of that fine-tuning, >= 1.
        latency_invocations: Timed invocations per model and round, >= 1.
        latency_rounds: Rounds of the interleaved timing, >= 1; the median
            is taken over all invocations of all rounds.
        seed: Seed of the representative draw and of QAT.
        verbose: 0 silent; 1 or 2 (as the trainers' line per epoch):
            progress lines.
    """

    formats: tuple[str, ...] = FORMATS
    data: str = str(data_lib.DEFAULT_DATA_DIR)
    train_split: str = "train"
    test_split: str = "test"
    validation_fraction: float = 0.1
    split_seed: int = 0
    representative_examples: int = 500
    qat_epochs: int = 2
    qat_learning_rate: float = 1e-4
    qat_batch_size: int = 128
    latency_invocations: int = 200
    latency_rounds: int = 5
    seed: int = 0
    verbose: int = 1

    def __post_init__(self):
        object.__setattr__(self, "formats", parse_formats(self.formats))
        object.__setattr__(self, "data", os.fspath(self.data))
        for name in (
            "representative_examples",
            "qat_epochs",
            "qat_batch_size",
            "latency_invocations",
            "latency_rounds",
        ):
            check_at_least(name, getattr(self, name), 1)
        if not self.qat_learning_rate > 0:
            raise ConfigError(
                "Expected qat_learning_rate > 0. "
                f"Received: qat_learning_rate={self.qat_learning_rate!r}"
            )
        if self.verbose not in (0, 1, 2):
            raise ConfigError(
                f"Expected verbose in (0, 1, 2). Received: verbose={self.verbose!r}"
            )

    def load_splits(self) -> data_lib.DataSplits:
        """Opens the data as training did (same hold-out of validation)."""
        return data_lib.load_splits(
            self.data,
            validation_fraction=self.validation_fraction,
            split_seed=self.split_seed,
            train_split=self.train_split,
            test_split=self.test_split,
        )

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict."""
        return dataclasses.asdict(self)
