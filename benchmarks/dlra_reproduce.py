"""Reproduces Lee et al. 2021 (Table 1, Fig. 3) on data/fashion_mnist.

Runs `python -m trainers.dlra` once per configuration and seed, each in its
own work directory under --root (so an interrupted reproduction resumes where
it stopped, and finished runs are not repeated), then prints the tables:

1. paper MLP, --epochs epochs, seeds --seed: baseline / +FN / +DLRA with the
   paper's lambda1 = 20, tau_cos = 1e-4, tau_euc = 0.1: mean +- std test
   accuracy, parameters, compression, FLOPs (both conventions), and the first
   epoch at which +DLRA's validation accuracy reaches the baseline's best;
2. the lambda1 sweep {0.1, 1, 10, 20, 40} (first seed, --side_epochs epochs):
   compression and accuracy;
3. lenet5 with FactorizedConv2D + FactorizedDense vs its baseline (first
   seed, --side_epochs epochs).

    python benchmarks/dlra_reproduce.py --epochs 30 --seed 0 1 --side_epochs 15

`--parts` selects tables (mlp, sweep, lenet5); each runs only its trainings.
"""

import argparse
import json
import pathlib
import statistics
import subprocess
import sys

from setting_args import add_setting_argument, find_setting

from keras_rank.training import TrainConfig

REPO = pathlib.Path(__file__).resolve().parent.parent
CONFIGS = {
    "baseline": ["--nofn", "--nofusion", "--lambda1=0", "--lambda2=0"],
    "+FN": ["--fn", "--nofusion", "--lambda1=0", "--lambda2=0"],
    "+DLRA": ["--fn", "--fusion", "--lambda1=20"],
}


def run(root: pathlib.Path, name: str, flags: list[str]) -> dict:
    """Runs (or resumes, or just reads) one training run; returns its results."""
    workdir = root / name
    results = workdir / "results.json"
    if not results.is_file():
        command = [
            sys.executable,
            "-m",
            "trainers.dlra",
            f"--workdir={workdir}",
            "--verbose=2",
            *flags,
        ]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, cwd=REPO, check=True)
    return json.loads(results.read_text())


def _sizes(results: dict) -> tuple[dict, dict]:
    """(deployable, method's own) sizes before and after: params and FLOPs.

    Deployable: the plain exported model (the summary's); own: DLRA's count
    of W' (the paper's, the summary's method_size where it differs).
    """
    keys = ("params", "flops_mac1", "flops_mac2")
    summary = results["summary"]
    after = summary.get("method_size", summary["deployable"])
    if "dlra" not in results:
        return (after, after), (after, after)
    dlra = results["dlra"]
    own = ({key: dlra[f"{key}_before"] for key in keys}, after)
    return (dlra["deployable_before"], summary["deployable"]), own


def _cell(runs: list[dict], value, digits: int = 3) -> str:
    """Mean of `value(before, after)` over runs, deployable first, W' in brackets."""
    deployable = statistics.mean(value(*_sizes(r)[0]) for r in runs)
    own = statistics.mean(value(*_sizes(r)[1]) for r in runs)
    if round(deployable, digits) == round(own, digits):
        return f"{deployable:.{digits}f}"
    return f"{deployable:.{digits}f} ({own:.{digits}f})"


def _row(name: str, runs: list[dict]) -> str:
    accuracy = [100 * r["summary"]["test_accuracy"] for r in runs]
    std = statistics.stdev(accuracy) if len(accuracy) > 1 else 0.0
    compression = _cell(
        runs, lambda before, after: 100 * (1 - after["params"] / before["params"]), 2
    )
    millions = [
        _cell(runs, lambda _, after, key=key: after[key] / 1e6)
        for key in ("params", "flops_mac1", "flops_mac2")
    ]
    return (
        f"| {name} | {statistics.mean(accuracy):.2f} +- {std:.2f} "
        f"| {compression} | " + " | ".join(f"{cell} M" for cell in millions) + " |"
    )


def _first_epoch_reaching(history: list[dict], target: float) -> int | None:
    for entry in history:
        if entry.get("val_accuracy", 0.0) >= target:
            return entry["epoch"]
    return None


PARTS = ("mlp", "sweep", "lenet5")
LAMBDA1_SWEEP = (0.1, 1, 10, 20, 40)
HEADER = (
    "| configuration | test accuracy % (mean +- std) | compression %: deployable "
    "(W') | params: deployable (W') | FLOPs (1/MAC): deployable (W') "
    "| FLOPs (2/MAC): deployable (W') |\n|---|---|---|---|---|---|"
)


