"""`run_search`: a search to a budget, from the reference to the exported best.

Work directory layout::

    config.json        the trials' TrainConfig and the SearchConfig (checked on resume)
    initial_model.keras  the model given in code (``model=``), every trial's start
    reference/         the reference net's run (absent with --reference)
    reference.json     its validation accuracy and sizes, and its training time
    tuner/             keras-tuner's oracle and trials (its own files)
    trials/<id>/       one method run per trial; record.json its outcome
    trials.csv, pareto.png, summary.md   the Pareto report of every trial
    final/             the best configuration retrained: run/, model.keras,
                       model_plain.keras, export/ (LiteRT float32 and int8),
                       results.json (the summary block of the delivered model;
                       its epochs count the reference's where the method
                       starts from it)
    results.json       the goal, the reference, the best trial, the final
                       model's test accuracy and sizes, the times

Re-running the same command resumes: finished trials are not run again,
the trials that were running resume from their checkpoints (keras-tuner
retries them under the same id), and a finished reference or final run is
read, not repeated.

Distributed (keras-tuner's chief/worker mode, the environment variables
KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT, the
same command and a shared work directory): the chief trains the reference,
serves the oracle and, once every trial is over, writes the report and the
final model; each worker waits for the reference and (with --workers=N)
for N workers to have started, then runs trials until there are none left.
"""

import dataclasses
import json
import os
import pathlib
import time
from typing import Any

import keras
import keras_tuner
import numpy as np
from keras_tuner.src.distribute import utils as dist_utils

from keras_rank.core import user_models
from keras_rank.core.errors import ConfigError
from keras_rank.core.tflite_file import measure_latency
from keras_rank.data import DataConfig
from keras_rank.export import ExportConfig, export_litert, export_models
from keras_rank.export.representative import representative_examples
from keras_rank.layers.deployable import deployable_model, deployable_size
from keras_rank.training import NoCompression, TrainConfig, run_method
from keras_rank.training.evaluation import ModelEvaluator
from keras_rank.training.run import prepare_workdir
from tuning import report
from tuning.config import SearchConfig
from tuning.methods import SEARCHED
from tuning.selection import Choice, choose
from tuning.tuner import (
    LATENCY_INSTANCES,
    LATENCY_INVOCATIONS,
    LATENCY_ROUNDS,
    REFERENCE_FLOAT32,
    REPRESENTATIVE_EXAMPLES,
    MethodTuner,
    SearchContext,
    declare_space,
    int8_kb,
    read_records,
    validation_examples,
)

OBJECTIVE = keras_tuner.Objective("score", direction="max")
EXPORT_FORMATS = ("float32", "int8")
INITIAL_MODEL = "initial_model.keras"
HYPERBAND_FACTOR = 3
POLL_S = 2.0


def _role() -> str:
    """Returns "single", "chief" or "worker" (keras-tuner's environment)."""
    if not dist_utils.has_chief_oracle():
        return "single"
    return "chief" if dist_utils.is_chief_oracle() else "worker"


def _check(config: TrainConfig, search: SearchConfig) -> None:
    """Refuses a search that cannot run, before anything is written."""
    if not config.validation_fraction > 0:
        raise ConfigError(
            "Expected --validation_fraction > 0: trials are scored on the "
            "validation split, never on the test split. Received: "
            f"--validation_fraction={config.validation_fraction:g}"
        )
    for name in search.methods:
        try:
            SEARCHED[name].make_config({}, config.epochs)
        except ConfigError as error:
            raise ConfigError(f"--method={name}: {error}") from error
    if search.reference is not None:
        user_models.load_model_file(search.reference, argument="reference")
    if config.model_path is not None:
        user_models.load_model_file(config.model_path)


def make_oracle(config: TrainConfig, search: SearchConfig) -> keras_tuner.Oracle:
    """Returns the keras-tuner oracle of `search` (--tuner), seeded by --seed."""
    common = {
        "objective": OBJECTIVE,
        "hyperparameters": declare_space(search.methods),
        # keras-tuner draws a random seed for a falsy one, so --seed=0
        # (the default) would make every search's trials differ.
        "seed": config.seed + 1,
        # Failed trials are part of a search's answer, not a reason to stop.
        "max_consecutive_failed_trials": search.max_trials + 1,
    }
    if search.tuner == "random":
        return keras_tuner.oracles.RandomSearchOracle(
            max_trials=search.max_trials, **common
        )
    if search.tuner == "bayesian":
        return keras_tuner.oracles.BayesianOptimizationOracle(
            max_trials=search.max_trials, **common
        )
    oracle = keras_tuner.oracles.HyperbandOracle(
        max_epochs=config.epochs, factor=HYPERBAND_FACTOR, **common
    )
    oracle.max_trials = search.max_trials
    return oracle


