"""Pages of docs/ rendered from the code: written, or checked to be current."""

import pathlib
import sys


def write_or_check(path: pathlib.Path, text: str, module: str) -> None:
    """Writes `text` to `path`; with ``--check`` exits 1 when the file differs.

    Args:
        path: The page.
        text: What the code renders.
        module: The module that renders it, named in the stale message.
    """
    if sys.argv[1:] == ["--check"]:
        current = path.read_text() if path.is_file() else ""
        if current != text:
            sys.exit(f"{path} is stale: run python -m {module}")
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"wrote {path}")
