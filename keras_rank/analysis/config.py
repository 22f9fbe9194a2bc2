"""`AnalysisConfig`: what `keras_rank.analysis.run.analyze` looks at and how."""

import dataclasses
import json
import math
import os
import pathlib
from typing import Any

from keras_rank import data as data_lib
from keras_rank.analysis.pruning_criteria import CRITERIA
from keras_rank.analysis.spectra import RESIDUAL_NORMS
from keras_rank.errors import ConfigError, check_at_least
from keras_rank.training.config import TrainConfig
from keras_rank.training.unit_history import HISTORY_DIR

DEFAULT_PRUNE_UNITS = tuple(f"{percent}%" for percent in range(0, 100, 10))
"""0 %, 10 %, ..., 90 % of the pruned layer's units."""

RUN_CONFIG = "config.json"
"""The trainer's config beside a saved model.keras: the data it was trained on."""

_DATA_FIELDS = (
    "data",
    "train_split",
    "test_split",
    "validation_fraction",
    "split_seed",
)


@dataclasses.dataclass(frozen=True)
class AnalysisConfig:
    """Everything that defines one analysis of a saved model.

    Attributes:
        model_path: The ``.keras`` file: the model.keras of any keras_rank
            trainer, or a user's Functional/Sequential model.
        layer: The Dense/Conv2D layer whose units are pruned and drawn as a
            graph; None takes the first one whose units can be removed.
        prune_units: Numbers of units to prune: ints, or strings ``"P%"``
            (P percent of the layer's units, rounded), each below the
            layer's width.
        criteria: Pruning criteria (`pruning_criteria.CRITERIA`).
        residual_norm: Norm of the rank-k residual curve whose elbow gives
            each layer's rank (`spectra.RESIDUAL_NORMS`; "spectral", the
            paper's, is the scree curve of the singular values).
        random_seeds: Random orders averaged for the ``random`` criterion.
        sigma: Width of the cosine graph's Gaussian, > 0 (None: 1.0,
            `cosine_graph.DEFAULT_SIGMA`).
        threshold: Edges of the cosine graph below this weight are dropped,
            in [0, 1] (None: 0.5, which with sigma 1 keeps cos >= 1 - ln 2,
            about 0.31).
        graph_epochs: Epochs with a static PNG of the cosine graph; None
            takes the first, the last and up to two between.
        history_dir: The trainer's ``unit_history`` folder (weights per
            epoch); None looks beside the model.
        data: The data the model was trained on; None reads it from the
            trainer's config.json beside the model, else the embedded
            Fashion-MNIST. Accuracies are on its test split.
        train_split, test_split, validation_fraction, split_seed: As in
            training (None: from config.json, else the trainers' defaults).
        batch_size: Evaluation batch size.
        verbose: 0 silent, 1 or 2 progress lines.
    """

    model_path: str
    layer: str | None = None
    prune_units: tuple[int | str, ...] = DEFAULT_PRUNE_UNITS
    criteria: tuple[str, ...] = CRITERIA
    residual_norm: str = RESIDUAL_NORMS[0]
    random_seeds: int = 5
    sigma: float | None = None
    threshold: float | None = None
    graph_epochs: tuple[int, ...] | None = None
    history_dir: str | None = None
    data: str | None = None
    train_split: str | None = None
    test_split: str | None = None
    validation_fraction: float | None = None
    split_seed: int | None = None
    batch_size: int = 256
    verbose: int = 1

    def __post_init__(self):
        object.__setattr__(self, "model_path", os.fspath(self.model_path))
        object.__setattr__(self, "prune_units", tuple(self.prune_units))
        object.__setattr__(self, "criteria", tuple(self.criteria))
        if not self.criteria or any(c not in CRITERIA for c in self.criteria):
            raise ConfigError(
                f"Expected criteria from {CRITERIA}. Received: criteria="
                f"{list(self.criteria)}"
            )
        if not self.prune_units:
            raise ConfigError("Expected at least one count in prune_units.")
        for value in self.prune_units:
            _percent_or_count(value)
        if self.residual_norm not in RESIDUAL_NORMS:
            raise ConfigError(
                f"Expected residual_norm in {RESIDUAL_NORMS}. Received: "
                f"residual_norm={self.residual_norm!r}"
            )
        check_at_least("random_seeds", self.random_seeds, 1)
        check_at_least("batch_size", self.batch_size, 1)
        if self.sigma is not None and not (
            isinstance(self.sigma, int | float) and 0 < self.sigma < math.inf
        ):
            raise ConfigError(f"Expected sigma > 0. Received: sigma={self.sigma!r}")
        if self.threshold is not None and not 0 <= self.threshold <= 1:
            raise ConfigError(
                f"Expected threshold in [0, 1]. Received: threshold={self.threshold!r}"
            )
        if self.graph_epochs is not None:
            object.__setattr__(self, "graph_epochs", tuple(self.graph_epochs))
            for epoch in self.graph_epochs:
                check_at_least("graph_epochs", epoch, 0)
        if self.verbose not in (0, 1, 2):
            raise ConfigError(
                f"Expected verbose in (0, 1, 2). Received: verbose={self.verbose!r}"
            )

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
