"""`MethodTuner`: a keras-tuner Tuner whose trials run keras_rank's methods.

A trial is one run of one method (`tuning.methods`) through the library's
run function, so through `keras_rank.training.run_method` and the one
engine, never `Model.fit`. Its hyperparameters come from the settings'
declarations (`tuning.spaces`); relative ones are multiplied by scales
measured on the reference net (`tuning.calibration`). The trial then
reads what the run delivers, measures each delivered model on the
validation split only (accuracy, deployable params and FLOPs, and the int8
LiteRT file size when the budget is one), keeps the one the goal scores
best, and returns its metrics; keras-tuner ranks trials by ``score``.

Each trial runs in ``<workdir>/trials/<trial id>/``: a trial killed and run
again by keras-tuner (it retries the trials that were running when a
search was stopped) resumes from its checkpoints, and its wall time counts
the training time those checkpoints saved. Its record (`record.json`,
a `tuning.report.TrialRecord`) is written there too, failed or not, so
every process of a distributed search sees every trial.

Failures:

* The loss became NaN or infinite, a layer of the delivered model has rank
  0 (no weight left), a validation accuracy is not finite, or the run
  delivered nothing: the trial is failed (`keras_tuner.errors.FailedTrialError`),
  recorded, and the search goes on.
* A `ConfigError`: the search stops at once (`SearchConfigError`, which
  keras-tuner does not catch), one line naming the setting.
"""

import dataclasses
import json
import math
import pathlib
import time
from typing import Any

import keras
import keras_tuner
import numpy as np

from keras_rank.core.compressible import compressible_layers
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import kernel_as_matrix
from keras_rank.core.tflite_file import measure_latency
from keras_rank.export.litert import export_litert
from keras_rank.export.representative import representative_examples
from keras_rank.layers.deployable import deployable_model, deployable_size
from keras_rank.layers.latency import LatencyTable
from keras_rank.training.checkpoint import checkpointed_time_s
from keras_rank.training.config import TrainConfig
from keras_rank.training.engine import TrainingDivergedError
from keras_rank.training.evaluation import ModelEvaluator
from tuning import calibration, spaces
from tuning.methods import SEARCHED, Delivered
from tuning.objective import Goal
from tuning.report import TrialRecord
from tuning.selection import Choice, choose

TRIALS_DIR = "trials"
RECORD_FILE = "record.json"
METHOD_HP = "method"
EPOCHS_HP = "tuner/epochs"
REPRESENTATIVE_EXAMPLES = 500
RANK_TOLERANCE = 1e-6

REFERENCE_FLOAT32 = "reference.float32.tflite"
"""The reference's float32 LiteRT file in the search's folder (latency budget)."""
LATENCY_INVOCATIONS = 100
LATENCY_ROUNDS = 3
LATENCY_INSTANCES = 3
"""Interpreters per file (`keras_rank.core.tflite_file.measure_latency`)."""


class SearchConfigError(keras_tuner.errors.FatalError, ConfigError):
    """A misconfiguration met inside a trial: stops the search at once."""


def declare_space(methods: tuple[str, ...]) -> keras_tuner.HyperParameters:
    """Returns the search space of `methods`.

    With several methods, ``method`` is a choice and each method's settings
    are conditional on it (``<method>/<setting>``).
    """
    hp = keras_tuner.HyperParameters()
    if len(methods) == 1:
        spaces.declare(hp, SEARCHED[methods[0]].config_class, methods[0])
        return hp
    hp.Choice(METHOD_HP, list(methods))
    for name in methods:
        with hp.conditional_scope(METHOD_HP, [name]):
            spaces.declare(hp, SEARCHED[name].config_class, name)
    return hp


@dataclasses.dataclass(frozen=True)
class SearchContext:
    """What every trial of a search shares.

    Attributes:
        config: The training settings of a trial (its epochs: the budget).
        methods: The methods searched.
        goal: What the trials are scored by.
        reference: The reference net's ``val_accuracy``, ``params``,
            ``flops_mac1`` (and ``int8_kb`` when the budget is a file size).
        reference_file: Its .keras file.
        workdir: The search's work directory.
    """

    config: TrainConfig
    methods: tuple[str, ...]
    goal: Goal
    reference: dict[str, Any]
    reference_file: pathlib.Path
    workdir: pathlib.Path

    @property
    def wants_int8(self) -> bool:
        """Whether trials measure their int8 LiteRT file."""
        return self.goal.cost_key == "int8_kb"

    @property
    def wants_latency(self) -> bool:
        """Whether trials time their float32 LiteRT file (a latency budget)."""
        return self.goal.cost_key == "latency_us"

    @property
    def goal_settings(self) -> dict[str, Any]:
        """Method settings the goal fixes: the latency criterion, for latency."""
        return {"criterion": "latency"} if self.wants_latency else {}

    def latency_table(self) -> LatencyTable | None:
        """The layer timings every trial shares, under a latency budget."""
        return LatencyTable(self.workdir) if self.wants_latency else None


