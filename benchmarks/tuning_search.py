r"""The acceptance searches of `python -m tuning.search`, against the hand-tuned points.

    python benchmarks/tuning_search.py                # run what is missing, tabulate
    python benchmarks/tuning_search.py --parts mlp    # one search

Each part is one `python -m tuning.search` command (below, written out) in
<root>/<part>; a finished search (its results.json) is read, not repeated,
and a killed one resumes. Beside each, every searched method is also run
once at its own defaults with the trial's epoch budget (<root>/<part>_defaults/
<method>, through the same `tuning.methods` entry and the same validation
measurement), so that the best configuration found per method can be read
against its defaults at the same epochs (mlp_hyperband reads mlp's: its
trials train alike).

- mlp: the paper MLP, every method, `--budget=flops:0.25`, 24 random trials
  of 10 epochs, reference and retraining 30 epochs. Target: test accuracy at
  or above the dense reference's (89.33 % in README) at <= 25 % of its
  FLOPs; and the search's wall time at most 8x one reference training.
- mlp_hyperband: the same with `--tuner=hyperband` (trials of 10/9, 10/3
  and 10 epochs, the better ones carried on), the issue's way to the time
  target; the same targets.
- lenet300: LeNet300 (tanh), LC, `--budget=flops:0.1667` (rho >= 6), 8
  trials. Target: test error within 0.3 pt of the reference's.
- lenet5: LeNet5, prox, `--max_drop=0.3 --minimize=params`, 8 trials,
  with the hand-tuned run's training settings (SGD, Nesterov momentum 0.9,
  learning rate 0.05, 15 epochs). Target: the fewest exported params found
  (hand-tuned: 34.7 % at +0.02 pt).

Writes <root>/tuning_search.md and the block between the ``tuning-search``
markers of docs/results.md, one row per part between the ``tuning-summary``
markers of README.md, and copies each part's pareto.png to
docs/figures/tuning_<part>.png.
"""

import argparse
import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import keras

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keras_rank.layers.deployable import deployable_model, deployable_size  # noqa: E402
from keras_rank.training.config import TrainConfig  # noqa: E402
from keras_rank.training.evaluation import ModelEvaluator  # noqa: E402
from tuning.methods import SEARCHED  # noqa: E402

DEFAULT_ROOT = REPO / "runs" / "tuning"
RESULTS_DOC = REPO / "docs" / "results.md"
README = REPO / "README.md"
FIGURES = REPO / "docs" / "figures"
RESULTS_BLOCK = "tuning-search"
README_BLOCK = "tuning-summary"

PARTS = {
    "mlp": [
        "--model=mlp", "--method=all", "--budget=flops:0.25", "--max_trials=24",
        "--epochs=10", "--reference_epochs=30", "--final_epochs=30",
    ],
    "mlp_hyperband": [
        "--model=mlp", "--method=all", "--budget=flops:0.25", "--max_trials=24",
        "--epochs=10", "--reference_epochs=30", "--final_epochs=30",
        "--tuner=hyperband",
    ],
    "lenet300": [
        "--model=lenet300_tanh", "--method=lc", "--budget=flops:0.1667",
        "--max_trials=8", "--epochs=10", "--reference_epochs=20",
        "--final_epochs=40",
    ],
    "lenet5": [
        "--model=lenet5", "--method=prox", "--max_drop=0.3", "--minimize=params",
        "--max_trials=8", "--epochs=15", "--reference_epochs=15",
        "--final_epochs=15", "--optimizer=sgd", "--learning_rate=0.05",
        "--momentum=0.9", "--nesterov",
    ],
}  # fmt: skip

# Parts whose trials train as another part's do: they share its defaults runs
# (and the reference those start from).
SAME_TRIALS_AS = {"mlp_hyperband": "mlp"}

MLP_HAND_TUNED = [
    "LC lambda 1e-5 (hand-tuned, README): 89.42 % test, 326,232 params, "
    "23.2 % of the FLOPs, 55 epochs",
    "magnitude pruning at 70 % sparsity (README): 89.94 % test, 422k non-zero "
    "weights in a file that stays dense size",
]
HAND_TUNED = {
    "mlp": MLP_HAND_TUNED,
    "mlp_hyperband": MLP_HAND_TUNED,
    "lenet300": ["LC lambda 3e-5 (hand-tuned, README): rho_FLOPs 5.95 at +0.23 pt"],
    "lenet5": [
        "prox tau 3 (hand-tuned, README; the same optimizer and epochs): 34.7 % "
        "of the params at +0.02 pt"
    ],
}


