"""Imports go only downward: core < layers, data, models, plots < training <
methods (dlra, lc, prox) < analysis, export; no package imports a sibling."""

import ast
import pathlib

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent

LEVELS = {
    "core": 0,
    "layers": 1,
    "data": 1,
    "models": 1,
    "plots": 1,
    "training": 2,
    "dlra": 3,
    "lc": 3,
    "prox": 3,
    "analysis": 4,
    "export": 4,
}
"""The floor of each part of keras_rank: it may import only lower floors."""

FACADE = "__init__"
"""keras_rank/__init__.py: the public face, above every part."""


def _part(module: str) -> str | None:
    """The part of a dotted keras_rank module name, e.g. keras_rank.lc.run -> lc."""
    names = module.split(".")
    if names[0] != "keras_rank":
        return None
    return names[1] if len(names) > 1 else FACADE


def _imported(tree: ast.AST, package: str) -> set[str]:
    """Every module an AST imports (function-level imports too), made absolute."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0]
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module
            # `from keras_rank import lc` imports the sub-package lc; a name
            # that is no module is the facade's (`_check` tells which).
            if module != "keras_rank":
                found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def import_violations(root: pathlib.Path) -> list[str]:
    """Returns one line per import in `root`/keras_rank that goes up or sideways."""
    problems = []
    parts_found = {
        path.stem
        for path in (root / "keras_rank").iterdir()
        if path.suffix in ("", ".py")
    }
    for path in sorted((root / "keras_rank").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        module = ".".join(parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        source = _part(module.removesuffix(".__init__"))
        if source == FACADE:
            continue
        if source not in LEVELS:
            problems.append(f"{path.relative_to(root)}: part {source!r} has no floor")
            continue
        tree = ast.parse(path.read_text(), str(path))
        for target in sorted(_imported(tree, package)):
            if target.split(".")[0] in ("trainers", "tuning", "benchmarks", "tests"):
                problems.append(f"{module} imports {target} (outside the library)")
            part = _part(target)
            if part is None or part == source:
                continue
            if part not in LEVELS:
                if part not in parts_found:
                    problems.append(f"{module} imports {target} from the facade")
                continue
            if LEVELS[part] >= LEVELS[source]:
                way = "sideways" if LEVELS[part] == LEVELS[source] else "up"
                problems.append(
                    f"{module} imports {target} ({way}: {source} -> {part})"
                )
    return problems


def test_keras_rank_imports_only_downward():
    assert import_violations(REPO) == []


def _tree(tmp_path, files: dict[str, str]) -> pathlib.Path:
    for name, text in files.items():
        path = tmp_path / "keras_rank" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"training/unit_history.py": "from keras_rank.analysis import units\n"},
            "keras_rank.training.unit_history imports keras_rank.analysis (up",
        ),
        (
            {"prox/run.py": "def f():\n    from keras_rank.lc import c_step\n"},
            "keras_rank.prox.run imports keras_rank.lc (sideways: prox -> lc)",
        ),
        (
            {"core/costs.py": "from keras_rank import layers\n"},
            "keras_rank.core.costs imports keras_rank.layers (up: core -> layers)",
        ),
        (
            {"lc/run.py": "from ..prox import operators\n"},
            "keras_rank.lc.run imports keras_rank.prox (sideways",
        ),
        ({"dlra/x.py": "import trainers.common\n"}, "outside the library"),
        ({"newpart/x.py": "import keras\n"}, "part 'newpart' has no floor"),
    ],
)
def test_planted_violations_are_found(tmp_path, files, expected):
    problems = import_violations(_tree(tmp_path, files))
    assert any(expected in problem for problem in problems), problems


def test_downward_and_inner_imports_pass(tmp_path):
    root = _tree(
        tmp_path,
        {
            "lc/run.py": "from keras_rank.core import costs\nfrom . import c_step\n",
            "analysis/run.py": "from keras_rank.training import run\nimport keras\n",
        },
    )
    assert import_violations(root) == []


def test_a_name_from_the_facade_is_a_violation(tmp_path):
    root = _tree(tmp_path, {"lc/run.py": "from keras_rank import ConfigError\n"})
    assert import_violations(root) == [
        "keras_rank.lc.run imports keras_rank.ConfigError from the facade"
    ]
