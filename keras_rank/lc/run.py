"""`train_lc`: LC rank selection from configs into a work directory.

Work directory layout (every phase is a `train_and_evaluate` run of its own,
so each resumes from its checkpoints and a finished phase is not run again)::

    reference/            the reference net (absent with `reference=`)
    lambda_<value>/
        lc/               the L steps (the full-rank net under the penalty)
        finetune/         the low-rank net with the ranks fixed
        baseline1/        baseline 1 ranks at LC's cost, fine-tuned
        baseline2/        baseline 2 ranks at LC's cost, fine-tuned
        model_lowrank.keras, model_plain.keras, ranks.png, results.json
    error_vs_rho.png      test error vs rho_FLOPs, LC and both baselines
    results.json          the reference and one summary per lambda
"""

import dataclasses
import json
import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import keras

from keras_rank import plots
from keras_rank.core import costs, user_models
from keras_rank.core.errors import ConfigError
from keras_rank.core.linalg import stays_dense
from keras_rank.core.workdirs import check_writable_folder
from keras_rank.layers import low_rank_to_plain_model
from keras_rank.layers.deployable import deployable_size
from keras_rank.layers.latency import LatencyTable
from keras_rank.layers.rank_specs import (
    LayerSpec,
    RankChoice,
    layer_specs,
    low_rank_model,
    rank_summary,
)
from keras_rank.lc import baselines
from keras_rank.lc.calibration import matrix_and_spectrum
from keras_rank.lc.callback import LC, step_ranks
from keras_rank.lc.config import LCConfig
from keras_rank.training import (
    Method,
    MethodBase,
    NoCompression,
    Run,
    TrainConfig,
    run_method,
)
from keras_rank.training.evaluation import ModelEvaluator
from keras_rank.training.run import check_workdir
from keras_rank.training.summary import summary_block


def _lambda_dir(workdir: pathlib.Path, lam: float) -> pathlib.Path:
    return workdir / f"lambda_{lam:g}"


