"""Every Python snippet of the README and docs/ runs as written.

The snippets of one page run in order, in one fresh process (a page's later
snippet may use what an earlier one made), from a folder whose
``data/fashion_mnist`` is a tiny IDX set: the snippets name that folder, as
in the repository's root, so they run as written there on the real data.
"""

import os
import re
import subprocess
import sys

import pytest
from synthetic import make_idx_folder
from trainer_runs import REPO

pytestmark = pytest.mark.slow

# docs/api.md holds signatures, not code to run.
SKIPPED = {"docs/api.md"}
PAGES = sorted(
    str(path.relative_to(REPO))
    for path in [REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    if str(path.relative_to(REPO)) not in SKIPPED
)
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


def snippets(page: str) -> list[str]:
    """The Python code blocks of a page, in order."""
    return SNIPPET.findall((REPO / page).read_text())


def test_the_pages_hold_snippets():
    assert sum(len(snippets(page)) for page in PAGES) >= 10


@pytest.mark.parametrize("page", [page for page in PAGES if snippets(page)])
def test_snippets_run_as_written(page, tmp_path):
    make_idx_folder(tmp_path / "data" / "fashion_mnist", train=300, test=100)
    code = "\n\n".join(snippets(page))
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": str(REPO),
        "MPLBACKEND": "Agg",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, f"{page}:\n{result.stderr[-3000:]}"
