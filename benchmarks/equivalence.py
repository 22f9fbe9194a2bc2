r"""Proof that a refactor kept behaviour: fixed-seed runs of every entry point.

    python benchmarks/equivalence.py record --out=/tmp/equiv/before
    ... refactor ...
    python benchmarks/equivalence.py record --out=/tmp/equiv/after
    python benchmarks/equivalence.py compare /tmp/equiv/before /tmp/equiv/after

`record` runs small fixed-seed runs of every trainer (baseline, dlra, lc, prox,
export, analyze) on a small synthetic IDX dataset, as subprocesses with the
flags a user types, and writes `manifest.json`: per run, the SHA-256 of every
weight array of every `.keras` file it saved, and every number of its JSON
results except wall times and latencies (which no seed fixes).

`compare` exits 1 unless every weight array is bit-identical and every
recorded number of a run is found again in the same run's numbers after.
Numbers are matched as a multiset of values, not by JSON path, so a results
layout that moves or renames entries still compares; a value converted (a
percentage made a fraction, say) must be listed in `CONVERTED` to count.
"""

import argparse
import collections
import hashlib
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

TINY = ("--epochs=2", "--batch_size=32", "--verbose=0", "--seed=3")

RUNS = {
    "baseline": ("baseline", "--model=lenet300", *TINY, "--record_units=dense_1"),
    "dlra": ("dlra", "--model=mlp", *TINY, "--search_every=2", "--tau_cos=0.05"),
    "lc": (
        "lc",
        "--model=lenet5",
        *TINY,
        "--lambda=1e-4",
        "--lc_steps=2",
        "--finetune_epochs=1",
    ),
    "prox": ("prox", "--model=lenet300", *TINY, "--tau=3", "--energy=90,100"),
}
"""Training runs: the trainer module and its flags (each gets --data, --workdir)."""

DERIVED = {
    "export": (
        "export",
        "--model_path=DLRA={dlra}/model.keras",
        "--baseline_path={baseline}/model.keras",
        "--formats=float32,int8",
        "--representative_examples=50",
        "--latency_invocations=2",
        "--latency_rounds=1",
        "--verbose=0",
    ),
    "analyze": (
        "analyze",
        "--model_path={baseline}/model.keras",
        "--prune_units=0,50%",
        "--random_seeds=2",
        "--verbose=0",
    ),
}
"""Runs on the trained models: the trainer module and flags ({run} is its workdir)."""

UNSEEDED = ("time", "latency", "_s", "_us", "seconds", "bytes_written")
"""A number whose JSON key contains one of these is not compared."""


def _flat_numbers(value, key=""):
    """Yields (key, number) for every number in a JSON value, keys of dicts kept."""
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _flat_numbers(item, str(name))
    elif isinstance(value, list):
        for item in value:
            yield from _flat_numbers(item, key)
    elif isinstance(value, bool):
        return
    elif isinstance(value, int | float):
        yield key, value


def _numbers(folder: pathlib.Path) -> list[float]:
    """Every seeded number of every JSON file under `folder` but configs."""
    numbers = []
    for path in sorted(folder.rglob("*.json")):
        if path.name in ("config.json", "state.json") or "checkpoints" in path.parts:
            continue
        for key, number in _flat_numbers(json.loads(path.read_text())):
            if not any(part in key for part in UNSEEDED):
                numbers.append(round(float(number), 12))
    return numbers


def _weight_hashes(folder: pathlib.Path) -> dict[str, list[str]]:
    """SHA-256 of every weight array of every .keras file under `folder`."""
    import keras

    import keras_rank  # noqa: F401  (registers the layers)

    hashes = {}
    for path in sorted(folder.rglob("*.keras")):
        if "checkpoints" in path.parts:
            continue
        model = keras.saving.load_model(path, compile=False)
        hashes[str(path.relative_to(folder))] = [
            hashlib.sha256(weight.tobytes()).hexdigest()
            for weight in model.get_weights()
        ]
    return hashes


def _run(trainer: str, flags: list[str]) -> None:
    command = [sys.executable, "-m", f"trainers.{trainer}", *flags]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")


def record(out: pathlib.Path) -> None:
    """Runs every entry point into `out` and writes `out/manifest.json`."""
    from synthetic import make_idx_folder

    data = make_idx_folder(out / "data", train=800, test=200)
    folders = {name: out / name for name in (*RUNS, *DERIVED)}
    for name, (trainer, *flags) in RUNS.items():
        print(f"{name} ...", flush=True)
        _run(trainer, [*flags, f"--data={data}", f"--workdir={folders[name]}"])
    for name, (trainer, *flags) in DERIVED.items():
        print(f"{name} ...", flush=True)
        filled = [flag.format(**folders) for flag in flags]
        if trainer == "export":
            filled.append(f"--data={data}")
        _run(trainer, [*filled, f"--workdir={folders[name]}"])
    manifest = {
        name: {
            "weights": _weight_hashes(folder),
            "numbers": _numbers(folder),
        }
        for name, folder in folders.items()
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"wrote {out / 'manifest.json'}")


def compare(before: pathlib.Path, after: pathlib.Path) -> int:
    """Prints every difference between two manifests; returns the exit status."""
    old = json.loads((before / "manifest.json").read_text())
    new = json.loads((after / "manifest.json").read_text())
    problems = []
    for run, entry in old.items():
        if run not in new:
            problems.append(f"{run}: missing after")
            continue
        for path, hashes in entry["weights"].items():
            if new[run]["weights"].get(path) != hashes:
                problems.append(f"{run}: weights of {path} differ or are missing")
        missing = collections.Counter(entry["numbers"]) - collections.Counter(
            new[run]["numbers"]
        )
        if missing:
            sample = sorted(missing)[:8]
            problems.append(
                f"{run}: {sum(missing.values())} numbers not found after, e.g. {sample}"
            )
    for problem in problems:
        print(problem)
    runs = len(old)
    models = sum(len(entry["weights"]) for entry in old.values())
    numbers = sum(len(entry["numbers"]) for entry in old.values())
    print(
        f"{runs} runs, {models} model files, {numbers} numbers: "
        + ("identical" if not problems else f"{len(problems)} differences")
    )
    return 1 if problems else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    record_parser = commands.add_parser("record", help="run every entry point")
    record_parser.add_argument("--out", type=pathlib.Path, required=True)
    compare_parser = commands.add_parser("compare", help="compare two records")
    compare_parser.add_argument("before", type=pathlib.Path)
    compare_parser.add_argument("after", type=pathlib.Path)
    args = parser.parse_args()
    if args.command == "record":
        record(args.out)
    else:
        sys.exit(compare(args.before, args.after))


if __name__ == "__main__":
    main()
