r"""LC and prox on the zoo's ResNet-20 and MobileNetV2: FLOPs, accuracy, LiteRT latency.

    python benchmarks/cnn_compression.py                       # both nets
    python benchmarks/cnn_compression.py --nets resnet20       # one
    python benchmarks/cnn_compression.py --nets                # tables only

On data/fashion_mnist (28x28x1), every row with the same epoch budget,
--epochs (default 4) at Adam 1e-3 with a cosine schedule, seed 0. Work
directories under --root/<net> (an existing run is read, not repeated):

- dense: ``python -m trainers.baseline --model=<net>``;
- lc_flops, lc_latency: ``python -m trainers.lc --reference=<dense>
  --criterion=flops|latency --lc_steps=<epochs - 1> --finetune_epochs=1
  --finetune_learning_rate=0.001 --nobaselines --mu0=<--lc_mu0>``, LC's
  epochs on top of the dense net's, as LC starts from a trained net. lambda
  is hand-set, not searched. Under flops it is the one at which LC's first C
  step (at mu0, on the dense net's weights) brings the compressed layers to
  --cost_fraction of their FLOPs
  (`keras_rank.lc.calibration.lambda_meeting_cost`, the tuning search's
  scale). Under latency it is the one whose first C step meets the measured
  latency of the flops row's first C step (`_latency_fraction`): both rows
  start at the same latency, so their accuracy and speed compare (the same
  fraction of 0.3 under latency, whose low-rank pairs carry a fixed cost,
  put every ResNet-20 layer at rank 1: 67.1 % test accuracy). mu0 is 100x
  LC's default: at 5e-4 the three L steps of a 4-epoch budget left
  ResNet-20's weights 45 % away from their low-rank projection (relative
  Frobenius distance over all layers), at 0.05 7 % (but 18-46 % for its
  rank-1 layers: both low-rank nets are near chance before their fine-tuning
  epoch). The latency criterion's timings are cached in lc_latency/;
- lc_baseline2: LC's baseline 2 (`keras_rank.lc.baseline_choices`, one
  energy threshold for every layer) at 50 % of the dense net's FLOPs: the
  dense net truncated to those ranks, then ``python -m trainers.baseline
  --model_path=<it>`` for --epochs, like the dense net (no LC steps);
  lc_baseline2_s2m8 the same in conv scheme 2 with ranks in multiples of 8,
  the forms LiteRT runs fastest per FLOP
  (benchmarks/low_rank_pair_latency.py); lc_baseline1_latency<P>_s2m8
  LC's baseline 1 (the largest singular values over all layers, each
  layer's rank charged its pair's measured time; a layer whose pair would
  cost what the layer costs stays whole) at P = 70, 80 and 90 % of the
  compressed layers' measured latency (the latency table of lc_latency/),
  in those forms;
- prox: ``python -m trainers.prox --criterion=latency --tau=<tau>`` from
  scratch, tau the tuning search's scale (`tuning.calibration`,
  ``prox_tau_scale``) on the dense net; its decompositions at 80, 90 and
  100 % energy are all rows.

Then ``python -m trainers.export --formats=float32,int8`` of every row
against the dense net (LiteRT test accuracy, exported FLOPs, and latency on
one thread at batch 1, all files interleaved, in ``--latency_instances``
interpreters each), and ``python -m trainers.analyze`` with its defaults on
the dense, LC (flops) and prox (90 %) nets.

Writes <root>/cnn_compression.md, the block between the ``cnn-compression``
markers of docs/results.md and one row per net and method between the
``cnn-summary`` markers of docs/results.md. A net with no export under
--root keeps what docs/results.md says of it.
"""

import argparse
import json
import pathlib
import subprocess
import sys
from typing import Any, NamedTuple

import keras

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tuning_search import (  # noqa: E402
    add_root_argument,
    part_sections,
    read_block,
    replace_block,
    rows_by_first_cell,
)

from keras_rank.core import costs  # noqa: E402
from keras_rank.layers.latency import LatencyTable  # noqa: E402
from keras_rank.layers.rank_specs import (  # noqa: E402
    layer_specs,
    low_rank_model,
    rank_summary,
)
from keras_rank.lc.c_step import rank_cost, select_rank  # noqa: E402
from keras_rank.lc.calibration import lambda_meeting_cost, layer_spectra  # noqa: E402
from keras_rank.lc.config import LCConfig  # noqa: E402
from keras_rank.lc.run import baseline_choices  # noqa: E402
from keras_rank.prox.config import ProxConfig  # noqa: E402
from keras_rank.training.config import TrainConfig  # noqa: E402
from tuning.calibration import measure  # noqa: E402