def run_search(root: pathlib.Path, part: str) -> dict[str, Any]:
    """Runs (or resumes) a part's search; returns its results.json."""
    workdir = root / part
    if not (workdir / "results.json").is_file():
        command = [sys.executable, "-m", "tuning.search", *PARTS[part]]
        command.append(f"--workdir={workdir}")
        print(" ".join(command[1:]), flush=True)
        subprocess.run(command, cwd=REPO, check=True)
    return json.loads((workdir / "results.json").read_text())


def run_defaults(root: pathlib.Path, part: str, results: dict) -> dict[str, dict]:
    """Runs every searched method once at its defaults; returns val acc, params."""
    saved = results["config"]["train"]
    train = TrainConfig(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()}
    )
    epochs = train.epochs
    evaluator = ModelEvaluator(train)
    owner = SAME_TRIALS_AS.get(part, part)
    reference_file = root / owner / "reference" / "model.keras"
    out = {}
    for name in results_methods(results):
        searched = SEARCHED[name]
        folder = root / f"{owner}_defaults" / name
        train_epochs, config = searched.make_config({}, epochs)
        searched.run(
            dataclasses.replace(train, epochs=train_epochs, verbose=0),
            config,
            folder,
            str(reference_file),
            None,  # no latency budget among the parts
        )
        best = None
        for item in searched.delivered(folder):
            model = keras.saving.load_model(item.model_file, compile=False)
            entry = {
                "val_accuracy": evaluator.validation_accuracy(model),
                **deployable_size(deployable_model(model)),
            }
            if best is None or entry["val_accuracy"] > best["val_accuracy"]:
                best = entry
        out[name] = best
    return out


def results_methods(results: dict) -> tuple[str, ...]:
    method = results["config"]["search"]["method"]
    return tuple(SEARCHED) if method == "all" else (method,)


def _records(root: pathlib.Path, part: str) -> list[dict]:
    return sorted(
        (json.loads(p.read_text()) for p in (root / part).glob("trials/*/record.json")),
        key=lambda record: int(record["trial_id"]),
    )


def _command_time(results: dict) -> str:
    """Says how long the command ran, and what it ran (a resumed search)."""
    minutes = results["wall_time_s"] / 60
    resumed = results.get("completed_before_start", 0)
    if not resumed:
        return (
            " The whole command (reference, trials, final retraining and export): "
            f"{minutes:.1f} min."
        )
    return (
        f" This command resumed the search with {resumed} of its trials done "
        f"(their times above are as they ran); it took {minutes:.1f} min."
    )


