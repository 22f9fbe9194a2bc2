"""Compression-aware training: accuracy against exported size (Alvarez & Salzmann 2017).

    python benchmarks/prox_tradeoff.py --root runs/bench_prox --parts mlp lenet5 methods

Per part, one `python -m trainers.prox` run per --taus value (tau = 0 is the
baseline: ordinary training, decomposed the same way), each decomposed at
--energies, all with the same optimizer and epochs (a finished run under
--root is read, not repeated; re-running resumes an unfinished one). Prints,
like the paper's Tables 3-4, test accuracy, parameters and MACs of the
exported plain model relative to the baseline's trained model, the target
(a setting with >= 50 % fewer exported parameters within 0.5 pt of the
baseline) and the time of the proximal steps against the epoch's; writes
the lines to <root>/prox_tradeoff.md.

The methods part puts the three methods side by side on the paper MLP with
one budget of 30 training epochs each: dense (`trainers.baseline`), DLRA
(`trainers.dlra`, defaults), LC (reference 10 epochs, 15 L steps of one
epoch, 5 epochs of fine-tuning, lambda 1e-5) and prox (tau 2, decomposed at
--methods_energy); all exported with `trainers.export` (float32, int8).
"""

import argparse
import pathlib
import statistics

import lc_common
from setting_args import add_setting_argument, find_setting

from keras_rank.prox import ProxConfig
from keras_rank.training import TrainConfig

PARTS = {"mlp": "mlp", "lenet5": "lenet5"}
SGD = {"optimizer": "sgd", "momentum": 0.9, "nesterov": True}
METHOD_RUNS = {
    "dense": ("trainers.baseline", {"model": "mlp", "epochs": 30}),
    "DLRA": ("trainers.dlra", {"model": "mlp", "epochs": 30}),
    "LC": (
        "trainers.lc",
        {
            "model": "mlp",
            "epochs": 10,
            "lambdas": [1e-5],
            "lc_steps": 15,
            "finetune_epochs": 5,
            "learning_rate": 0.01,
            "finetune_learning_rate": 0.01,
            "baselines": False,
            **SGD,
        },
    ),
    "prox": (
        "trainers.prox",
        {"model": "mlp", "epochs": 30, "learning_rate": 0.05, "tau": 2.0, **SGD},
    ),
}


def run_dir(root: pathlib.Path, part: str, tau: float) -> pathlib.Path:
    return root / f"{part}_tau{tau:g}"


def prox_results(root: pathlib.Path, part: str, tau: float, args) -> dict:
    """Reads (or first runs) one trainers.prox run."""
    workdir = run_dir(root, part, tau)
    if not (workdir / "results.json").is_file():
        lc_common.run_trainer(
            "trainers.prox",
            workdir,
            {
                "model": PARTS[part],
                "epochs": args.epochs,
                "optimizer": "sgd",
                "learning_rate": args.learning_rate,
                "momentum": 0.9,
                "nesterov": True,
                "seed": args.seed,
                "tau": tau,
                "energy": ",".join(f"{energy:g}" for energy in args.energies),
            },
        )
    return lc_common.read_json(workdir / "results.json")


def part_lines(root: pathlib.Path, part: str, args) -> list[str]:
    """The table of one part and its two targets."""
    runs = {tau: prox_results(root, part, tau, args) for tau in args.taus}
    base = runs[min(runs)]["summary"]
    base_params = base["deployable"]["params"]
    base_macs = base["deployable"]["flops_mac1"]
    base_accuracy = 100 * base["test_accuracy"]
    rows, candidates = [], []
    for tau, results in runs.items():
        summary = results["summary"]
        points = [("-", summary["test_accuracy"], summary["deployable"])]
        points += [
            (f"{entry['energy']:g} %", entry["test_accuracy"], entry)
            for entry in results["prox"]["energies"]
        ]
        for energy, accuracy, size in points:
            accuracy = 100 * accuracy
            params = size["params"] / base_params
            rows.append(
                [
                    f"{tau:g}",
                    energy,
                    f"{accuracy:.2f}",
                    f"{accuracy - base_accuracy:+.2f}",
                    f"{size['params']:,}",
                    f"{100 * params:.1f}",
                    f"{100 * size['flops_mac1'] / base_macs:.1f}",
                ]
            )
            candidates.append((tau, energy, accuracy, params))
    header = (
        "tau",
        "energy",
        "test acc %",
        "Δ vs baseline pt",
        "params (exported)",
        "params % of baseline",
        "MACs % of baseline",
    )
    fits = [c for c in candidates if round(base_accuracy - c[2], 2) <= 0.5]
    smallest = min(fits or candidates, key=lambda c: c[3])
    ratios = [
        statistics.mean(h["prox_time_s"] for h in r["history"])
        / statistics.mean(h["epoch_time_s"] for h in r["history"])
        for tau, r in runs.items()
        if tau > 0
    ]
    settings = runs[min(runs)]["config"]
    return [
        f"### {part}",
        "",
        f"{settings['epochs']} epochs, SGD lr {settings['learning_rate']:g} "
        f"Nesterov momentum 0.9, seed {settings['seed']}, proximal step once an "
        f"epoch; baseline: tau = {min(runs):g}, not decomposed "
        f"({base_accuracy:.2f} %, {base_params:,} parameters)."
        + ("" if 0.0 in runs else " (no tau = 0 run: the smallest tau is it)"),
        "",
        *lc_common.markdown_table(header, rows),
        "",
        lc_common.target_line(
            ">= 50 % fewer exported parameters within 0.5 pt of the baseline",
            bool(fits) and smallest[3] <= 0.5,
            f"best within 0.5 pt: tau {smallest[0]:g}, energy {smallest[1]}, "
            f"{100 * smallest[3]:.1f} % of the parameters, "
            f"{smallest[2] - base_accuracy:+.2f} pt",
        ),
        lc_common.target_line(
            "proximal step time / epoch time <= 0.05",
            max(ratios, default=0) <= 0.05,
            "per run: " + ", ".join(f"{ratio:.3f}" for ratio in ratios),
        ),
        "",
    ]


