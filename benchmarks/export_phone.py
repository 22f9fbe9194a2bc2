"""Export for phones: LiteRT size, latency and accuracy of the compressed models.

    python benchmarks/export_phone.py --root runs/bench_lc

Takes the trained models of the LC benchmark (benchmarks/lc_lenet300.py,
both parts, run first with its defaults when a model is missing under
--root) and exports each family with `python -m trainers.export` in all five
formats against its float32 dense reference:

- mlp: the paper MLP (784-500x5-10): dense reference, DLRA (its factorized
  model.keras, compacted by the export), LC at --mlp_lambda.
- lenet300: LeNet300 (tanh): dense reference, LC at --lenet300_lambda.

Prints the tables and the targets, each met or MISSED with the
numbers, and writes them to <root>/export_phone.md.
"""

import argparse
import json
import pathlib
import subprocess
import sys

import lc_common
from setting_args import add_setting_argument, find_setting

from keras_rank.export import ExportConfig

FORMATS = "float32,dynamic,float16,int8,qat_int8"


def family_models(root: pathlib.Path, args) -> dict[str, dict[str, pathlib.Path]]:
    """The model files of each family, the dense reference first."""
    return {
        "mlp": {
            "dense": root / "mlp_reference" / "model.keras",
            "DLRA": root / "mlp_dlra" / "model.keras",
            f"LC λ={args.mlp_lambda:g}": lc_common.lambda_dir(
                root / "mlp", args.mlp_lambda
            )
            / "model_lowrank.keras",
        },
        "lenet300": {
            "dense": root / "lenet300_reference" / "model.keras",
            f"LC λ={args.lenet300_lambda:g}": lc_common.lambda_dir(
                root / "lenet300", args.lenet300_lambda
            )
            / "model_lowrank.keras",
        },
    }


def ensure_trained(root: pathlib.Path, families: dict) -> None:
    """Runs the LC benchmark (its defaults) when a model file is missing."""
    missing = [
        str(path)
        for models in families.values()
        for path in models.values()
        if not path.is_file()
    ]
    if missing:
        print("Missing, training with benchmarks/lc_lenet300.py:", *missing, sep="\n  ")
        command = [
            sys.executable,
            str(lc_common.REPO / "benchmarks" / "lc_lenet300.py"),
            f"--root={root}",
        ]
        subprocess.run(command, cwd=lc_common.REPO, check=True)


def export_family(
    root: pathlib.Path, family: str, models: dict[str, pathlib.Path], args
) -> dict:
    """Runs trainers.export on one family (unless done); returns export.json."""
    workdir = root / f"export_{family}"
    if not (workdir / "export.json").is_file() or args.again:
        dense, *compressed = models.items()
        command = [
            sys.executable,
            "-m",
            "trainers.export",
            f"--baseline_path={dense[0]}={dense[1]}",
            *(f"--model_path={name}={path}" for name, path in compressed),
            f"--formats={FORMATS}",
            f"--qat_epochs={args.qat_epochs}",
            f"--latency_invocations={args.latency_invocations}",
            f"--latency_rounds={args.latency_rounds}",
            f"--workdir={workdir}",
        ]
        print("$", " ".join(command[1:]), flush=True)
        subprocess.run(command, cwd=lc_common.REPO, check=True)
    return json.loads((workdir / "export.json").read_text())


def targets(family: str, results: dict) -> list[str]:
    """The targets on one family, each met or MISSED."""
    lines = []
    models = results["models"]
    compressed = {name: entry for name, entry in models.items() if name != "dense"}
    for name, entry in compressed.items():
        files = entry["formats"]
        float32 = files["float32"]
        lines.append(
            lc_common.target_line(
                f"{family} {name}: float32 latency ratio <= FLOPs ratio",
                float32["latency_ratio"] <= float32["flops_ratio"],
                f"{float32['latency_ratio']:.3f} vs {float32['flops_ratio']:.3f}; "
                f"above the invocation floor of {results['latency_floor_us']:.1f} "
                f"µs: {float32['latency_ratio_above_floor']:.3f}",
            )
        )
        lines.append(
            lc_common.target_line(
                f"{family} {name}: int8 within 0.5 pt of its float32 file",
                round(abs(files["int8"]["drop_vs_own_float32_pt"]), 2) <= 0.5,
                f"{files['int8']['drop_vs_own_float32_pt']:+.2f} pt",
            )
        )
        lines.append(
            lc_common.target_line(
                f"{family} {name}: QAT int8 at least as accurate as int8",
                files["qat_int8"]["test_accuracy"] >= files["int8"]["test_accuracy"],
                f"{100 * files['qat_int8']['test_accuracy']:.2f} % vs "
                f"{100 * files['int8']['test_accuracy']:.2f} %",
            )
        )
    if family == "mlp":
        candidates = [
            (name, fmt, entry["formats"][fmt])
            for name, entry in compressed.items()
            for fmt in ("int8", "qat_int8")
        ]
        fits = [
            c for c in candidates if round(c[2]["drop_vs_dense_float32_pt"], 2) <= 1
        ]
        name, fmt, best = max(fits or candidates, key=lambda c: c[2]["size_ratio"])
        lines.append(
            lc_common.target_line(
                "mlp: best compressed int8 >= 10x smaller than dense float32, "
                "<= 1 pt accuracy loss",
                bool(fits) and best["size_ratio"] >= 10,
                f"{name} {fmt}: {best['size_ratio']:.1f}x smaller, "
                f"{best['drop_vs_dense_float32_pt']:+.2f} pt",
            )
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=pathlib.Path, default=lc_common.DEFAULT_ROOT)
    parser.add_argument("--mlp_lambda", type=float, default=1e-5)
    parser.add_argument("--lenet300_lambda", type=float, default=3e-5)
    for name, default in (
        ("qat_epochs", 2),
        ("latency_invocations", 200),
        ("latency_rounds", 10),
    ):
        add_setting_argument(parser, find_setting(name, ExportConfig), default=default)
    parser.add_argument(
        "--again", action="store_true", help="re-export even if export.json exists"
    )
    args = parser.parse_args()
    families = family_models(args.root, args)
    ensure_trained(args.root, families)
    lines = []
    for family, models in families.items():
        results = export_family(args.root, family, models, args)
        report = (args.root / f"export_{family}" / "report.md").read_text()
        lines += [
            f"### {family}",
            "",
            report.strip(),
            "",
            *targets(family, results),
            "",
        ]
    lc_common.emit(args.root, "export_phone", lines)


if __name__ == "__main__":
    main()