def _run_phase(
    path: pathlib.Path,
    config: TrainConfig,
    method: Method,
    model: keras.Model | None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Runs (or resumes) one phase; a finished one is read, not run again.

    A finished phase is only reused when it was run with the same settings:
    otherwise `check_workdir` names the difference.
    """
    check_workdir(path, config, method.settings(), writable=False)
    results = path / "results.json"
    if results.is_file():
        return json.loads(results.read_text())
    return run_method(method, config, path, model=model, callbacks=callbacks)


class LCMethod(MethodBase):
    """The L steps of LC at one lambda, as a `keras_rank.training.Method`.

    The full-rank net trains under LC's penalty; a C step follows every L
    step (`LC`). Its report builds the low-rank net of the ranks found and
    saves it for fine-tuning: the trained full-rank net is its own
    deployable form, what LC ships is that low-rank net.

    Args:
        config: The LC hyperparameters.
        lam: This run's lambda.
        specs: The compressible layers of the reference net.
        reference: Where the reference net came from (saved in settings).
        folder: The lambda's folder (``lambda_<value>``).
        verbose: Print each C step.
        latency: The measured latencies, for the latency criterion.
    """

    name = "lc"

    def __init__(
        self,
        config: LCConfig,
        lam: float,
        specs: list[LayerSpec],
        reference: str,
        folder: pathlib.Path,
        verbose: int = 1,
        latency: LatencyTable | None = None,
    ):
        self.config = config
        self.lam = lam
        self.specs = specs
        self.reference = reference
        self.folder = folder
        self.callback = LC(config, lam, verbose=verbose, latency=latency)

    def settings(self) -> dict[str, Any]:
        """Returns the settings the L and C steps depend on, under ``lc``."""
        return {
            "lc": {
                **self.config.lc_phase_settings(),
                "lambda": self.lam,
                "reference": self.reference,
            }
        }

    def loss_terms(self) -> list:
        """Returns LC's penalty terms."""
        return self.callback.loss_terms

    def callbacks(self) -> list:
        """Returns the `LC` callback (C steps between L steps)."""
        return [self.callback]

    def report(self, run: Run) -> dict[str, Any]:
        """Returns the ``lc`` entry; saves the low-rank net and the ranks plot."""
        choices = self.callback.choices()
        compact = low_rank_model(run.trainer.model, self.specs, choices)
        if run.is_chief:
            compact.save(self.folder / "lc" / "model_lowrank.keras")
            plots.plot_lc_ranks(
                step_ranks(self.callback.steps), self.folder / "ranks.png"
            )
        return {
            "lc": {
                "lambda": self.lam,
                "steps": self.callback.steps,
                "ranks": rank_summary(choices),
            }
        }


def _reference(
    config: TrainConfig,
    workdir: pathlib.Path,
    model: keras.Model | None,
    reference: str | None,
    evaluator: ModelEvaluator,
    callbacks: Sequence[Any] = (),
) -> tuple[keras.Model, dict[str, Any]]:
    """Returns the reference net and its summary, training it if needed."""
    if reference is not None:
        loaded = user_models.load_model_file(reference, argument="reference")
        try:
            user_models.check_fits_data(
                loaded, evaluator.splits.input_shape, evaluator.splits.num_classes
            )
        except ConfigError as error:
            raise ConfigError(
                f"reference='{reference}' does not fit the data: {error}"
            ) from error
        return loaded, {
            "source": f"file:{reference}",
            "test_error": evaluator.test_error(loaded),
            "train_time_s": 0.0,
            "epochs": 0,
        }
    path = workdir / "reference"
    results = _run_phase(path, config, NoCompression(), model, callbacks)
    loaded = keras.saving.load_model(path / "model.keras", compile=False)
    return loaded, {
        "source": results["model_source"],
        "test_error": 100.0 * (1.0 - results["test_accuracy"]),
        "train_time_s": results["train_time_s"],
        "epochs": results["epochs_completed"],
    }


def _sizes(cost: costs.ModelCost) -> dict[str, int]:
    return {
        "params": cost.params,
        "flops_mac1": cost.flops_mac1,
        "flops_mac2": cost.flops_mac2,
    }


def _size(model: keras.Model, reference_cost: costs.ModelCost) -> dict[str, Any]:
    cost = costs.model_cost(model)
    return {
        "params": cost.params,
        "flops": cost.flops_mac1,
        "rho_flops": reference_cost.flops_mac1 / cost.flops_mac1,
        "rho_storage": reference_cost.params / cost.params,
    }


def _finetune(
    config: TrainConfig,
    lc_config: LCConfig,
    path: pathlib.Path,
    model: keras.Model,
    evaluator: ModelEvaluator,
    reference_cost: costs.ModelCost,
    callbacks: Sequence[Any] = (),
) -> tuple[keras.Model, dict[str, Any], dict[str, Any]]:
    """Fine-tunes a low-rank net.

    Returns:
        The net, its entry of results.json, and the phase's test and
        validation accuracy and times (for the summary).
    """
    accuracy = evaluator.test_metrics(model)["accuracy"]
    before = 100.0 * (1.0 - accuracy)
    if lc_config.finetune_epochs == 0:
        phase = {"test_accuracy": accuracy, "best_val_accuracy": None}
        return (
            model,
            {
                **_size(model, reference_cost),
                "test_error_before_finetune": before,
                "test_error": before,
                "train_loss": None,
                "finetune_time_s": 0.0,
            },
            {**phase, "train_time_s": 0.0, "wall_time_s": 0.0, "epochs_completed": 0},
        )
    settings = {
        "epochs": lc_config.finetune_epochs,
        "learning_rate": lc_config.finetune_rate(config.learning_rate),
    }
    results = _run_phase(
        path, dataclasses.replace(config, **settings), NoCompression(), model, callbacks
    )
    tuned = keras.saving.load_model(path / "model.keras", compile=False)
    entry = {
        **_size(tuned, reference_cost),
        "test_error_before_finetune": before,
        "test_error": 100.0 * (1.0 - results["test_accuracy"]),
        "train_loss": results["history"][-1]["loss"],
        "finetune_time_s": results["train_time_s"],
    }
    keys = (
        "test_accuracy",
        "best_val_accuracy",
        "train_time_s",
        "wall_time_s",
        "epochs_completed",
    )
    return tuned, entry, {key: results[key] for key in keys}


def baseline_choices(
    reference: keras.Model,
    specs: list[LayerSpec],
    budget: float,
    which: int,
    rank_multiple: int = 1,
) -> dict[str, RankChoice]:
    """The ranks of baseline 1 or 2 at a cost budget, from `reference`'s weights.

    Args:
        reference: The trained net.
        specs: Its compressible layers under LC's criterion (`layer_specs`);
            their costs are the ones `budget` bounds.
        budget: The largest total cost of those layers.
        which: 1 (the largest singular values over all layers) or 2 (one
            energy threshold for every layer); `keras_rank.lc.baselines`.
        rank_multiple: Ranks are multiples of it, or a layer's full rank
            (8 suits the tiles of LiteRT's CPU kernels); default 1.

    Returns:
        ``{layer name: RankChoice}`` holding the reference's matrices, for
        `low_rank_model`.
    """
    if which not in (1, 2):
        raise ConfigError(f"Expected which=1 or 2. Received: which={which!r}")
    matrices, values = zip(
        *(matrix_and_spectrum(reference, spec) for spec in specs), strict=True
    )
    cost_args = (
        [spec.alpha for spec in specs],
        [spec.dense_cost for spec in specs],
        budget,
        [spec.offset for spec in specs],
        rank_multiple,
    )
    if which == 1:
        ranks = baselines.greedy_ranks_under_budget(values, *cost_args)
    else:
        ranks = baselines.energy_threshold_for_budget(values, *cost_args).ranks
    return {
        spec.name: RankChoice(
            rank=rank,
            dense=stays_dense(rank, spec.alpha, spec.dense_cost, spec.offset),
            matrix=matrix,
        )
        for spec, rank, matrix in zip(specs, ranks, matrices, strict=True)
    }


def _run_lambda(
    lam: float,
    config: TrainConfig,
    lc_config: LCConfig,
    workdir: pathlib.Path,
    reference: keras.Model,
    reference_summary: dict[str, Any],
    evaluator: ModelEvaluator,
    latency: LatencyTable | None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """LC, fine-tuning and the baselines for one lambda; writes results.json."""
    path = _lambda_dir(workdir, lam)
    reference_cost = costs.model_cost(reference)
    specs = layer_specs(reference, lc_config.criterion, lc_config.conv_scheme, latency)
    method = LCMethod(
        lc_config,
        lam,
        specs,
        reference_summary["source"],
        path,
        config.verbose,
        latency,
    )
    lc_results = _run_phase(
        path / "lc",
        dataclasses.replace(config, epochs=lc_config.lc_epochs),
        method,
        reference,
        callbacks,
    )
    compact = keras.saving.load_model(path / "lc" / "model_lowrank.keras")
    tuned, summary, finetuned = _finetune(
        config,
        lc_config,
        path / "finetune",
        compact,
        evaluator,
        reference_cost,
        callbacks,
    )
    tuned.save(path / "model_lowrank.keras")
    plain = low_rank_to_plain_model(tuned)
    plain.save(path / "model_plain.keras")
    summary.update(
        {
            "lambda": lam,
            "reference_test_error": reference_summary["test_error"],
            "reference_time_s": reference_summary["train_time_s"],
            "ranks": lc_results["lc"]["ranks"],
            "lc_steps": len(lc_results["lc"]["steps"]) - 1,
            "lc_time_s": lc_results["train_time_s"],
            "lc_full_rank_test_error": 100.0 * (1.0 - lc_results["test_accuracy"]),
            "rank_history": step_ranks(lc_results["lc"]["steps"]),
        }
    )
    if lc_config.baselines:
        budget = lc_results["lc"]["steps"][-1]["cost"]
        summary["baselines"] = _run_baselines(
            config, lc_config, path, reference, specs, budget, evaluator, callbacks
        )
    block = summary_block(
        method="lc",
        test_accuracy=finetuned["test_accuracy"],
        best_val_accuracy=finetuned["best_val_accuracy"],
        epochs=reference_summary["epochs"]
        + lc_results["epochs_completed"]
        + finetuned["epochs_completed"],
        deployable=deployable_size(plain),
        method_size=_sizes(costs.model_cost(tuned)),
        train_time_s=lc_results["train_time_s"] + finetuned["train_time_s"],
        wall_time_s=lc_results["wall_time_s"] + finetuned["wall_time_s"],
        settings={
            "train": config.to_dict(),
            "method": {"lc": {**dataclasses.asdict(lc_config), "lambda": lam}},
        },
    )
    (path / "results.json").write_text(
        json.dumps({"summary": block, **summary}, indent=1)
    )
    return {"summary": block, **summary}


def _run_baselines(
    config: TrainConfig,
    lc_config: LCConfig,
    path: pathlib.Path,
    reference: keras.Model,
    specs: list[LayerSpec],
    budget: float,
    evaluator: ModelEvaluator,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Both heuristic baselines at LC's cost, each fine-tuned like LC's net."""
    reference_cost = costs.model_cost(reference)
    entries = {}
    for which in (1, 2):
        choices = baseline_choices(
            reference, specs, budget, which, lc_config.rank_multiple
        )
        compact = low_rank_model(reference, specs, choices)
        _, summary, _ = _finetune(
            config,
            lc_config,
            path / f"baseline{which}",
            compact,
            evaluator,
            reference_cost,
            callbacks,
        )
        entries[f"baseline{which}"] = {**summary, "ranks": rank_summary(choices)}
    return entries


def train_lc(
    config: TrainConfig,
    lc_config: LCConfig,
    workdir: str | os.PathLike,
    *,
    model: keras.Model | None = None,
    reference: str | None = None,
    latency: LatencyTable | None = None,
    callbacks: Sequence[Any] = (),
) -> dict[str, Any]:
    """Learns each layer's rank with LC, for every lambda; resumes from `workdir`.

    Args:
        config: Training settings shared by every phase (`epochs` is the
            reference's; the LC phase trains `lc_config.lc_epochs` epochs and
            fine-tuning `lc_config.finetune_epochs`, at
            `lc_config.finetune_rate`).
        lc_config: The LC hyperparameters and the lambdas.
        workdir: Work directory (see the module docstring).
        model: The model to train as the reference; None uses `config`'s.
        reference: A trained `.keras` reference; skips reference training.
        latency: Where the latency criterion's timings are cached; default
            a table in `workdir`.
        callbacks: The user's callbacks (`keras.callbacks` objects or engine
            callbacks), run in every phase: the reference's training, the L
            steps and each fine-tuning.

    Returns:
        The results written to `workdir/results.json`.
    """
    start = time.perf_counter()
    # Nothing is written before the data and a given reference are loaded.
    path = check_writable_folder(workdir)
    evaluator = ModelEvaluator(config)
    reference_model, reference_summary = _reference(
        config, path, model, reference, evaluator, callbacks
    )
    path.mkdir(parents=True, exist_ok=True)
    reference_summary.update(_size(reference_model, costs.model_cost(reference_model)))
    if lc_config.criterion != "latency":
        latency = None
    elif latency is None:
        latency = LatencyTable(path)
    runs = [
        _run_lambda(
            lam,
            config,
            lc_config,
            path,
            reference_model,
            reference_summary,
            evaluator,
            latency,
            callbacks,
        )
        for lam in lc_config.lambdas
    ]
    plots.plot_error_vs_rho(reference_summary, runs, path / "error_vs_rho.png")
    results = {
        "summary": [run.pop("summary") for run in runs],
        "reference": reference_summary,
        "runs": runs,
        "criterion": lc_config.criterion,
        "conv_scheme": lc_config.conv_scheme,
        "wall_time_s": time.perf_counter() - start,
    }
    (path / "results.json").write_text(json.dumps(results, indent=1))
    if config.verbose:
        print(summary_table(results))
    return results


def summary_table(results: dict[str, Any]) -> str:
    """Returns one line per net: ranks, sizes, ratios and test errors."""
    header = (
        f"{'net':<14}{'params':>10}{'FLOPs':>11}{'rho_F':>7}{'rho_S':>7}"
        f"{'err before':>11}{'err':>7}  ranks"
    )
    reference = results["reference"]
    lines = [
        header,
        f"{'reference':<14}{reference['params']:>10,}{reference['flops']:>11,}"
        f"{1.0:>7.2f}{1.0:>7.2f}{'':>11}{reference['test_error']:>7.2f}",
    ]
    for run in results["runs"]:
        rows = [(f"LC {run['lambda']:g}", run)]
        rows += [
            (f"  {name}", entry) for name, entry in run.get("baselines", {}).items()
        ]
        for label, entry in rows:
            ranks = " ".join(str(rank) for rank in entry["ranks"].values())
            lines.append(
                f"{label:<14}{entry['params']:>10,}{entry['flops']:>11,}"
                f"{entry['rho_flops']:>7.2f}{entry['rho_storage']:>7.2f}"
                f"{entry['test_error_before_finetune']:>11.2f}"
                f"{entry['test_error']:>7.2f}  {ranks}"
            )
    return "\n".join(lines)
