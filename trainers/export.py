r"""Exports trained models to LiteRT for phones, then checks and times the files.

    python -m trainers.export --model_path=runs/main/model.keras \
        --baseline_path=runs/dense/model.keras --workdir=runs/main/export \
        --formats=float32,dynamic,float16,int8,qat_int8

Takes any model keras_rank's trainers save (dense, DLRA factorized or
compact, LC low-rank or plain): each is exported through its plain-layer
form with builtin LiteRT ops only. Every file is run on the whole test split
(accuracy, agreement with Keras), its parameters are counted from the file,
and all files are timed interleaved (1 thread, batch 1). Writes
export.json, report.md and export.png in --workdir and prints the table.
--model_path may be repeated; NAME=PATH names a model in the table.
"""

import pathlib

from absl import logging

from keras_rank.core import user_models
from keras_rank.core.errors import ConfigError
from keras_rank.export import ExportConfig, export_models
from trainers import common
from trainers.commands import COMMANDS, ExportModelsArgs, WorkdirArgs

common.define_flags(*COMMANDS["export"].configs)


def named_path(value: str, default_name: str) -> tuple[str, str]:
    """Splits ``NAME=PATH`` at its last ``=``; a bare PATH is named `default_name`.

    A value that is an existing file is a bare path, whatever it contains.
    """
    name, sep, path = value.rpartition("=")
    if not sep or not name or pathlib.Path(value).is_file():
        return default_name, value
    return name, path


def default_name(path: str) -> str:
    """Names a model file by its folder and stem, e.g. ``main/model``."""
    file = pathlib.Path(path)
    return f"{file.parent.name}/{file.stem}" if file.parent.name else file.stem


def main(argv: list[str]) -> None:
    """Entry point: flags -> models and config -> one library call."""
    del argv  # parse_flags refused any positional argument
    # The converter logs every SavedModel it writes at INFO; keep warnings.
    logging.set_verbosity(logging.WARNING)

    def run():
        config = common.config_from_flags(ExportConfig)
        arguments = common.config_from_flags(ExportModelsArgs)
        given = [
            (named_path(value, default_name(value)), "model_path")
            for value in arguments.model_path
        ]
        if arguments.baseline_path:
            given.insert(
                0, (named_path(arguments.baseline_path, "baseline"), "baseline_path")
            )
        models = {}
        for (name, path), argument in given:
            if name in models:
                raise ConfigError(
                    f"Expected distinct model names; '{name}' is given twice. "
                    "Name them with --model_path=NAME=PATH."
                )
            models[name] = user_models.load_model_file(path, argument=argument)
        baseline = given[0][0][0] if arguments.baseline_path else None
        export_models(
            models,
            common.config_from_flags(WorkdirArgs).workdir,
            config,
            baseline=baseline,
        )

    common.run_or_exit(run)


if __name__ == "__main__":
    common.run_command("export", main)
