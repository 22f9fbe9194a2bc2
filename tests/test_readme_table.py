"""The README's results table is rendered from results.json summary blocks."""

import json
import sys

import pytest
from trainer_runs import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import readme_table  # noqa: E402


def _write(folder, accuracy, params, flops, epochs=5):
    folder.mkdir(parents=True)
    summary = {
        "method": "x",
        "test_accuracy": accuracy,
        "best_val_accuracy": None,
        "epochs": epochs,
        "deployable": {"params": params, "flops_mac1": flops, "flops_mac2": 2 * flops},
    }
    (folder / "results.json").write_text(json.dumps({"summary": summary, "more": 1}))


ROWS = (
    readme_table.Row("net", "dense", "dense", "dense", "a.py"),
    readme_table.Row("net", "small", "method/lambda_1", "dense", "b.py"),
)


def test_table_reads_each_rows_summary_beside_its_reference(tmp_path):
    _write(tmp_path / "dense", 0.9, 1000, 400, epochs=30)
    _write(tmp_path / "method" / "lambda_1", 0.8912, 250, 100, epochs=55)
    lines = readme_table.table(tmp_path, ROWS).splitlines()
    assert lines[0] == readme_table.HEADER.splitlines()[0]
    assert lines[2:] == [
        "| net | dense | 30 | 90.00 (90.00) | 1,000 | 1.000 |",
        "| net | small | 55 | 89.12 (90.00) | 250 | 0.250 |",
    ]


def test_missing_runs_are_named_with_their_benchmark(tmp_path):
    _write(tmp_path / "dense", 0.9, 1000, 400)
    with pytest.raises(SystemExit, match=r"method/lambda_1 \(python benchmarks/b.py\)"):
        readme_table.table(tmp_path, ROWS)


def test_the_readme_holds_one_table_between_the_markers():
    readme = (REPO / "README.md").read_text()
    assert readme.count(readme_table.BEGIN) == readme.count(readme_table.END) == 1
    replaced = readme_table.replace_table(readme, "NEW")
    assert f"{readme_table.BEGIN}\nNEW\n{readme_table.END}" in replaced
    before = readme.split(readme_table.BEGIN)[0]
    after = readme.split(readme_table.END)[1]
    assert replaced.startswith(before) and replaced.endswith(after)