DEFAULT_ROOT = REPO / "runs" / "cnn"
RESULTS_DOC = REPO / "docs" / "results.md"
RESULTS_BLOCK = "cnn-compression"
SUMMARY_BLOCK = "cnn-summary"
NETS = ("resnet20", "mobilenetv2_small")
ENERGIES = (80, 90, 100)
ANALYZED = ("dense", "lc_flops", "prox_90")


class BaselineRow(NamedTuple):
    """A row truncating the dense net to one of LC's baselines, then training it.

    Attributes:
        which: LC's baseline, 1 (the largest singular values over all
            layers) or 2 (one energy threshold for every layer).
        criterion: The cost the budget bounds, "flops" or "latency".
        fraction: The budget: under flops a fraction of the dense net's
            FLOPs, under latency of its compressed layers' measured latency.
        scheme: The conv scheme.
        multiple: The rank multiple.
    """

    which: int
    criterion: str
    fraction: float
    scheme: int
    multiple: int


# The second has the forms LiteRT runs fastest per FLOP
# (benchmarks/low_rank_pair_latency.py); the latency rows choose layer by
# layer what the measured time repays, at three budgets.
BASELINE_ROWS = {
    "lc_baseline2": BaselineRow(2, "flops", 0.5, LCConfig().conv_scheme, 1),
    "lc_baseline2_s2m8": BaselineRow(2, "flops", 0.5, 2, 8),
    **{
        f"lc_baseline1_latency{percent}_s2m8": BaselineRow(
            1, "latency", percent / 100, 2, 8
        )
        for percent in (70, 80, 90)
    },
}
RANKS_FILE = "ranks.json"
TRAIN_EXAMPLES = 54_000  # data/fashion_mnist's 60k less the 10 % validation


def _train_flags(net: str, epochs: int) -> list[str]:
    return [
        f"--model={net}",
        f"--epochs={epochs}",
        "--lr_schedule=cosine",
        "--seed=0",
        "--verbose=2",
    ]


def _baseline_start(
    dense: keras.Model,
    path: pathlib.Path,
    row: BaselineRow,
    latency: LatencyTable | None = None,
) -> pathlib.Path:
    """Saves the dense net truncated to `row`'s baseline ranks."""
    if path.exists():
        return path
    specs = layer_specs(dense, row.criterion, row.scheme, latency)
    if row.criterion == "flops":
        total = costs.model_cost(dense).flops_mac1
        # The budget bounds the compressed layers; the others keep their cost.
        others = total - sum(spec.dense_cost for spec in specs)
        budget = row.fraction * total - others
    else:
        budget = row.fraction * sum(spec.dense_cost for spec in specs)
    choices = baseline_choices(dense, specs, budget, row.which, row.multiple)
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / RANKS_FILE).write_text(json.dumps(rank_summary(choices), indent=1))
    low_rank_model(dense, specs, choices).save(path)
    return path


def _run(module: str, flags: list[str], workdir: pathlib.Path, done: str) -> None:
    """Runs ``python -m module`` unless `workdir/done` exists; logs beside it."""
    if (workdir / done).exists():
        return
    command = [sys.executable, "-m", module, *flags, f"--workdir={workdir}"]
    print(" ".join(command[1:]), flush=True)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    with open(workdir.parent / f"{workdir.name}.log", "a") as log:
        subprocess.run(command, cwd=REPO, check=True, stdout=log, stderr=log)


def _lc_lambda(
    dense: keras.Model, criterion: str, fraction: float, mu0: float, latency=None
) -> float:
    config = LCConfig(criterion=criterion, mu0=mu0)
    lam = lambda_meeting_cost(
        dense, criterion, config.conv_scheme, config.mu0, fraction, latency=latency
    )
    return float(f"{lam:.3g}")