def mlp_tables(root: pathlib.Path, epochs: int, seeds: list[int]) -> list[str]:
    """Table 1 (three configurations x seeds) and Table 2 (layer dimensions)."""
    table = {
        name: [
            run(
                root,
                f"mlp_{name}_seed{seed}",
                [*flags, f"--epochs={epochs}", f"--seed={seed}"],
            )
            for seed in seeds
        ]
        for name, flags in CONFIGS.items()
    }
    lines = [f"### Paper MLP, {epochs} epochs, seeds {seeds}", "", HEADER]
    lines += [_row(name, runs) for name, runs in table.items()]
    best = max(h["val_accuracy"] for r in table["baseline"] for h in r["history"])
    firsts = [_first_epoch_reaching(r["history"], best) for r in table["+DLRA"]]
    baseline_firsts = [
        _first_epoch_reaching(
            r["history"], max(h["val_accuracy"] for h in r["history"])
        )
        for r in table["baseline"]
    ]
    lines += [
        "",
        f"Baseline's best validation accuracy: {100 * best:.2f} % (epochs "
        f"{baseline_firsts}); first epoch at which +DLRA reaches it: {firsts}.",
        "",
        "### +DLRA layer dimensions (Table 2, first seed)",
        "",
        "| layer | input | output | features |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {d['layer']} | {d['input']} | {d['output']} | {d['features']} |"
        for d in table["+DLRA"][0]["dlra"]["layers"]
    ]
    return [*lines, ""]


def sweep_table(root: pathlib.Path, epochs: int, seed: int) -> list[str]:
    """Compression and accuracy for lambda1 in LAMBDA1_SWEEP (Fig. 3)."""
    lines = [
        f"### lambda1 sweep (seed {seed}, {epochs} epochs)",
        "",
        "| lambda1 | compression % (W') | test accuracy % |",
        "|---|---|---|",
    ]
    for lam in LAMBDA1_SWEEP:
        r = run(
            root,
            f"mlp_lambda1_{lam}_seed{seed}_{epochs}ep",
            [
                *CONFIGS["+DLRA"][:-1],
                f"--lambda1={lam}",
                f"--epochs={epochs}",
                f"--seed={seed}",
            ],
        )
        lines.append(
            f"| {lam} | {100 * r['dlra']['compression']:.2f} "
            f"| {100 * r['test_accuracy']:.2f} |"
        )
    return [*lines, ""]


def lenet_table(root: pathlib.Path, epochs: int, seed: int) -> list[str]:
    """lenet5 (FactorizedConv2D + FactorizedDense) vs its baseline."""
    runs = {
        name: run(
            root,
            f"lenet5_{name}_seed{seed}_{epochs}ep",
            [*CONFIGS[name], "--model=lenet5", f"--epochs={epochs}", f"--seed={seed}"],
        )
        for name in ("baseline", "+DLRA")
    }
    lines = [f"### LeNet5 (seed {seed}, {epochs} epochs)", "", HEADER]
    lines += [_row(name, [r]) for name, r in runs.items()]
    lines += [
        "",
        "| +DLRA layer | input | output | features |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {d['layer']} | {d['input']} | {d['output']} | {d['features']} |"
        for d in runs["+DLRA"]["dlra"]["layers"]
    ]
    return [*lines, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_setting_argument(parser, find_setting("epochs", TrainConfig), default=30)
    add_setting_argument(
        parser,
        find_setting("seed", TrainConfig),
        default=[0, 1],
        sweep=True,
        dest="seeds",
    )
    parser.add_argument(
        "--side_epochs",
        type=int,
        default=None,
        help="sweep and lenet5 (default: --epochs)",
    )
    parser.add_argument(
        "--root", type=pathlib.Path, default=REPO / "runs" / "reproduce"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=PARTS,
        default=list(PARTS),
        help="tables to produce (each runs only the trainings it needs)",
    )
    args = parser.parse_args()
    side_epochs = args.side_epochs or args.epochs
    seed0 = args.seeds[0]
    lines = []
    if "mlp" in args.parts:
        lines += mlp_tables(args.root, args.epochs, args.seeds)
    if "sweep" in args.parts:
        lines += sweep_table(args.root, side_epochs, seed0)
    if "lenet5" in args.parts:
        lines += lenet_table(args.root, side_epochs, seed0)
    text = "\n".join(lines)
    print(text)
    args.root.mkdir(parents=True, exist_ok=True)
    (args.root / "tables.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
