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

from absl import app, flags, logging

from keras_rank import data as data_lib
from keras_rank import user_models
from keras_rank.errors import ConfigError
from keras_rank.export import FORMATS, ExportConfig, export_models
from trainers import common

flags.DEFINE_multi_string(
    "model_path",
    None,
    "A trained .keras model to export; repeat for several; NAME=PATH names it.",
)
flags.DEFINE_string(
    "baseline_path",
    None,
    "The dense model to compare with (exported too); ratios are taken against it.",
)
flags.DEFINE_string(
    "formats", ",".join(FORMATS), f"Comma-separated, from: {', '.join(FORMATS)}."
)
flags.DEFINE_string(
    "data",
    str(data_lib.DEFAULT_DATA_DIR),
    "The data the models were trained on (IDX folder, image folder or tfds:NAME).",
)
flags.DEFINE_string("train_split", "train", "The training split (calibration, QAT).")
flags.DEFINE_string("test_split", "test", "The split the files are tested on.")
flags.DEFINE_float(
    "validation_fraction",
    0.1,
    "Held out of the training split as in training; never drawn from.",
)
flags.DEFINE_integer(
    "representative_examples", 500, "Training examples calibrating int8 (>= 1)."
)
flags.DEFINE_integer("qat_epochs", 2, "Epochs of quantization-aware training (>= 1).")
flags.DEFINE_float("qat_learning_rate", 1e-4, "Adam learning rate of QAT (> 0).")
flags.DEFINE_integer("qat_batch_size", 128, "Batch size of QAT (>= 1).")
flags.DEFINE_integer(
    "latency_invocations", 200, "Timed invocations per file and round (>= 1)."
)
flags.DEFINE_integer("latency_rounds", 5, "Interleaved timing rounds (>= 1).")
flags.DEFINE_integer("seed", 0, "Seed of the calibration draw and of QAT.")
flags.DEFINE_integer("verbose", 1, "0 silent; 1 or 2: progress lines and the table.")
flags.DEFINE_string("workdir", None, "Folder of the files and the report.")
flags.mark_flag_as_required("model_path")
flags.mark_flag_as_required("workdir")


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
    common.reject_arguments(argv)
    # The converter logs every SavedModel it writes at INFO; keep warnings.
    logging.set_verbosity(logging.WARNING)
    f = flags.FLAGS

    def run():
        config = ExportConfig(
            formats=f.formats,
            data=f.data,
            train_split=f.train_split,
            test_split=f.test_split,
            validation_fraction=f.validation_fraction,
            representative_examples=f.representative_examples,
            qat_epochs=f.qat_epochs,
            qat_learning_rate=f.qat_learning_rate,
            qat_batch_size=f.qat_batch_size,
            latency_invocations=f.latency_invocations,
            latency_rounds=f.latency_rounds,
            seed=f.seed,
            verbose=f.verbose,
        )
        given = [
            (named_path(value, default_name(value)), "model_path")
            for value in f.model_path
        ]
        if f.baseline_path:
            given.insert(0, (named_path(f.baseline_path, "baseline"), "baseline_path"))
        models = {}
        for (name, path), argument in given:
            if name in models:
                raise ConfigError(
                    f"Expected distinct model names; '{name}' is given twice. "
                    "Name them with --model_path=NAME=PATH."
                )
            models[name] = user_models.load_model_file(path, argument=argument)
        baseline = given[0][0][0] if f.baseline_path else None
        export_models(models, f.workdir, config, baseline=baseline)

    common.run_or_exit(run)


if __name__ == "__main__":
    app.run(main)