def _wait_for(condition, what: str, search: SearchConfig) -> None:
    """Polls `condition` until it holds, at most --worker_wait_s."""
    deadline = time.monotonic() + search.worker_wait_s
    while not condition():
        if time.monotonic() > deadline:
            raise ConfigError(
                f"Waited --worker_wait_s={search.worker_wait_s:g} s for {what}; "
                "is the chief (and every worker) running with the same --workdir?"
            )
        time.sleep(POLL_S)


def _reference(
    config: TrainConfig,
    search: SearchConfig,
    path: pathlib.Path,
    evaluator: ModelEvaluator,
) -> tuple[pathlib.Path, dict[str, Any]]:
    """Returns the reference net's file and metrics, training it if needed.

    A worker waits for the chief's reference instead of training one.
    """
    saved = path / "reference.json"
    if _role() == "worker":
        _wait_for(saved.is_file, "the chief's reference net", search)
    if saved.is_file():
        entry = json.loads(saved.read_text())
        return pathlib.Path(entry["file"]), entry["metrics"]
    if search.reference is not None:
        file = pathlib.Path(search.reference)
    else:
        epochs = search.reference_epochs or config.epochs
        run_method(
            NoCompression(),
            dataclasses.replace(config, epochs=epochs),
            path / "reference",
        )
        file = path / "reference" / "model.keras"
    time_s, epochs = _training_record(file)
    reference = keras.saving.load_model(file, compile=False)
    user_models.check_fits_data(
        reference, evaluator.splits.input_shape, evaluator.splits.num_classes
    )
    size = deployable_size(deployable_model(reference))
    metrics = {
        "val_accuracy": evaluator.validation_accuracy(reference),
        "test_accuracy": evaluator.test_metrics(reference)["accuracy"],
        "params": size["params"],
        "flops_mac1": size["flops_mac1"],
        "train_time_s": time_s,
        "epochs": epochs,
    }
    if search.goal().cost_key == "int8_kb":
        examples = _examples(evaluator)
        metrics["int8_kb"] = int8_kb(
            reference, path / "reference.int8.tflite", examples
        )
    if search.goal().cost_key == "latency_us":
        metrics["latency_us"] = _reference_latency(reference, path, evaluator)
    partial = saved.with_name(f".reference.json.{os.getpid()}")
    partial.write_text(json.dumps({"file": str(file), "metrics": metrics}, indent=1))
    os.replace(partial, saved)
    return file, metrics


def _with_initial_model(
    config: TrainConfig, model: keras.Model, path: pathlib.Path, *, write: bool
) -> TrainConfig:
    """Saves a model given in code as the search's initial model; returns the config.

    Every trial starts from the file (`model_path`), so that every process
    of a distributed search trains the same net.
    """
    file = path / INITIAL_MODEL
    if write and not file.is_file():
        model.save(file)
    return dataclasses.replace(config, model=None, model_path=str(file))