def int8_kb(model: keras.Model, path: pathlib.Path, examples: np.ndarray) -> float:
    """Writes `model`'s int8 LiteRT file at `path`; returns its size in KB."""
    export_litert(deployable_model(model), path, "int8", representative=examples)
    return path.stat().st_size / 1024


def latency_us(
    model: keras.Model,
    path: pathlib.Path,
    reference: tuple[pathlib.Path, float],
    example: np.ndarray,
) -> float:
    """Writes `model`'s float32 LiteRT file at `path`; returns its latency (us).

    The file is timed interleaved with the reference's (one thread, batch
    1), and its latency is the reference's times their ratio, so that a
    change of machine load between trials does not move it.

    Args:
        model: The trial's model.
        path: Its float32 file, written.
        reference: The reference's float32 file and its latency (us).
        example: One input example, shape ``(1, ...)``.
    """
    export_litert(deployable_model(model), path, "float32")
    timings = measure_latency(
        {"reference": reference[0], "trial": path},
        example,
        invocations=LATENCY_INVOCATIONS,
        rounds=LATENCY_ROUNDS,
        instances=LATENCY_INSTANCES,
    )
    ratio = timings["trial"]["median_us"] / timings["reference"]["median_us"]
    return ratio * reference[1]


def layer_ranks(
    model: keras.Model, tolerance: float = RANK_TOLERANCE
) -> dict[str, int]:
    """Returns the rank of every Dense/Conv2D matrix of `model`'s deployable form.

    A low-rank pair of the deployable form (``_u``, ``_v``) shows its inner
    rank in both; a matrix of zeros has rank 0. Singular values below
    `tolerance` times the largest do not count.
    """
    ranks = {}
    for layer in compressible_layers(deployable_model(model), required=False):
        matrix = keras.ops.convert_to_numpy(kernel_as_matrix(layer.kernel))
        if 0 in matrix.shape or not np.any(matrix):
            ranks[layer.name] = 0
            continue
        values = np.linalg.svd(matrix, compute_uv=False)
        ranks[layer.name] = int(np.sum(values > tolerance * values[0]))
    return ranks


def validation_examples(evaluator: ModelEvaluator) -> int | None:
    """Returns the number of validation images; None if unknown or no split."""
    split = evaluator.splits.validation
    return None if split is None else split.num_examples


def read_records(workdir: pathlib.Path) -> list[TrialRecord]:
    """Returns the record of every trial of the search in `workdir`, by id."""
    records = [
        TrialRecord(**json.loads(path.read_text()))
        for path in (workdir / TRIALS_DIR).glob(f"*/{RECORD_FILE}")
    ]
    return sorted(records, key=lambda record: record.trial_id)


def trial_line(record: TrialRecord, reference: dict[str, Any]) -> str:
    """Returns the one line printed when a trial ends."""
    values = " ".join(f"{k}={v:.3g}" for k, v in sorted(record.values.items()))
    if record.status != "completed":
        return (
            f"trial {record.trial_id} {record.method} {values} FAILED "
            f"({record.note}) {record.wall_time_s:.0f} s"
        )
    flops = record.flops_mac1 / reference["flops_mac1"]
    size = "" if record.int8_kb is None else f" int8 {record.int8_kb:,.1f} KB"
    return (
        f"trial {record.trial_id} {record.method} {values} "
        f"val {100 * record.val_accuracy:.2f} % params {record.params:,} "
        f"FLOPs {record.flops_mac1:,} ({100 * flops:.1f} %){size} "
        f"{'feasible' if record.feasible else 'infeasible'} "
        f"{record.wall_time_s:.0f} s"
    )


