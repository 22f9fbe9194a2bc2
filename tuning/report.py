"""The Pareto report of a search: every trial of every method, the front marked.

keras-tuner keeps one number per trial; the search keeps each trial's whole
record (`TrialRecord`), and this module writes from them, into the search's
work directory:

* ``trials.csv``: one row per trial, every metric, whether it is feasible
  and on the front (of validation accuracy against deployable params, and
  against FLOPs);
* ``pareto.png``: validation accuracy against deployable params and
  against FLOPs, one colour per method, the fronts drawn, infeasible trials
  hollow, failed ones left out, the reference marked;
* ``summary.md``: the reference, the best feasible trial and the fronts.
"""

import csv
import dataclasses
import pathlib
from collections.abc import Sequence
from typing import Any

from keras_rank.plots import plt, save_figure
from tuning.pareto import pareto_front

COSTS = (("params", "deployable params"), ("flops_mac1", "FLOPs (1 per MAC)"))
"""The two fronts: cost key and axis label."""


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial's full outcome.

    Attributes:
        trial_id: keras-tuner's trial id.
        method: The method's name.
        values: The hyperparameters of the trial.
        status: "completed" or "failed" (diverged, collapsed, unusable).
        val_accuracy: Validation accuracy (fraction); None when failed.
        params: Deployable parameters; None when failed.
        flops_mac1: Deployable FLOPs (1 per multiply-add); None when failed.
        feasible: Whether the trial meets the goal.
        score: keras-tuner's number (`tuning.objective.Goal.score`).
        wall_time_s: The trial's wall time; for a trial killed and run
            again, that of its last run plus the training time its
            checkpoints had saved before.
        note: Why it failed, or "".
        epochs: The trial's epochs, all phases together.
        int8_kb: Size of its int8 LiteRT file (KB), where the budget asks.
        latency_us: Latency of its float32 LiteRT file (us), where the budget
            asks.
        model_file: The model it delivers, relative to the search's folder.
        worker: The keras-tuner tuner id of the process that ran it.
    """

    trial_id: str
    method: str
    values: dict[str, Any]
    status: str
    val_accuracy: float | None
    params: int | None
    flops_mac1: int | None
    feasible: bool
    score: float | None
    wall_time_s: float
    note: str = ""
    epochs: int = 0
    int8_kb: float | None = None
    latency_us: float | None = None
    model_file: str = ""
    worker: str = ""


def fronts(trials: Sequence[TrialRecord]) -> dict[str, list[str]]:
    """Returns, per cost key, the trial ids on the front (cheapest first).

    Only completed trials count; every method's trials together.
    """
    done = [trial for trial in trials if trial.status == "completed"]
    accuracies = [trial.val_accuracy for trial in done]
    return {
        key: [
            done[i].trial_id
            for i in pareto_front(accuracies, [getattr(t, key) for t in done])
        ]
        for key, _ in COSTS
    }


def _values_text(values: dict[str, Any], separator: str) -> str:
    return separator.join(f"{name}={value}" for name, value in sorted(values.items()))


def write_csv(trials: Sequence[TrialRecord], path: pathlib.Path) -> pathlib.Path:
    """Writes ``trials.csv``: a row per trial, hyperparameters as name=value."""
    on_front = fronts(trials)
    fields = [field.name for field in dataclasses.fields(TrialRecord)]
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*fields, "front_params", "front_flops"])
        for trial in trials:
            row = dataclasses.asdict(trial)
            row["values"] = _values_text(trial.values, " ")
            writer.writerow(
                [
                    *(row[name] for name in fields),
                    trial.trial_id in on_front["params"],
                    trial.trial_id in on_front["flops_mac1"],
                ]
            )
    return path


def plot_fronts(
    trials: Sequence[TrialRecord], reference: dict[str, Any], path: pathlib.Path
) -> pathlib.Path:
    """Writes ``pareto.png``: accuracy against params and FLOPs, fronts drawn."""
    done = [trial for trial in trials if trial.status == "completed"]
    on_front = fronts(trials)
    by_id = {trial.trial_id: trial for trial in done}
    methods = sorted({trial.method for trial in done})
    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(methods)}
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for axis, (key, label) in zip(axes, COSTS, strict=True):
        for method in methods:
            for feasible in (True, False):
                points = [
                    t for t in done if t.method == method and t.feasible == feasible
                ]
                if not points:
                    continue
                axis.scatter(
                    [getattr(t, key) for t in points],
                    [100 * t.val_accuracy for t in points],
                    facecolors=colours[method] if feasible else "none",
                    edgecolors=colours[method],
                    label=method if feasible else f"{method} (infeasible)",
                )
        front = [by_id[i] for i in on_front[key]]
        axis.step(
            [getattr(t, key) for t in front],
            [100 * t.val_accuracy for t in front],
            where="post",
            color="black",
            linewidth=1,
            label="Pareto front",
        )
        axis.scatter(
            [reference[key]],
            [100 * reference["val_accuracy"]],
            marker="*",
            s=150,
            color="black",
            label="reference",
        )
        axis.set_xscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("validation accuracy %")
        axis.legend(fontsize="small")
    return save_figure(figure, path)


def write_summary(
    trials: Sequence[TrialRecord],
    reference: dict[str, Any],
    goal: str,
    chosen: TrialRecord | None,
    reason: str,
    path: pathlib.Path,
) -> pathlib.Path:
    """Writes ``summary.md``: the goal, the reference, the chosen trial, the fronts.

    Args:
        trials: Every trial of the search.
        reference: The reference net's metrics.
        goal: The goal, as text.
        chosen: The trial retrained (`tuning.selection.choose`), or None.
        reason: Why it was chosen.
        path: The file written.
    """
    completed = [trial for trial in trials if trial.status == "completed"]
    feasible = [trial for trial in completed if trial.feasible]
    best = chosen if chosen is not None and chosen.feasible else None
    lines = [
        "# Search summary",
        "",
        f"Goal: {goal}. Trials: {len(trials)} ({len(completed)} completed, "
        f"{len(feasible)} feasible, {len(trials) - len(completed)} failed).",
        "",
        f"Reference: validation accuracy {100 * reference['val_accuracy']:.2f} %, "
        f"{reference['params']:,} params, {reference['flops_mac1']:,} FLOPs.",
        "",
    ]
    if best is None:
        lines.append("No trial met the goal.")
    else:
        lines.append(
            f"Best: trial {best.trial_id} ({best.method}, "
            f"{_values_text(best.values, ', ')}): "
            f"{100 * best.val_accuracy:.2f} %, {best.params:,} params, "
            f"{best.flops_mac1:,} FLOPs (chosen: {reason})."
        )
    by_id = {trial.trial_id: trial for trial in completed}
    for key, label in COSTS:
        lines += [
            "",
            f"## Front: validation accuracy against {label}",
            "",
            "| trial | method | val acc % | params | FLOPs | feasible |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {t.trial_id} | {t.method} | {100 * t.val_accuracy:.2f} | "
            f"{t.params:,} | {t.flops_mac1:,} | {'yes' if t.feasible else 'no'} |"
            for t in (by_id[i] for i in fronts(trials)[key])
        ]
    path.write_text("\n".join(lines) + "\n")
    return path