def _latency_fraction(
    dense: keras.Model, flops_lambda: float, mu0: float, latency: LatencyTable
) -> float:
    """The measured latency of the flops row's first C step, as a fraction.

    LC's first C step under flops (at `flops_lambda`, on the dense net's
    weights) picks a rank for each layer; this is those layers' latency
    under `latency`, over their dense latency. Calibrating the latency row
    to it starts both rows at the same latency, so their accuracies and
    measured speeds compare.
    """
    scheme = LCConfig().conv_scheme
    timed = {spec.name: spec for spec in layer_specs(dense, "latency", scheme, latency)}
    spent = full = 0.0
    for values, spec in layer_spectra(dense, "flops", scheme):
        chosen = select_rank(values, spec.alpha, spec.dense_cost, flops_lambda, mu0)
        cost = timed[spec.name]
        full += cost.dense_cost
        spent += (
            cost.dense_cost
            if chosen.dense
            else float(rank_cost(chosen.rank, cost.alpha, cost.dense_cost, cost.offset))
        )
    return spent / full


def _prox_tau(dense: keras.Model, net: str, epochs: int) -> float:
    config = TrainConfig(model=net, epochs=epochs, lr_schedule="cosine")
    steps = TRAIN_EXAMPLES // config.batch_size
    tau = measure("prox_tau_scale", dense, config, ProxConfig(), steps)
    return float(f"{tau:.3g}")


def train_rows(
    root: pathlib.Path, net: str, epochs: int, fraction: float, mu0: float
) -> dict:
    """Trains (or reads) every row of one net; returns ``{row: model file}``."""
    folder = root / net
    flags = _train_flags(net, epochs)
    _run("trainers.baseline", flags, folder / "dense", "results.json")
    dense_file = folder / "dense" / "model.keras"
    dense = keras.saving.load_model(dense_file)
    models = {"dense": dense_file}
    flops_lambda = _lc_lambda(dense, "flops", fraction, mu0)
    table = LatencyTable(folder / "lc_latency")
    latency_fraction = _latency_fraction(dense, flops_lambda, mu0, table)
    lambdas = {
        "flops": flops_lambda,
        "latency": _lc_lambda(dense, "latency", latency_fraction, mu0, table),
    }
    for criterion, lam in lambdas.items():
        workdir = folder / f"lc_{criterion}"
        lc_flags = [
            f"--reference={dense_file}",
            f"--criterion={criterion}",
            f"--lambda={lam:g}",
            f"--mu0={mu0:g}",
            f"--lc_steps={epochs - 1}",
            "--finetune_epochs=1",
            # Its one epoch recovers a net near chance: at the run's rate,
            # not LC's default tenth of it.
            f"--finetune_learning_rate={TrainConfig().learning_rate:g}",
            "--nobaselines",
        ]
        _run("trainers.lc", flags + lc_flags, workdir, "results.json")
        models[f"lc_{criterion}"] = workdir / f"lambda_{lam:g}" / "model_lowrank.keras"
    for row, baseline in BASELINE_ROWS.items():
        start = _baseline_start(dense, folder / row / "start.keras", baseline, table)
        flags_from_file = [f"--model_path={start}"] + [
            flag for flag in flags if not flag.startswith("--model=")
        ]
        tuned = folder / row / "finetune"
        _run("trainers.baseline", flags_from_file, tuned, "results.json")
        models[row] = tuned / "model.keras"
    tau = _prox_tau(dense, net, epochs)
    prox_flags = ["--criterion=latency", f"--tau={tau:g}"]
    _run("trainers.prox", flags + prox_flags, folder / "prox", "results.json")
    for energy in ENERGIES:
        models[f"prox_{energy}"] = (
            folder / "prox" / f"energy_{energy}" / "model_lowrank.keras"
        )
    return models


def export_rows(root: pathlib.Path, net: str, models: dict) -> dict[str, Any]:
    """Exports every row against the dense net; returns export.json."""
    flags = [
        f"--model_path={name}={path}"
        for name, path in models.items()
        if name != "dense"
    ]
    flags += [f"--baseline_path=dense={models['dense']}", "--formats=float32,int8"]
    workdir = root / net / "export"
    _run("trainers.export", flags, workdir, "export.json")
    return json.loads((workdir / "export.json").read_text())


def analyze_rows(root: pathlib.Path, net: str, models: dict) -> None:
    """Runs trainers.analyze with its defaults on the `ANALYZED` rows."""
    for name in ANALYZED:
        workdir = root / net / f"analysis_{name}"
        _run("trainers.analyze", [f"--model_path={models[name]}"], workdir, "report.md")