def _training_record(file: pathlib.Path) -> tuple[float, int]:
    """Returns the wall time and epochs of the run that wrote `file`, if known.

    Both are read from the summary of the results.json beside the file
    (any trainer's); (0.0, 0) when there is none.
    """
    try:
        summary = json.loads((file.parent / "results.json").read_text())["summary"]
        return float(summary["wall_time_s"]), int(summary["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.0, 0


def _reference_latency(
    reference: keras.Model, path: pathlib.Path, evaluator: ModelEvaluator
) -> float:
    """Writes the reference's float32 LiteRT file; returns its latency (us)."""
    file = export_litert(
        deployable_model(reference), path / REFERENCE_FLOAT32, "float32"
    )
    timing = measure_latency(
        {"reference": file},
        representative_examples(evaluator.splits.train, 1, 0),
        invocations=LATENCY_INVOCATIONS,
        rounds=LATENCY_ROUNDS,
        instances=LATENCY_INSTANCES,
    )
    return timing["reference"]["median_us"]


def _examples(evaluator: ModelEvaluator) -> np.ndarray:
    return representative_examples(evaluator.splits.train, REPRESENTATIVE_EXAMPLES, 0)


def data_settings(config: TrainConfig) -> dict[str, Any]:
    """Returns `config`'s data settings (`DataConfig`'s fields)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(DataConfig)}


def _join_workers(path: pathlib.Path, search: SearchConfig) -> None:
    """Registers this worker; waits until --workers have (module docstring)."""
    folder = path / "workers"
    folder.mkdir(exist_ok=True)
    (folder / os.environ["KERASTUNER_TUNER_ID"]).touch()
    if search.workers > 1:
        _wait_for(
            lambda: len(list(folder.iterdir())) >= search.workers,
            f"--workers={search.workers} workers to start",
            search,
        )


def _final(
    config: TrainConfig,
    search: SearchConfig,
    path: pathlib.Path,
    tuner: MethodTuner,
    best: report.TrialRecord,
    reference_file: pathlib.Path,
    evaluator: ModelEvaluator,
) -> dict[str, Any]:
    """Retrains the best configuration, tests it once, saves and exports it."""
    epochs = search.final_epochs
    if epochs is None:
        epochs = search.reference_epochs or config.epochs
    trial = tuner.oracle.get_trial(best.trial_id)
    name, train_config, method_config, values = tuner.trial_settings(
        trial.hyperparameters, epochs
    )
    folder = path / "final"
    searched = SEARCHED[name]
    searched.run(
        train_config,
        method_config,
        folder / "run",
        str(reference_file),
        tuner.context.latency_table(),
    )
    chosen = None
    for item in searched.delivered(folder / "run"):
        metrics, _ = tuner.measure(item, folder)
        score, feasible = tuner.context.goal.score(metrics, tuner.context.reference)
        if chosen is None or score > chosen[0]:
            chosen = (score, feasible, metrics, item)
    score, feasible, metrics, item = chosen
    summary = json.loads((item.model_file.parent / "results.json").read_text())
    summary = summary["summary"]
    if searched.starts_from_reference:
        summary["epochs"] += tuner.context.reference["epochs"]
    (folder / "results.json").write_text(json.dumps({"summary": summary}, indent=1))
    model = keras.saving.load_model(item.model_file, compile=False)
    model.save(folder / "model.keras")
    plain = deployable_model(model)
    plain.save(folder / "model_plain.keras")
    test = evaluator.test_metrics(model)
    export = export_models(
        {
            "reference": keras.saving.load_model(reference_file, compile=False),
            "best": model,
        },
        folder / "export",
        ExportConfig(
            **data_settings(config),
            formats=EXPORT_FORMATS,
            seed=config.seed,
            verbose=config.verbose,
        ),
        baseline="reference",
    )
    return {
        "method": name,
        "values": values,
        "settings": item.settings,
        "epochs": epochs,
        "test_accuracy": test["accuracy"],
        "feasible": feasible,
        **metrics,
        "export": {
            model_name: {
                fmt: {
                    "size_kb": entry["size_bytes"] / 1024,
                    "test_accuracy": entry["test_accuracy"],
                    "latency_us": entry["latency"]["median_us"],
                }
                for fmt, entry in export["models"][model_name]["formats"].items()
            }
            for model_name in export["models"]
        },
    }


def _write_report(
    path: pathlib.Path,
    records: list[report.TrialRecord],
    reference: dict,
    goal: str,
    choice: Choice | None,
) -> None:
    report.write_csv(records, path / "trials.csv")
    report.plot_fronts(records, reference, path / "pareto.png")
    report.write_summary(
        records,
        reference,
        goal,
        None if choice is None else choice.chosen,
        "" if choice is None else choice.reason(),
        path / "summary.md",
    )


def run_search(
    config: TrainConfig,
    search: SearchConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
) -> dict[str, Any]:
    """Searches the methods' settings for `search`'s goal; resumes from `workdir`.

    Args:
        config: Every trial's training settings; `epochs` is a trial's
            budget, all phases of its method together.
        search: The methods, the tuner, the goal, the reference.
        workdir: The work directory (see the module docstring); shared by
            the chief and the workers of a distributed search.
        model: The model to compress, given in code; None uses `config`'s
            (`model` of the zoo or `model_path`).

    Returns:
        The dict written to `workdir/results.json` (a worker returns the
        records of the trials it saw instead; it writes no report).

    Raises:
        ConfigError: A bad setting; a trial's misconfiguration stops the
            search with the same error (`tuning.tuner.SearchConfigError`).
    """
    start = time.perf_counter()
    _check(config, search)
    evaluator = ModelEvaluator(config)
    role = _role()
    path = prepare_workdir(
        workdir, config, {"search": search.to_dict()}, write=role != "worker"
    )
    if model is not None:
        config = _with_initial_model(config, model, path, write=role != "worker")
    reference_file, reference = _reference(config, search, path, evaluator)
    goal = search.goal()
    if config.verbose:
        print(
            f"Reference: validation accuracy {100 * reference['val_accuracy']:.2f} %, "
            f"{reference['params']:,} params, {reference['flops_mac1']:,} FLOPs. "
            f"Goal: {_goal_text(search)}.",
            flush=True,
        )
    context = SearchContext(
        config=config,
        methods=search.methods,
        goal=goal,
        reference=reference,
        reference_file=reference_file,
        workdir=path,
    )
    tuner = MethodTuner(
        make_oracle(config, search),
        context,
        directory=str(path),
        project_name="tuner",
        overwrite=False,
    )
    if role == "worker":
        _join_workers(path, search)
    done_before = sum(record.status == "completed" for record in read_records(path))
    tuner.search(verbose=0)
    records = read_records(path)
    if role == "worker":
        return {"trials": [dataclasses.asdict(record) for record in records]}
    choice = choose(records, goal, validation_examples(evaluator))
    _write_report(path, records, reference, _goal_text(search), choice)
    done = [record for record in records if record.status == "completed"]
    best = None if choice is None else choice.chosen
    final = None
    if best is not None and search.final_epochs != 0:
        final = _final(config, search, path, tuner, best, reference_file, evaluator)
    trials_time = sum(record.wall_time_s for record in records)
    results = {
        "goal": _goal_text(search),
        "reference": reference,
        "trials": len(records),
        "completed": len(done),
        "feasible": sum(record.feasible for record in done),
        "best_trial": None if best is None else dataclasses.asdict(best),
        "chosen_because": None if choice is None else choice.reason(),
        "final": final,
        "trials_time_s": trials_time,
        "completed_before_start": done_before,
        "wall_time_s": time.perf_counter() - start,
        "search_over_reference": trials_time / reference["train_time_s"]
        if reference["train_time_s"]
        else None,
        "config": {"train": config.to_dict(), "search": search.to_dict()},
    }
    (path / "results.json").write_text(json.dumps(results, indent=1))
    if config.verbose:
        print(final_table(results))
    return results


def _goal_text(search: SearchConfig) -> str:
    goal = search.goal()
    if goal.budget is not None:
        return f"maximise validation accuracy within --budget={goal.budget}"
    return (
        f"minimise {goal.minimize} within --max_drop={goal.max_drop:g} points of "
        "validation accuracy"
    )


def final_table(results: dict[str, Any]) -> str:
    """Returns the closing table: reference and best, sizes, accuracy, latency."""
    reference, final = results["reference"], results["final"]
    lines = [
        f"Search: {results['trials']} trials ({results['completed']} completed, "
        f"{results['feasible']} feasible), {results['goal']}.",
    ]
    if final is None:
        best = results["best_trial"]
        lines.append(
            "No trial completed."
            if best is None
            else "Best trial not retrained (--final_epochs=0)."
        )
        return "\n".join(lines)
    lines += [
        f"Best: {final['method']} "
        + " ".join(f"{k}={v:.4g}" for k, v in sorted(final["values"].items()))
        + f", retrained {final['epochs']} epochs.",
        f"Chosen: {results['chosen_because']}.",
        "",
        "| model | test acc % | params | FLOPs | float32 KB | int8 KB | int8 acc % "
        "| int8 latency us |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    rows = (
        ("reference", reference["test_accuracy"], reference),
        ("best", final["test_accuracy"], final),
    )
    for name, accuracy, sizes in rows:
        files = final["export"][name]
        lines.append(
            f"| {name} | {100 * accuracy:.2f} | {sizes['params']:,} | "
            f"{sizes['flops_mac1']:,} | {files['float32']['size_kb']:,.1f} | "
            f"{files['int8']['size_kb']:,.1f} | "
            f"{100 * files['int8']['test_accuracy']:.2f} | "
            f"{files['int8']['latency_us']:,.0f} |"
        )
    return "\n".join(lines)
