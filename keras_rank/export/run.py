"""`export_models`: LiteRT files of trained models, checked and timed side by side.

Work directory layout::

    <model>/model_plain.keras   the deployable model (plain Keras layers)
    <model>/<format>.tflite     one LiteRT file per format
    <model>/qat.json            the QAT run (bridge check, history), if asked
    floor.tflite                Flatten + Dense(1): the cost of any invocation
    export.json                 every figure below, per model and format
    report.md                   the table
    export.png                  test accuracy against file size and latency

Per file: size, parameters counted from the file, test accuracy of the file
itself on the whole test split, the largest absolute output difference to
the Keras model and the share of test examples whose predicted class agrees
with it, and the median single-example latency on one thread, all files
timed interleaved in one run, with the invocation floor (a file that does
next to nothing) among them. With a baseline, ratios are taken against it.
"""

import json
import os
import pathlib
import time
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_rank.core import costs, tflite_file, user_models
from keras_rank.core.errors import ConfigError
from keras_rank.core.workdirs import make_writable_folder
from keras_rank.export import litert, qat, report
from keras_rank.export.config import ExportConfig
from keras_rank.export.representative import representative_examples
from keras_rank.layers.deployable import deployable_model
from keras_rank.training.task_loss import resolve_task_loss

_TEST_BATCH = 256


def _log(config: ExportConfig, message: str) -> None:
    if config.verbose:
        print(message, flush=True)


def _test_batches(splits) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (images.numpy(), labels.numpy())
        for images, labels in splits.test.batches(_TEST_BATCH)
    ]


def _keras_outputs(model: keras.Model, batches) -> np.ndarray:
    return np.concatenate(
        [
            keras.ops.convert_to_numpy(model(images, training=False))
            for images, _ in batches
        ]
    )