def _met(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _settings(root: pathlib.Path, net: str, row: str) -> str:
    """The row's method settings, read from its run."""
    if row == "dense":
        return "no compression"
    if row in BASELINE_ROWS:
        baseline = BASELINE_ROWS[row]
        ranks = json.loads((root / net / row / RANKS_FILE).read_text())
        ranks = ", ".join(f"{name} {rank}" for name, rank in ranks.items())
        rule = {1: "the largest singular values", 2: "one energy threshold"}
        budget = {"flops": "FLOPs", "latency": "compressed layers' measured latency"}
        return (
            f"LC's baseline {baseline.which} ({rule[baseline.which]} over all "
            f"layers) at {100 * baseline.fraction:g} % of the dense net's "
            f"{budget[baseline.criterion]}, conv scheme {baseline.scheme}, ranks "
            f"in multiples of {baseline.multiple}, from the dense net's weights, "
            f"then trained like the dense net; ranks: {ranks}"
        )
    if row.startswith("lc_"):
        results = json.loads((root / net / row / "results.json").read_text())
        run = results["runs"][0]
        ranks = ", ".join(f"{name} {rank}" for name, rank in run["ranks"].items())
        return f"lambda {run['lambda']:g}; ranks: {ranks}"
    energy = row.split("_")[1]
    config = json.loads((root / net / "prox" / "config.json").read_text())
    tau = config["method"]["prox"]["tau"]
    return f"tau {', '.join(f'{t:g}' for t in tau)}, {energy} % energy"


def _latency(file: dict) -> str:
    ratio = file.get("latency_ratio", 1.0)
    return f"{file['latency']['median_us']:.0f} ({ratio:.3f})"


def net_lines(root: pathlib.Path, net: str, export: dict, reports: dict) -> list[str]:
    """The Markdown of one net: the table, the targets as written."""
    models = export["models"]
    lines = [
        f"### {net}",
        "",
        "| row | test acc % (LiteRT float32) | drop pt | params | FLOPs (x dense) "
        "| float32 latency us (x dense) | int8 latency us (x dense) "
        "| int8 test acc % |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in models.items():
        f32, int8 = entry["formats"]["float32"], entry["formats"]["int8"]
        lines.append(
            f"| {name} | {100 * f32['test_accuracy']:.2f} | "
            f"{f32.get('drop_vs_dense_float32_pt', 0.0):+.2f} | "
            f"{entry['keras']['params']:,} | {f32.get('flops_ratio', 1.0):.3f} | "
            f"{_latency(f32)} | {_latency(int8)} | "
            f"{100 * int8['test_accuracy']:.2f} |"
        )
    lines += ["", "Settings:", ""]
    lines += [f"- {name}: {_settings(root, net, name)}" for name in models]
    lines += ["", "Targets, as written:", ""]
    lines += [f"- {line}" for line in targets(net, models)]
    where = root.relative_to(REPO) if root.is_relative_to(REPO) else root
    analysed = ", ".join(f"`{where}/{path}`" for path in reports.values())
    lines += [
        "",
        f"trainers.analyze with its defaults: {analysed or 'not run yet'}.",
        "",
    ]
    return lines


def targets(net: str, models: dict) -> list[str]:
    """Each target of the issue on one net, with its figures, met or missed."""
    rows = {name: entry["formats"]["float32"] for name, entry in models.items()}
    compressed = {name: row for name, row in rows.items() if name != "dense"}
    lines = []
    if net == "resnet20":
        good = [
            name
            for name, row in compressed.items()
            if row["flops_ratio"] <= 0.5 and row["drop_vs_dense_float32_pt"] <= 0.5
        ]
        figures = "; ".join(
            f"{name} {1 / row['flops_ratio']:.2f}x at "
            f"{row['drop_vs_dense_float32_pt']:+.2f} pt"
            for name, row in compressed.items()
        )
        lines.append(
            f">= 2x fewer FLOPs within 0.5 pt of the dense test accuracy ({figures}): "
            + _met(bool(good))
            + (f" by {', '.join(good)}" if good else "")
        )
    for name, row in compressed.items():
        gap = row["latency_ratio"] - row["flops_ratio"]
        lines.append(
            f"{name}: float32 latency ratio {row['latency_ratio']:.3f} within 0.1 of "
            f"the FLOPs ratio {row['flops_ratio']:.3f} ({gap:+.3f}): "
            + _met(abs(gap) <= 0.1)
        )
    flops, latency = compressed["lc_flops"], compressed["lc_latency"]
    lines.append(
        "latency criterion at least as fast as flops at equal accuracy: latency "
        f"ratio {latency['latency_ratio']:.3f} vs {flops['latency_ratio']:.3f}, "
        f"test accuracy {100 * latency['test_accuracy']:.2f} vs "
        f"{100 * flops['test_accuracy']:.2f} %: "
        + _met(
            latency["latency_ratio"] <= flops["latency_ratio"]
            and latency["test_accuracy"] >= flops["test_accuracy"] - 0.005
        )
    )
    return lines


SUMMARY_HEADER = [
    "| net | method | test acc % (dense) | FLOPs (x dense) | LiteRT float32 "
    "latency (x dense) |",
    "| --- | --- | --- | --- | --- |",
]


def summary_rows(net: str, export: dict) -> list[str]:
    """Summary rows: each compressed row of one net."""
    models = export["models"]
    dense = models["dense"]["formats"]["float32"]["test_accuracy"]
    rows = []
    for name, entry in models.items():
        if name == "dense":
            continue
        f32 = entry["formats"]["float32"]
        rows.append(
            f"| {net} | {name} | {100 * f32['test_accuracy']:.2f} ({100 * dense:.2f}) "
            f"| {f32['flops_ratio']:.3f} | {f32['latency_ratio']:.3f} |"
        )
    return rows


def write_tables(root: pathlib.Path) -> str:
    """Writes the tables of every net measured under `root`; returns the block.

    A net measured under `root` (its export.json) gets its section and
    summary rows from the measurements; a net that is not keeps what
    docs/results.md says of it, so one net can be measured again alone, or
    on another machine, without losing the other's figures.
    """
    results_text = RESULTS_DOC.read_text()
    sections = part_sections(read_block(results_text, RESULTS_BLOCK))
    sections = {net: text.rstrip("\n") + "\n" for net, text in sections.items()}
    rows = rows_by_first_cell(read_block(results_text, SUMMARY_BLOCK), SUMMARY_HEADER)
    for net in NETS:
        export_file = root / net / "export" / "export.json"
        if not export_file.is_file():
            continue
        export = json.loads(export_file.read_text())
        reports = {
            name: f"{net}/analysis_{name}/report.md"
            for name in ANALYZED
            if (root / net / f"analysis_{name}" / "report.md").is_file()
        }
        sections[net] = "\n".join(net_lines(root, net, export, reports))
        rows[net] = summary_rows(net, export)
    block = "\n".join(sections[net] for net in NETS if net in sections)
    root.mkdir(parents=True, exist_ok=True)
    (root / "cnn_compression.md").write_text(block + "\n")
    results_text = replace_block(results_text, RESULTS_BLOCK, block)
    summary = [row for net in NETS for row in rows.get(net, [])]
    RESULTS_DOC.write_text(
        replace_block(results_text, SUMMARY_BLOCK, "\n".join(SUMMARY_HEADER + summary))
    )
    return block


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_root_argument(parser, DEFAULT_ROOT)
    parser.add_argument(
        "--nets",
        nargs="*",
        choices=NETS,
        default=list(NETS),
        help="nets to run (none: only rewrite the tables from what is measured)",
    )
    parser.add_argument("--epochs", type=int, default=4, help="epochs of every row")
    parser.add_argument(
        "--lc_mu0",
        type=float,
        default=0.05,
        help="LC's mu0 (its default is 5e-4): large enough that the weights "
        "reach the low-rank net within the few L steps of the budget",
    )
    parser.add_argument(
        "--cost_fraction",
        type=float,
        default=0.3,
        help="LC's lambda: its first C step's cost, a fraction of the dense layers'",
    )
    args = parser.parse_args()
    for net in args.nets:
        models = train_rows(
            args.root, net, args.epochs, args.cost_fraction, args.lc_mu0
        )
        export_rows(args.root, net, models)
        analyze_rows(args.root, net, models)
    print(write_tables(args.root))


if __name__ == "__main__":
    main()