def best_line(choice: Choice | None) -> str:
    """Returns the running best: the trial `tuning.selection.choose` takes."""
    if choice is None:
        return "  best so far: none"
    best = choice.chosen
    feasible = "" if best.feasible else " (none feasible yet)"
    return (
        f"  best so far: trial {best.trial_id} {best.method} val "
        f"{100 * best.val_accuracy:.2f} % params {best.params:,} FLOPs "
        f"{best.flops_mac1:,}{feasible}"
    )


class MethodTuner(keras_tuner.Tuner):
    """Runs each trial as one run of a keras_rank method (module docstring).

    Args:
        oracle: The keras-tuner oracle (random, Bayesian, Hyperband), its
            space from `declare_space`.
        context: What the trials share.
        **kwargs: `keras_tuner.Tuner`'s (directory, project_name, ...).
    """

    def __init__(self, oracle, context: SearchContext, **kwargs):
        super().__init__(oracle=oracle, **kwargs)
        self.context = context
        self._evaluator = None
        self._examples = None
        self._reference_model = None

    def _shared(self) -> tuple[ModelEvaluator, keras.Model]:
        """Opens the data and loads the reference once per process."""
        if self._evaluator is None:
            self._evaluator = ModelEvaluator(self.context.config)
            self._reference_model = keras.saving.load_model(
                self.context.reference_file, compile=False
            )
        return self._evaluator, self._reference_model

    def trial_settings(
        self, hp: keras_tuner.HyperParameters, epochs: int
    ) -> tuple[str, TrainConfig, Any, dict[str, float]]:
        """Returns a trial's method, training and method configs, and values.

        The values are the hyperparameters as searched (multiples for a
        relative search) beside the settings they give.
        """
        methods = self.context.methods
        name = hp.get(METHOD_HP) if len(methods) > 1 else methods[0]
        searched = SEARCHED[name]
        evaluator, reference = self._shared()
        goal_settings = self.context.goal_settings
        train_epochs, provisional = searched.make_config({}, epochs, goal_settings)
        config = dataclasses.replace(self.context.config, epochs=train_epochs)
        steps = max((evaluator.splits.train.num_examples or 0) // config.batch_size, 1)
        target = self.context.goal.target_fraction(self.context.reference)
        scales = {
            scale: calibration.measure(
                scale,
                reference,
                config,
                provisional,
                steps,
                target,
                self.context.latency_table(),
            )
            for scale in spaces.scales_needed(searched.config_class)
        }
        values = spaces.chosen(hp, searched.config_class, name, scales)
        _, method_config = searched.make_config(values, epochs, goal_settings)
        shown = {}
        for item in spaces.searched(searched.config_class):
            value = values[item.name]
            shown[item.flag] = value[0] if item.many else value
            if item.search.relative_to is not None:
                shown[f"{item.flag}_x"] = hp.get(f"{name}/{item.name}")
        return name, config, method_config, shown

    def measure(
        self, delivered: Delivered, folder: pathlib.Path
    ) -> tuple[dict[str, Any], str]:
        """Returns the metrics of one delivered model, on the validation split.

        Args:
            delivered: A model the trial's run delivered.
            folder: Where its int8 file goes, when the budget is one.

        Returns:
            ``({"val_accuracy", "params", "flops_mac1"[, "int8_kb"]}, its file
            relative to the search's work directory)``.

        Raises:
            keras_tuner.errors.FailedTrialError: A layer is at rank 0, or the
                validation accuracy is not finite.
            SearchConfigError: There is no validation split.
        """
        evaluator, _ = self._shared()
        model = keras.saving.load_model(delivered.model_file, compile=False)
        collapsed = [name for name, rank in layer_ranks(model).items() if rank == 0]
        if collapsed:
            raise keras_tuner.errors.FailedTrialError(
                f"layer {collapsed[0]} collapsed to rank 0"
            )
        accuracy = evaluator.validation_accuracy(model)
        if accuracy is None:
            raise SearchConfigError(
                "Expected a validation split to search on: --validation_fraction "
                "> 0 (the test split is never searched on)."
            )
        if not math.isfinite(accuracy):
            raise keras_tuner.errors.FailedTrialError("validation accuracy not finite")
        size = deployable_size(deployable_model(model))
        metrics = {
            "val_accuracy": float(accuracy),
            "params": int(size["params"]),
            "flops_mac1": int(size["flops_mac1"]),
        }
        if self.context.wants_int8:
            if self._examples is None:
                self._examples = representative_examples(
                    evaluator.splits.train, REPRESENTATIVE_EXAMPLES, 0
                )
            metrics["int8_kb"] = int8_kb(
                model,
                folder / f"{delivered.model_file.parent.name}.int8.tflite",
                self._examples,
            )
        if self.context.wants_latency:
            metrics["latency_us"] = latency_us(
                model,
                folder / f"{delivered.model_file.parent.name}.float32.tflite",
                (
                    self.context.workdir / REFERENCE_FLOAT32,
                    self.context.reference["latency_us"],
                ),
                representative_examples(evaluator.splits.train, 1, 0),
            )
        return metrics, str(delivered.model_file.relative_to(self.context.workdir))

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        """Runs one trial; returns its metrics (``score`` ranks it)."""
        del args, kwargs
        hp = trial.hyperparameters
        epochs = int(hp.values.get(EPOCHS_HP, self.context.config.epochs))
        folder = self.context.workdir / TRIALS_DIR / trial.trial_id
        # A trial run again after a kill counts what its runs had trained.
        start = time.perf_counter() - checkpointed_time_s(folder)
        name, values = self.context.methods[0], {}
        try:
            name, config, method_config, values = self.trial_settings(hp, epochs)
            searched = SEARCHED[name]
            searched.run(
                config,
                method_config,
                folder,
                str(self.context.reference_file),
                self.context.latency_table(),
            )
            delivered = searched.delivered(folder)
            if not delivered:
                raise keras_tuner.errors.FailedTrialError("the run delivered no model")
            best = None
            for item in delivered:
                metrics, model_file = self.measure(item, folder)
                score, feasible = self.context.goal.score(
                    metrics, self.context.reference
                )
                if best is None or score > best[0]:
                    best = (score, feasible, metrics, model_file, item.settings)
        except SearchConfigError:
            raise
        except ConfigError as error:
            raise SearchConfigError(str(error)) from error
        except (TrainingDivergedError, keras_tuner.errors.FailedTrialError) as error:
            record = TrialRecord(
                trial_id=trial.trial_id,
                method=name,
                values=values,
                status="failed",
                val_accuracy=None,
                params=None,
                flops_mac1=None,
                feasible=False,
                score=None,
                wall_time_s=time.perf_counter() - start,
                note=str(error).splitlines()[0] if str(error) else type(error).__name__,
                epochs=epochs,
                worker=self.tuner_id,
            )
            self._finish(folder, record)
            raise keras_tuner.errors.FailedTrialError(record.note) from error
        score, feasible, metrics, model_file, settings = best
        # What tells the delivered models apart (prox's energy, LC's lambda).
        fields = {field.name for field in dataclasses.fields(method_config)}
        values.update({k: v for k, v in settings.items() if k not in fields})
        record = TrialRecord(
            trial_id=trial.trial_id,
            method=name,
            values=values,
            status="completed",
            val_accuracy=metrics["val_accuracy"],
            params=metrics["params"],
            flops_mac1=metrics["flops_mac1"],
            feasible=feasible,
            score=score,
            wall_time_s=time.perf_counter() - start,
            epochs=epochs,
            int8_kb=metrics.get("int8_kb"),
            latency_us=metrics.get("latency_us"),
            model_file=model_file,
            worker=self.tuner_id,
        )
        self._finish(folder, record)
        return {
            "score": score,
            "feasible": float(feasible),
            **{key: float(value) for key, value in metrics.items()},
        }

    def _finish(self, folder: pathlib.Path, record: TrialRecord) -> None:
        """Writes the trial's record and prints its line and the running best."""
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RECORD_FILE).write_text(
            json.dumps(dataclasses.asdict(record), indent=1)
        )
        print(trial_line(record, self.context.reference), flush=True)
        evaluator, _ = self._shared()
        choice = choose(
            read_records(self.context.workdir),
            self.context.goal,
            validation_examples(evaluator),
        )
        print(best_line(choice), flush=True)

    def save_model(self, trial_id, model, step=0):
        """Nothing to save: every trial's models are in its own folder."""

    def load_model(self, trial):
        """Returns the model the trial delivered."""
        record = TrialRecord(
            **json.loads(
                (
                    self.context.workdir / TRIALS_DIR / trial.trial_id / RECORD_FILE
                ).read_text()
            )
        )
        return keras.saving.load_model(
            self.context.workdir / record.model_file, compile=False
        )