def part_lines(root: pathlib.Path, part: str) -> list[str]:
    """Returns the Markdown of one part: command, final, per method, targets."""
    results = run_search(root, part)
    defaults = run_defaults(root, part, results)
    reference, final = results["reference"], results["final"]
    ref_flops = reference["flops_mac1"]
    records = _records(root, part)
    lines = [
        f"### {part}",
        "",
        "    python -m tuning.search "
        + " ".join(PARTS[part])
        + f" --workdir=<root>/{part}",
        "",
        f"Goal: {results['goal']}. {results['trials']} trials "
        f"({results['completed']} completed, {results['feasible']} feasible).",
        "",
        "| model | test acc % | val acc % | params | FLOPs (x ref) | epochs in all |",
        "| --- | --- | --- | --- | --- | --- |",
        f"| dense reference | {100 * reference['test_accuracy']:.2f} | "
        f"{100 * reference['val_accuracy']:.2f} | {reference['params']:,} | 1.000 | "
        f"{reference['epochs']} |",
    ]
    if final is not None:
        summary = json.loads((root / part / "final" / "results.json").read_text())
        values = ", ".join(f"{k}={v:.4g}" for k, v in sorted(final["values"].items()))
        lines.append(
            f"| best: {final['method']} ({values}), retrained | "
            f"{100 * final['test_accuracy']:.2f} | {100 * final['val_accuracy']:.2f} | "
            f"{final['params']:,} | {final['flops_mac1'] / ref_flops:.3f} | "
            f"{summary['summary']['epochs']} |"
        )
        lines += ["", f"Chosen: {results['chosen_because']}."]
    lines += [
        "",
        "Per method, the best trial against the method's defaults at the "
        f"trials' {results['config']['train']['epochs']} epochs (validation):",
        "",
        "| method | best trial | val acc % | params | FLOPs (x ref) | feasible "
        "| defaults: val acc % | defaults: params |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in results_methods(results):
        done = [
            r for r in records if r["method"] == name and r["status"] == "completed"
        ]
        best = max(done, key=lambda r: r["score"], default=None)
        default = defaults[name]
        if best is None:
            lines.append(f"| {name} | none completed | | | | | | |")
            continue
        values = ", ".join(f"{k}={v:.3g}" for k, v in sorted(best["values"].items()))
        lines.append(
            f"| {name} | {best['trial_id']}: {values}{_short(best, results)} | "
            f"{100 * best['val_accuracy']:.2f} | "
            f"{best['params']:,} | {best['flops_mac1'] / ref_flops:.3f} | "
            f"{'yes' if best['feasible'] else 'no'} | "
            f"{100 * default['val_accuracy']:.2f} | {default['params']:,} |"
        )
    failed = [r for r in records if r["status"] != "completed"]
    lines += [
        "",
        f"Failed trials: {len(failed)}"
        + "".join(f"; {r['trial_id']} ({r['method']}: {r['note']})" for r in failed)
        + ".",
        f"Time: trials {results['trials_time_s'] / 60:.1f} min, reference training "
        f"{reference['train_time_s'] / 60:.1f} min: "
        + (
            f"{results['search_over_reference']:.1f}x one reference training."
            if results["search_over_reference"]
            else "no reference training time."
        )
        + _command_time(results),
        "",
        *[f"- {line}" for line in HAND_TUNED[part]],
        *[f"- target: {line}" for line in targets(part, results)],
        "",
        f"![{part}](figures/tuning_{part}.png)",
        "",
    ]
    FIGURES.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(root / part / "pareto.png", FIGURES / f"tuning_{part}.png")
    return lines


def _short(record: dict, results: dict) -> str:
    """Returns " (N epochs)" for a trial shorter than --epochs (hyperband's)."""
    epochs = record.get("epochs")
    if epochs is None or epochs == results["config"]["train"]["epochs"]:
        return ""
    return f" ({epochs} epochs)"


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def targets(part: str, results: dict) -> list[str]:
    """Returns each target of the part as written, met or missed, with figures."""
    reference, final = results["reference"], results["final"]
    if final is None:
        return ["no final model: MISSED"]
    flops = final["flops_mac1"] / reference["flops_mac1"]
    drop = 100 * (reference["test_accuracy"] - final["test_accuracy"])
    if part.startswith("mlp"):
        ratio = results["search_over_reference"] or float("inf")
        return [
            f"test accuracy >= the dense reference's at <= 25 % of its FLOPs: "
            f"{100 * final['test_accuracy']:.2f} % vs "
            f"{100 * reference['test_accuracy']:.2f} %"
            f" (README's 89.33 %) at {100 * flops:.1f} %: "
            + _met(
                final["test_accuracy"] >= reference["test_accuracy"] and flops <= 0.25
            ),
            f"against README's 89.33 %: {_met(final['test_accuracy'] >= 0.8933)}",
            f"search time <= 8x one reference training: {ratio:.1f}x: "
            + _met(ratio <= 8),
        ]
    if part == "lenet300":
        return [
            f"rho_FLOPs >= 6 with test error within 0.3 pt of the reference: rho "
            f"{1 / flops:.2f}, +{drop:.2f} pt: {_met(flops <= 0.1667 and drop <= 0.3)}"
        ]
    params = final["params"] / reference["params"]
    return [
        f"fewest params within 0.3 pt of validation accuracy: {100 * params:.1f} % of "
        f"the params at {drop:+.2f} pt test (hand-tuned 34.7 %): "
        + _met(params <= 0.347)
    ]


SUMMARY_HEADER = [
    "| search | goal | best, retrained | test acc % (reference) | params | "
    "FLOPs | search time | targets met |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
]


def summary_row(part: str, results: dict) -> str:
    """Returns the README's one-line summary of a part's search."""
    reference, final = results["reference"], results["final"]
    met = [line.endswith(": met") for line in targets(part, results)]
    ratio = results["search_over_reference"]
    time = f"{ratio:.1f}x the reference's" if ratio else "n/a"
    goal = next(a for a in PARTS[part] if a.startswith(("--budget", "--max_drop")))
    if final is None:
        return f"| {part} | `{goal}` | none | | | | {time} | {sum(met)} of {len(met)} |"
    values = ", ".join(f"{k} = {v:.3g}" for k, v in sorted(final["values"].items()))
    return (
        f"| {part} | `{goal}` | {final['method']}, {values} | "
        f"{100 * final['test_accuracy']:.2f} ({100 * reference['test_accuracy']:.2f}) "
        f"| {final['params']:,} ({final['params'] / reference['params']:.3f}) | "
        f"{final['flops_mac1'] / reference['flops_mac1']:.3f} | {time} | "
        f"{sum(met)} of {len(met)} |"
    )


def replace_block(text: str, name: str, block: str) -> str:
    """Returns `text` with the block between `name`'s markers replaced (or appended)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text:
        return f"{text.rstrip()}\n\n{begin}\n{block}\n{end}\n"
    start, stop = text.index(begin) + len(begin), text.index(end)
    return f"{text[:start]}\n{block}\n{text[stop:]}"


def read_block(text: str, name: str) -> str:
    """Returns what stands between `name`'s markers in `text` ("" if none)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in text:
        return ""
    return text[text.index(begin) + len(begin) : text.index(end)].strip("\n")


def part_sections(block: str) -> dict[str, str]:
    """Splits a results block into its parts' sections (each from `### part`)."""
    sections, part = {}, None
    for line in block.splitlines():
        if line.startswith("### "):
            part = line[4:].strip()
            sections[part] = []
        if part is not None:
            sections[part].append(line)
    return {
        part: "\n".join(lines).rstrip("\n") + "\n" for part, lines in sections.items()
    }


def rows_by_first_cell(block: str, header: list[str]) -> dict[str, list[str]]:
    """Returns a markdown table's rows below `header`, grouped by first cell."""
    rows: dict[str, list[str]] = {}
    for line in block.splitlines()[len(header) :]:
        cells = line.split("|")
        if len(cells) > 2:
            rows.setdefault(cells[1].strip(), []).append(line)
    return rows


def summary_rows(block: str) -> dict[str, str]:
    """Returns a README summary block's row of each part (the first cell)."""
    return {
        part: lines[-1]
        for part, lines in rows_by_first_cell(block, SUMMARY_HEADER).items()
    }


def merged(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Returns `old` updated by `new`, in PARTS order (unknown parts dropped)."""
    both = {**old, **new}
    return [both[part] for part in PARTS if part in both]


def add_root_argument(parser: argparse.ArgumentParser, default: pathlib.Path) -> None:
    """Adds ``--root``, the runs folder a benchmark reads and writes."""
    parser.add_argument(
        "--root",
        type=lambda text: pathlib.Path(text).resolve(),
        default=default,
        help=f"runs folder (default {default})",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_root_argument(parser, DEFAULT_ROOT)
    parser.add_argument("--parts", nargs="+", choices=tuple(PARTS), default=list(PARTS))
    args = parser.parse_args()
    sections, rows = {}, {}
    for part in args.parts:
        sections[part] = "\n".join(part_lines(args.root, part))
        rows[part] = summary_row(part, run_search(args.root, part))
    block = "\n".join(sections.values())
    print(block)
    (args.root / "tuning_search.md").write_text(block + "\n")
    # The parts not run this time keep what the documents say of them.
    results_text = RESULTS_DOC.read_text()
    old_sections = part_sections(read_block(results_text, RESULTS_BLOCK))
    RESULTS_DOC.write_text(
        replace_block(
            results_text, RESULTS_BLOCK, "\n".join(merged(old_sections, sections))
        )
    )
    readme = README.read_text()
    old_rows = summary_rows(read_block(readme, README_BLOCK))
    summary = "\n".join([*SUMMARY_HEADER, *merged(old_rows, rows)])
    README.write_text(replace_block(readme, README_BLOCK, summary))


if __name__ == "__main__":
    main()