def _parity(outputs: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> dict:
    predicted = outputs.argmax(axis=-1)
    return {
        "test_accuracy": float(np.mean(predicted == labels)),
        "max_abs_diff": float(np.max(np.abs(outputs - reference))),
        "class_agreement": float(np.mean(predicted == reference.argmax(axis=-1))),
    }


def _floor_file(input_shape: tuple[int, ...], folder: pathlib.Path) -> pathlib.Path:
    """Writes the invocation floor: a float32 file of Flatten + Dense(1).

    Timed with the others, it measures what any invocation costs whatever
    the model (the interpreter's and Python's fixed cost per call).
    """
    model = keras.Sequential(
        [keras.Input(input_shape), keras.layers.Flatten(), keras.layers.Dense(1)]
    )
    return litert.export_litert(model, folder / "floor.tflite", "float32")


def _folder_name(name: str) -> str:
    return "".join(char if char.isalnum() or char in "-_." else "_" for char in name)


def _check_models(models: Mapping[str, keras.Model], baseline: str | None) -> None:
    if not models:
        raise ConfigError("Expected at least one model to export. Received: models={}")
    folders = [_folder_name(name) for name in models]
    if len(set(folders)) != len(folders):
        raise ConfigError(
            "Expected model names that differ as folder names. "
            f"Received: {list(models)}"
        )
    if baseline is not None and baseline not in models:
        raise ConfigError(
            f"Expected baseline to be one of the models ({', '.join(models)}). "
            f"Received: baseline={baseline!r}"
        )


def _export_model(
    name: str,
    model: keras.Model,
    folder: pathlib.Path,
    config: ExportConfig,
    representative: np.ndarray | None,
) -> tuple[keras.Model, dict[str, pathlib.Path], dict[str, Any]]:
    """Writes the deployable model and its LiteRT files; returns them."""
    plain = deployable_model(model)
    folder.mkdir(parents=True, exist_ok=True)
    plain.save(folder / "model_plain.keras")
    files, extra = {}, {}
    for fmt in config.formats:
        path = folder / f"{fmt}.tflite"
        start = time.perf_counter()
        if fmt == "qat_int8":
            extra["qat"] = qat.quantization_aware_int8(
                plain,
                path,
                config,
                from_logits=resolve_task_loss(plain).from_logits,
            )
        else:
            litert.export_litert(plain, path, fmt, representative=representative)
        tflite_file.check_builtin_only(path)
        files[fmt] = path
        _log(
            config,
            f"  {name} {fmt}: {path.stat().st_size / 1024:,.1f} KB "
            f"({time.perf_counter() - start:.1f} s)",
        )
    return plain, files, extra


def export_models(
    models: Mapping[str, keras.Model],
    workdir: str | os.PathLike,
    config: ExportConfig,
    *,
    baseline: str | None = None,
) -> dict[str, Any]:
    """Exports every model in every format of `config`, checks and times the files.

    Models with factorized (DLRA) or low-rank (LC) layers are exported
    through their plain-layer form (`keras_rank.layers.deployable.deployable_model`).

    Args:
        models: Trained Functional or Sequential models by name; the names
            label the table and name the sub-folders.
        workdir: Work directory (see the module docstring).
        config: Formats, data and measurement settings.
        baseline: The name of the dense model the ratios are taken against,
            or None for no ratios.

    Returns:
        The dict written to `workdir/export.json`.

    Raises:
        ConfigError: Bad names, an unwritable workdir, or a model that does
            not fit the data.
        ExportError: A model needs an op LiteRT's builtins lack, or (with
            qat_int8) one tf_keras cannot rebuild; the latter before anything
            is written.
    """
    _check_models(models, baseline)
    splits = config.load_splits()
    for name, model in models.items():
        user_models.check_fits_data(model, splits.input_shape, splits.num_classes)
        if "qat_int8" in config.formats:
            qat.check_rebuildable(deployable_model(model), name)
    path = make_writable_folder(workdir)
    representative = (
        representative_examples(
            splits.train, config.representative_examples, config.seed
        )
        if "int8" in config.formats
        else None
    )
    batches = _test_batches(splits)
    labels = np.concatenate([batch_labels for _, batch_labels in batches])
    entries: dict[str, dict[str, Any]] = {}
    # (model, format) -> file; None -> the invocation floor.
    files: dict[tuple[str, str] | None, pathlib.Path] = {}
    for name, model in models.items():
        _log(config, f"Exporting {name}")
        plain, model_files, extra = _export_model(
            name, model, path / _folder_name(name), config, representative
        )
        reference = _keras_outputs(plain, batches)
        cost = costs.model_cost(plain)
        entry = {
            "keras": {
                "test_accuracy": float(np.mean(reference.argmax(-1) == labels)),
                "params": cost.params,
                "flops_mac1": cost.flops_mac1,
                "flops_mac2": cost.flops_mac2,
            },
            "formats": {},
            **extra,
        }
        for fmt, file in model_files.items():
            summary = tflite_file.read_summary(file)
            outputs = tflite_file.LiteRTModel(file).predict(
                images for images, _ in batches
            )
            entry["formats"][fmt] = {
                "file": str(file.relative_to(path)),
                "size_bytes": summary.size_bytes,
                "params": summary.params,
                "weight_types": list(summary.weight_types),
                "ops": list(summary.ops),
                **_parity(outputs, reference, labels),
            }
            files[name, fmt] = file
        entries[name] = entry
    files[None] = _floor_file(splits.input_shape, path)
    _log(config, f"Timing {len(files)} LiteRT files interleaved (1 thread, batch 1)")
    latency = tflite_file.measure_latency(
        files,
        batches[0][0][:1],
        invocations=config.latency_invocations,
        rounds=config.latency_rounds,
        instances=config.latency_instances,
    )
    floor = latency.pop(None)
    for (name, fmt), timing in latency.items():
        entries[name]["formats"][fmt]["latency"] = timing
    results = {
        "models": entries,
        "baseline": baseline,
        "latency_floor_us": floor["median_us"],
        "test_examples": int(len(labels)),
        "config": config.to_dict(),
    }
    report.add_ratios(results)
    (path / "export.json").write_text(json.dumps(results, indent=1))
    table = report.markdown_table(results)
    (path / "report.md").write_text(table + "\n")
    report.plot_accuracy(results, path / "export.png")
    _log(config, table)
    return results
