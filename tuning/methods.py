"""What the search needs of each method beyond its search space.

A `SearchedMethod` says how one trial runs the method: its config class
(whose searched settings are the space, `tuning.spaces`), the settings the
search fixes, how a trial's epoch budget is split between the method's
phases, its library run function, and which models the run delivers (a
method may deliver several, as prox's decompositions at every energy; the
trial keeps the one that scores best). Nothing here trains or scores.
"""

import dataclasses
import json
import pathlib
from collections.abc import Callable
from typing import Any

from keras_rank.dlra.config import DLRAConfig
from keras_rank.dlra.run import train_dlra
from keras_rank.lc.config import LCConfig
from keras_rank.lc.run import train_lc
from keras_rank.prox.config import ProxConfig
from keras_rank.prox.run import train_prox
from keras_rank.training.config import TrainConfig


@dataclasses.dataclass(frozen=True)
class Delivered:
    """A model a run delivers, and the settings that made it.

    Attributes:
        model_file: The .keras file (the method's own layers).
        settings: The method's settings behind it (e.g. prox's energy), as
            results.json's summary holds them.
    """

    model_file: pathlib.Path
    settings: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SearchedMethod:
    """One method as the search runs it.

    Attributes:
        name: The method's name.
        config_class: Its config class; its searched settings are the space.
        fixed: Settings the search fixes (e.g. no baselines for LC).
        phases: Maps a trial's epochs to ``(train epochs, method settings)``.
        run: ``run(config, method_config, workdir, reference_file,
            latency)``: the library call, resuming from `workdir`; `latency`
            is the search's `LatencyTable` (None unless the budget is one).
        delivered: ``delivered(workdir)``: what a finished run delivers.
        starts_from_reference: Whether the run starts from the trained
            reference (LC) rather than from the initial model.
    """

    name: str
    config_class: type
    fixed: dict[str, Any]
    phases: Callable[[int], tuple[int, dict[str, Any]]]
    run: Callable[[TrainConfig, Any, pathlib.Path, str, Any], dict[str, Any]]
    delivered: Callable[[pathlib.Path], list[Delivered]]
    starts_from_reference: bool = False

    def make_config(
        self, values: dict[str, Any], epochs: int, goal_settings: dict | None = None
    ) -> tuple[int, Any]:
        """Returns the train epochs and the method config of a trial.

        Args:
            values: The trial's values of the searched settings.
            epochs: The trial's budget in epochs, all phases together.
            goal_settings: Settings the search's goal fixes (a latency
                budget: ``criterion="latency"``), where the method has them.
        """
        train_epochs, phase_settings = self.phases(epochs)
        fields = {field.name for field in dataclasses.fields(self.config_class)}
        goal = {k: v for k, v in (goal_settings or {}).items() if k in fields}
        config = self.config_class(**{**self.fixed, **goal, **phase_settings, **values})
        return train_epochs, config


def _summary_settings(folder: pathlib.Path, method: str) -> dict[str, Any]:
    summary = json.loads((folder / "results.json").read_text())["summary"]
    return summary["settings"]["method"][method]


def _lc_phases(epochs: int) -> tuple[int, dict[str, Any]]:
    # A fifth of the epochs fine-tune the low-rank net, the rest are L steps
    # of one epoch each (the README's MLP runs: 20 L steps, 5 fine-tuning).
    finetune = epochs // 5
    return epochs, {
        "lc_steps": max(epochs - finetune, 1),
        "epochs_per_l_step": 1,
        "finetune_epochs": finetune,
    }


def _lc_delivered(workdir: pathlib.Path) -> list[Delivered]:
    return [
        Delivered(folder / "model_lowrank.keras", _summary_settings(folder, "lc"))
        for folder in sorted(workdir.glob("lambda_*"))
        if (folder / "results.json").is_file()
    ]


def _prox_delivered(workdir: pathlib.Path) -> list[Delivered]:
    return [
        Delivered(folder / "model_lowrank.keras", _summary_settings(folder, "prox"))
        for folder in sorted(workdir.glob("energy_*"))
        if (folder / "results.json").is_file()
    ]


def _dlra_delivered(workdir: pathlib.Path) -> list[Delivered]:
    return [Delivered(workdir / "model.keras", _summary_settings(workdir, "dlra"))]


SEARCHED = {
    "dlra": SearchedMethod(
        name="dlra",
        config_class=DLRAConfig,
        fixed={},
        phases=lambda epochs: (epochs, {}),
        run=lambda config, method, workdir, reference, latency: train_dlra(
            config, method, workdir
        ),
        delivered=_dlra_delivered,
    ),
    "lc": SearchedMethod(
        name="lc",
        config_class=LCConfig,
        fixed={"baselines": False},
        phases=_lc_phases,
        run=lambda config, method, workdir, reference, latency: train_lc(
            config, method, workdir, reference=reference, latency=latency
        ),
        delivered=_lc_delivered,
        starts_from_reference=True,
    ),
    "prox": SearchedMethod(
        name="prox",
        config_class=ProxConfig,
        fixed={"energies": (80.0, 90.0, 95.0, 98.0, 100.0)},
        phases=lambda epochs: (epochs, {}),
        run=lambda config, method, workdir, reference, latency: train_prox(
            config, method, workdir, latency=latency
        ),
        delivered=_prox_delivered,
    ),
}
"""Every method the search knows, by name."""
