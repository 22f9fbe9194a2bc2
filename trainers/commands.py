"""Every command line of keras_rank and the config classes its flags come from.

A trainer defines its flags with ``common.define_flags(*COMMANDS[name].configs)``;
docs/cli.md is rendered from the same table (`trainers.cli_reference`). The
few arguments that belong to no library config (where to write, which files
to read) are declared here, as settings like every other.
"""

import dataclasses

from keras_rank.analysis.config import AnalysisConfig
from keras_rank.core.settings import (
    REQUIRED,
    Setting,
    check_settings,
    setting,
    settings_of,
)
from keras_rank.dlra.config import DLRAConfig
from keras_rank.export.config import ExportConfig
from keras_rank.lc.config import LCConfig
from keras_rank.prox.config import ProxConfig
from keras_rank.training.config import TrainConfig
from tuning.config import SearchConfig


@dataclasses.dataclass(frozen=True)
class WorkdirArgs:
    """Where a command writes."""

    workdir: str = setting(
        REQUIRED, "Work directory (checkpoints, logs, results, reports)"
    )

    def __post_init__(self):
        check_settings(self)


@dataclasses.dataclass(frozen=True)
class LogArgs:
    """What a command shows of TensorFlow's own messages (`trainers.startup`)."""

    tf_logs: bool = setting(
        False,
        "Show TensorFlow's start-up lines and Python warnings (e.g. tf.function "
        "retracing); by default only its errors",
    )

    def __post_init__(self):
        check_settings(self)


@dataclasses.dataclass(frozen=True)
class ReferenceArgs:
    """LC's reference net, when it is not to be trained."""

    reference: str | None = setting(
        None, "A trained .keras reference net; if absent, one is trained"
    )

    def __post_init__(self):
        check_settings(self)


@dataclasses.dataclass(frozen=True)
class ExportModelsArgs:
    """The models `trainers.export` exports."""

    model_path: tuple[str, ...] = setting(
        REQUIRED,
        "A trained .keras model to export; NAME=PATH names it in the table",
        repeated=True,
    )
    baseline_path: str | None = setting(
        None,
        "The dense model to compare with (exported too); ratios are taken against it",
    )

    def __post_init__(self):
        check_settings(self)


@dataclasses.dataclass(frozen=True)
class Command:
    """One command line.

    Attributes:
        summary: One line on what it does.
        usage: An example command.
        configs: The classes whose settings are its flags, in this order.
        module: The module run with ``python -m``; default ``trainers.<name>``.
    """

    summary: str
    usage: str
    configs: tuple[type, ...]
    module: str | None = None


COMMANDS = {
    "baseline": Command(
        "Trains a model with the shared engine, no compression.",
        "python -m trainers.baseline --model=mlp --epochs=5 --workdir=runs/mlp",
        (TrainConfig, WorkdirArgs, LogArgs),
    ),
    "dlra": Command(
        "Trains with RaRe + dynamic low-rank approximation (Lee et al. 2021).",
        "python -m trainers.dlra --model=mlp --epochs=30 --workdir=runs/dlra",
        (TrainConfig, DLRAConfig, WorkdirArgs, LogArgs),
    ),
    "lc": Command(
        "Learns each layer's rank with the LC algorithm (Idelbayev & "
        "Carreira-Perpinan 2020).",
        "python -m trainers.lc --model=lenet300_tanh --epochs=30 --lambda=2e-5 "
        "--workdir=runs/lc",
        (TrainConfig, LCConfig, ReferenceArgs, WorkdirArgs, LogArgs),
    ),
    "prox": Command(
        "Compression-aware training with nuclear-norm proximal steps (Alvarez "
        "& Salzmann 2017).",
        "python -m trainers.prox --model=mlp --epochs=30 --tau=1 --workdir=runs/prox",
        (TrainConfig, ProxConfig, WorkdirArgs, LogArgs),
    ),
    "export": Command(
        "Exports trained models to LiteRT, then checks and times the files.",
        "python -m trainers.export --model_path=runs/main/model.keras "
        "--formats=float32,int8 --workdir=runs/main/export",
        (ExportModelsArgs, ExportConfig, WorkdirArgs, LogArgs),
    ),
    "search": Command(
        "Searches every method's knobs with keras-tuner for a budget, then "
        "retrains and exports the best.",
        "python -m tuning.search --method=all --budget=flops:0.25 "
        "--max_trials=8 --epochs=5 --workdir=runs/search",
        (TrainConfig, SearchConfig, WorkdirArgs, LogArgs),
        module="tuning.search",
    ),
    "analyze": Command(
        "Where the redundancy of a trained model is: one report (Heitmann).",
        "python -m trainers.analyze --model_path=runs/mlp/model.keras "
        "--workdir=runs/mlp/analysis",
        (AnalysisConfig, WorkdirArgs, LogArgs),
    ),
}


def module_of(name: str) -> str:
    """Returns the module ``python -m`` runs for command `name`."""
    return COMMANDS[name].module or f"trainers.{name}"


def _with_bases(config_class: type) -> list[type]:
    """The config class and its dataclass bases, bases first."""
    bases = [
        base
        for base in reversed(config_class.__mro__[1:])
        if dataclasses.is_dataclass(base)
    ]
    return [*bases, config_class]


def command_sections(name: str) -> list[type]:
    """The config classes whose settings are command `name`'s flags, one each.

    A class's dataclass bases come before it (`DataConfig` before
    `TrainConfig`): the groups of ``--help`` and of docs/cli.md.
    """
    sections: list[type] = []
    for config_class in COMMANDS[name].configs:
        sections += [c for c in _with_bases(config_class) if c not in sections]
    return sections


def own_settings(config_class: type) -> list[Setting]:
    """The settings a class declares itself (not those of its bases)."""
    inherited = {
        item.name
        for base in _with_bases(config_class)[:-1]
        for item in settings_of(base)
    }
    return [item for item in settings_of(config_class) if item.name not in inherited]