def method_file(root: pathlib.Path, method: str, energy: float) -> pathlib.Path:
    """The trained model file of one method of the methods part."""
    folder = root / f"mlp30_{method.lower()}"
    if method == "LC":
        return lc_common.lambda_dir(folder, 1e-5) / "model_lowrank.keras"
    if method == "prox":
        return folder / f"energy_{energy:g}" / "model_lowrank.keras"
    return folder / "model.keras"


def methods_lines(root: pathlib.Path, args) -> list[str]:
    """The three methods and the dense net, one budget, exported side by side."""
    files = {}
    for method, (module, settings) in METHOD_RUNS.items():
        workdir = root / f"mlp30_{method.lower()}"
        if not (workdir / "results.json").is_file():
            extra = {"energy": f"{args.methods_energy:g}"} if method == "prox" else {}
            lc_common.run_trainer(module, workdir, {**settings, **extra})
        files[method] = method_file(root, method, args.methods_energy)
    export = root / "export_methods"
    if not (export / "export.json").is_file():
        lc_common.run_trainer(
            "trainers.export",
            export,
            {
                "baseline_path": f"dense={files.pop('dense')}",
                "model_path": [f"{m}={path}" for m, path in files.items()],
                "formats": "float32,int8",
            },
        )
    results = lc_common.read_json(export / "export.json")
    rows = []
    for name, entry in results["models"].items():
        float32, int8 = entry["formats"]["float32"], entry["formats"]["int8"]
        rows.append(
            [
                name,
                30,
                f"{100 * float32['test_accuracy']:.2f}",
                f"{float32['params']:,}",
                f"{entry['keras']['flops_mac1']:,}",
                f"{int8['size_bytes'] / 1024:,.1f}",
                f"{100 * int8['test_accuracy']:.2f}",
            ]
        )
    header = (
        "method",
        "training epochs in all",
        "test acc % (float32 file)",
        "params (exported)",
        "FLOPs (1/MAC)",
        "int8 file KB",
        "int8 test acc %",
    )
    return [
        "### Three methods on the paper MLP, 30 epochs each",
        "",
        *lc_common.markdown_table(header, rows),
        "",
        f"prox: tau 2, decomposed at {args.methods_energy:g} % energy.",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root",
        type=lambda t: pathlib.Path(t).resolve(),
        default=lc_common.REPO / "runs" / "bench_prox",
    )
    parser.add_argument(
        "--parts", nargs="+", choices=[*PARTS, "methods"], default=[*PARTS, "methods"]
    )
    parser.add_argument("--methods_energy", type=float, default=90.0)
    add_setting_argument(
        parser,
        find_setting("tau", ProxConfig),
        default=[0.0, 2.0, 3.0, 5.0, 10.0],
        dest="taus",
    )
    add_setting_argument(
        parser, find_setting("energies", ProxConfig), default=[80.0, 90.0, 100.0]
    )
    for name, default in (("epochs", 15), ("learning_rate", 0.05), ("seed", 0)):
        add_setting_argument(parser, find_setting(name, TrainConfig), default=default)
    args = parser.parse_args()
    lines = []
    for part in args.parts:
        if part == "methods":
            lines += methods_lines(args.root, args)
        else:
            lines += part_lines(args.root, part, args)
    lc_common.emit(args.root, "prox_tradeoff", lines)


if __name__ == "__main__":
    main()
