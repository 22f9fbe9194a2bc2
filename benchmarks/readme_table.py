r"""Writes the README's results table from the summary blocks of results files.

    python benchmarks/readme_table.py            # rewrite the table in README.md
    python benchmarks/readme_table.py --print    # print it only

Every row is one results.json (its `summary`, keras_rank.training.summary)
of the runs the benchmarks write under --root, beside the dense reference it
is compared with. A run that is missing is named with the benchmark that
makes it; nothing is trained here.
"""

import argparse
import json
import pathlib
import sys
from typing import Any, NamedTuple

REPO = pathlib.Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- results-table:begin -->", "<!-- results-table:end -->"


class Row(NamedTuple):
    """One row: what it shows, its results file and its dense reference's."""

    model: str
    label: str
    results: str
    reference: str
    made_by: str


ROWS = (
    Row("paper MLP", "dense", "bench_prox/mlp30_dense", "bench_prox/mlp30_dense",
        "prox_tradeoff.py --parts methods"),
    Row("paper MLP", "DLRA, lambda1 = 20", "bench_prox/mlp30_dlra",
        "bench_prox/mlp30_dense", "prox_tradeoff.py --parts methods"),
    Row("paper MLP", "LC, lambda = 1e-5", "bench_prox/mlp30_lc/lambda_1e-05",
        "bench_prox/mlp30_dense", "prox_tradeoff.py --parts methods"),
    Row("paper MLP", "LC, lambda = 1e-5", "bench_lc/mlp/lambda_1e-05",
        "bench_prox/mlp30_dense", "lc_lenet300.py --parts mlp"),
    Row("paper MLP", "prox, tau = 2, 90 % energy", "bench_prox/mlp30_prox/energy_90",
        "bench_prox/mlp30_dense", "prox_tradeoff.py --parts methods"),
    Row("LeNet300 (tanh)", "LC, lambda = 3e-5", "bench_lc/lenet300/lambda_3e-05",
        "bench_lc/lenet300_reference", "lc_lenet300.py --parts lenet300"),
    Row("LeNet5", "DLRA, lambda1 = 20", "reproduce/lenet5_+DLRA_seed0_15ep",
        "reproduce/lenet5_baseline_seed0_15ep",
        "dlra_reproduce.py --parts lenet5 --side_epochs 15"),
    Row("LeNet5", "LC, lambda = 1e-5, scheme 2", "bench_lc/lenet5_scheme2/lambda_1e-05",
        "bench_lc/lenet5_reference", "lc_lenet5.py"),
    Row("LeNet5", "prox, tau = 3, 100 % energy", "bench_prox/lenet5_tau3/energy_100",
        "bench_prox/lenet5_tau0", "prox_tradeoff.py --parts lenet5"),
)  # fmt: skip

HEADER = (
    "| model | method, setting | epochs in all | test acc % (dense reference) "
    "| deployable params | FLOPs |\n| --- | --- | --- | --- | --- | --- |"
)


def summary_of(path: pathlib.Path) -> dict[str, Any]:
    """The summary block of a run folder's results.json."""
    summary = json.loads((path / "results.json").read_text())["summary"]
    if isinstance(summary, list):  # LC's top level: one per lambda
        raise SystemExit(f"{path}: pick one lambda's folder, not the LC run's top")
    return summary


def table(root: pathlib.Path, rows: tuple[Row, ...] = ROWS) -> str:
    """Returns the Markdown table of `rows` read under `root`."""
    missing = [
        f"{root / part} (python benchmarks/{row.made_by})"
        for row in rows
        for part in (row.results, row.reference)
        if not (root / part / "results.json").is_file()
    ]
    if missing:
        raise SystemExit("missing runs:\n  " + "\n  ".join(dict.fromkeys(missing)))
    lines = [HEADER]
    for row in rows:
        run, dense = summary_of(root / row.results), summary_of(root / row.reference)
        flops = run["deployable"]["flops_mac1"] / dense["deployable"]["flops_mac1"]
        lines.append(
            f"| {row.model} | {row.label} | {run['epochs']} | "
            f"{100 * run['test_accuracy']:.2f} ({100 * dense['test_accuracy']:.2f}) | "
            f"{run['deployable']['params']:,} | {flops:.3f} |"
        )
    return "\n".join(lines)


def replace_table(readme: str, text: str) -> str:
    """Returns `readme` with the text between the markers replaced by `text`."""
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return f"{readme[:start]}\n{text}\n{readme[end:]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=pathlib.Path, default=REPO / "runs", help="runs folder"
    )
    parser.add_argument("--readme", type=pathlib.Path, default=REPO / "README.md")
    parser.add_argument("--print", action="store_true", help="print, do not write")
    args = parser.parse_args()
    text = table(args.root)
    if args.print:
        print(text)
        return
    args.readme.write_text(replace_table(args.readme.read_text(), text))
    print(f"wrote the table of {args.readme}", file=sys.stderr)


if __name__ == "__main__":
    main()
