"""`ExportConfig`: which LiteRT files to write and how to check them."""

import dataclasses
from collections.abc import Iterable
from typing import Any

from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import SEED_BOUNDS, setting
from keras_rank.data import DataConfig

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
class ExportConfig(DataConfig):
    """How models are exported to LiteRT and measured.

    The data fields are `DataConfig`'s, as the models were trained: the
    representative examples and the QAT fine-tuning come from the training
    part of the training split (never the held-out validation part), the
    accuracy from the test split. Every field is a setting (docs/cli.md).
    """

    formats: tuple[str, ...] = setting(
        FORMATS,
        "LiteRT formats to write, in this order: float32, dynamic-range, "
        "float16 weights, full int8 (post-training), full int8 after QAT",
        choices=FORMATS,
    )
    representative_examples: int = setting(
        500, "Training examples calibrating the int8 activation ranges", bounds=">= 1"
    )
    qat_epochs: int = setting(
        2,
        "Epochs of quantization-aware training; the epoch of highest "
        "validation accuracy is kept",
        bounds=">= 1",
    )
    qat_learning_rate: float = setting(1e-4, "Adam learning rate of QAT", bounds="> 0")
    qat_batch_size: int = setting(128, "Batch size of QAT", bounds=">= 1")
    latency_invocations: int = setting(
        200, "Timed invocations per interpreter and round", bounds=">= 1"
    )
    latency_rounds: int = setting(
        5, "Interleaved timing rounds of every interpreter", bounds=">= 1"
    )
    latency_instances: int = setting(
        5,
        "Interpreters per file, each timed in every round; a file's latency "
        "is the median of its interpreters' medians (one interpreter can run "
        "a file 30 % slower than the next through every round)",
        bounds=">= 1",
    )
    seed: int = setting(
        0, "Seed of the representative draw and of QAT", bounds=SEED_BOUNDS
    )
    verbose: int = setting(
        1, "0 silent; 1 or 2: progress lines and the table", choices=(0, 1, 2)
    )

    def __post_init__(self):
        object.__setattr__(self, "formats", parse_formats(self.formats))
        super().__post_init__()

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict."""
        return dataclasses.asdict(self)
