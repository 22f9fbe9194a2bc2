"""`AnalysisConfig`: what `keras_rank.analysis.run.analyze` looks at and how."""

import dataclasses
import json
import pathlib
from typing import Any

from keras_rank import data as data_lib
from keras_rank.analysis.pruning_criteria import CRITERIA
from keras_rank.analysis.spectra import RESIDUAL_NORMS
from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import REQUIRED, check_settings, like, setting
from keras_rank.data import DataConfig
from keras_rank.training.config import TrainConfig
from keras_rank.training.unit_history import HISTORY_DIR

DEFAULT_PRUNE_UNITS = tuple(f"{percent}%" for percent in range(0, 100, 10))
"""0 %, 10 %, ..., 90 % of the pruned layer's units."""

RUN_CONFIG = "config.json"
"""The trainer's config beside a saved model.keras: the data it was trained on."""

_DATA_FIELDS = tuple(field.name for field in dataclasses.fields(DataConfig))


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Everything that defines one analysis of a saved model.

    Every field is a setting (docs/cli.md). The data fields are
    `DataConfig`'s with None as default: None reads the value from the
    trainer's config.json beside the model (`train_config`), else takes the
    trainers' default. Accuracies are on the test split.
    """

    model_path: str = setting(
        REQUIRED,
        "The .keras model to analyse: the model.keras of any keras_rank "
        "trainer, or your own Functional/Sequential model",
    )
    layer: str | None = setting(
        None,
        "Dense/Conv2D layer whose units are pruned and drawn as a graph; "
        "default: the first whose units can go",
    )
    prune_units: tuple[int | str, ...] = setting(
        DEFAULT_PRUNE_UNITS,
        "Units to prune: counts, or percentages of the layer's units ('50%'), "
        "each below the layer's width",
    )
    criteria: tuple[str, ...] = setting(CRITERIA, "Pruning criteria", choices=CRITERIA)
    residual_norm: str = setting(
        RESIDUAL_NORMS[0],
        "Norm of the rank-k residual curve whose elbow picks each layer's rank "
        "(spectral, the paper's: the scree curve of the singular values)",
        choices=RESIDUAL_NORMS,
    )
    random_seeds: int = setting(
        5, "Random pruning orders averaged for the random criterion", bounds=">= 1"
    )
    sigma: float | None = setting(
        None, "Width of the cosine graph's Gaussian; default 1.0", bounds="> 0"
    )
    threshold: float | None = setting(
        None,
        "Cosine graph edges below this weight are dropped; default 0.5 (with "
        "sigma 1: cos >= 0.31)",
        bounds="[0, 1]",
    )
    graph_epochs: tuple[int, ...] | None = setting(
        None,
        "Epochs with a PNG of the cosine graph; default: the first, the last "
        "and up to two between",
        bounds=">= 0",
    )
    history_dir: str | None = setting(
        None, "The run's unit_history folder; default: beside the model"
    )
    data: str | None = like(DataConfig, "data", None, "default: the run's, else ours")
    train_split: str | None = like(
        DataConfig, "train_split", None, "default: the run's"
    )
    test_split: str | None = like(DataConfig, "test_split", None, "default: the run's")
    validation_fraction: float | None = like(
        DataConfig, "validation_fraction", None, "default: the run's"
    )
    split_seed: int | None = like(DataConfig, "split_seed", None, "default: the run's")
    batch_size: int = setting(256, "Evaluation batch size", bounds=">= 1")
    verbose: int = setting(1, "0 silent; 1 or 2: progress lines", choices=(0, 1, 2))

    def __post_init__(self):
        check_settings(self)
        if not self.criteria:
            raise ConfigError(
                f"Expected criteria from {CRITERIA}. Received: criteria=[]"
            )
        if not self.prune_units:
            raise ConfigError("Expected at least one count in prune_units.")
        for value in self.prune_units:
            _percent_or_count(value)

    @property
    def run_folder(self) -> pathlib.Path:
        """The folder of the model file (a trainer's work directory)."""
        return pathlib.Path(self.model_path).expanduser().parent

    def history_folder(self) -> pathlib.Path:
        """The unit history folder: `history_dir`, or the one beside the model."""
        if self.history_dir is not None:
            return pathlib.Path(self.history_dir)
        return self.run_folder / HISTORY_DIR

    def counts(self, width: int) -> tuple[int, ...]:
        """Returns `prune_units` as distinct unit counts of a `width`-unit layer.

        Raises:
            ConfigError: A count is at least `width` (a layer keeps a unit).
        """
        counts = []
        for value in self.prune_units:
            count = _percent_or_count(value)
            if isinstance(count, float):
                count = round(count / 100 * width)
            if count >= width:
                raise ConfigError(
                    f"Expected prune_units below the layer's width {width} (a "
                    f"layer keeps at least one unit). Received: {value!r}"
                )
            counts.append(count)
        return tuple(sorted(set(counts)))

    def train_config(self) -> TrainConfig:
        """The training config whose data and splits the accuracies use.

        Unset data fields come from the trainer's config.json beside the
        model, else in a sub-folder of its folder (LC writes its models
        beside the runs lc/, finetune/, ...), else one folder up (prox's
        energy_<e>/ models), else from `TrainConfig`'s defaults.
        """
        saved = {}
        folder = self.run_folder
        candidates = [folder, *sorted(folder.glob("*/")), folder.parent]
        for candidate in candidates:
            if (candidate / RUN_CONFIG).is_file():
                run = json.loads((candidate / RUN_CONFIG).read_text())
                saved = {name: run[name] for name in _DATA_FIELDS if name in run}
                break
        given = {
            name: getattr(self, name)
            for name in _DATA_FIELDS
            if getattr(self, name) is not None
        }
        fields = {"data": str(data_lib.DEFAULT_DATA_DIR), **saved, **given}
        return TrainConfig(
            model_path=self.model_path, batch_size=self.batch_size, **fields
        )

    def to_dict(self) -> dict[str, Any]:
        """Returns the fields as a JSON-able dict."""
        return dataclasses.asdict(self)


def _percent_or_count(value: object) -> int | float:
    """Returns a count (int) or a percentage (float) from one prune_units entry."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if text.endswith("%") and 0 <= float(text[:-1]) < 100:
                return float(text[:-1])
            if text.isdigit():
                return int(text)
        except ValueError:
            pass
    raise ConfigError(
        "Expected prune_units entries: unit counts >= 0 or percentages "
        f"'P%' with 0 <= P < 100. Received: {value!r}"
    )
