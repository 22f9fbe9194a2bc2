"""Every script of examples/ runs as written on tiny data and writes what it says."""

import json
import subprocess
import sys

import pytest
from synthetic import make_idx_folder
from trainer_runs import ENV, REPO

pytestmark = pytest.mark.slow


def _run(script, *flags):
    return subprocess.run(
        [sys.executable, str(REPO / "examples" / script), *flags],
        cwd=REPO,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_lc_cnn_to_int8_exports_the_dense_and_lc_nets(tmp_path):
    data = make_idx_folder(tmp_path / "data")
    result = _run(
        "lc_cnn_to_int8.py", f"--workdir={tmp_path / 'w'}", f"--data={data}",
        "--epochs=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    export = json.loads((tmp_path / "w" / "export" / "export.json").read_text())
    assert set(export["models"]) == {"dense", "lc"}
    for entry in export["models"].values():
        assert set(entry["formats"]) == {"float32", "int8"}


def test_analysis_report_writes_the_report(tmp_path):
    data = make_idx_folder(tmp_path / "data")
    result = _run(
        "analysis_report.py", f"--workdir={tmp_path / 'w'}", f"--data={data}",
        "--epochs=1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("report.md", "report.html", "spectra.png"):
        assert (tmp_path / "w" / "analysis" / name).is_file()


@pytest.mark.parametrize("method", ["prox", "dlra"])
def test_compress_in_fit_exports_the_compressed_model(tmp_path, method):
    data = make_idx_folder(tmp_path / "data")
    result = _run(
        "compress_in_fit.py", f"--workdir={tmp_path / 'w'}", f"--data={data}",
        f"--method={method}", "--epochs=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    fitted, compressed = result.stdout.strip().splitlines()[-2:]
    assert fitted.startswith("fitted: ") and compressed.startswith(f"{method}: ")
    assert (tmp_path / "w" / "model.tflite").stat().st_size > 0
    assert len((tmp_path / "w" / "history.csv").read_text().splitlines()) == 3
