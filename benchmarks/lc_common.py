"""Shared by the LC benchmarks: trainer runs under --root, tables, target lines.

Every trainer run lives in a work directory of its own under --root. A
finished run (its results.json) is read, not repeated; otherwise the trainer
is run as a subprocess, which starts the run or resumes it. An LC run starts
from a reference net trained by `python -m trainers.baseline` in a work
directory of its own (passed as --reference), so that one reference serves
several LC runs; an LC work directory that trained its reference itself, or
used another file, is read as it is.

Settings: a setting given on the command line must equal the one recorded in
an existing run (`python -m trainers.lc` reuses a finished phase whatever its
flags say, so a silent mismatch would mislabel a table); a setting left out
is read from the run, or takes the script's default when there is no run.
"""

import argparse
import dataclasses
import json
import pathlib
import subprocess
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from setting_args import add_setting_argument

from keras_rank.core.settings import Setting, as_text, settings_of
from keras_rank.lc.config import LCConfig
from keras_rank.training.config import OPTIMIZER_FIELDS, TrainConfig
from trainers.commands import COMMANDS

REPO = pathlib.Path(__file__).resolve().parent.parent
DEFAULT_ROOT = REPO / "runs" / "bench_lc"
DEFAULT_DATA = REPO / "data" / "fashion_mnist"  # the trainers' default --data

# The settings a benchmark takes on its command line: their flags, types and
# help come from the configs' declarations (keras_rank.core.settings).
SETTINGS: dict[str, Setting] = {
    item.name: item
    for item in (*settings_of(TrainConfig), *settings_of(LCConfig))
    if item.name
    in (
        "epochs",
        "seed",
        "lambdas",
        "lc_steps",
        "epochs_per_l_step",
        "finetune_epochs",
        "finetune_learning_rate",
        "mu0",
        "mu_growth",
        "optimizer",
        "learning_rate",
        "momentum",
        "nesterov",
        "baselines",
    )
}
# The reference run's settings (trainers.baseline; the seed is shared).
REFERENCE_SETTINGS = ("epochs", "seed")
# The L steps as the paper trains them: Nesterov SGD; fine-tuning at a tenth
# of the rate (at the L steps' rate it undid what LC found: docs/design/lc.md).
SGD = {
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "momentum": 0.9,
    "nesterov": True,
    "finetune_learning_rate": 0.001,
}
# What an LC run records in lambda_<v>/lc/config.json, at the top level and
# under method.lc; all of it is passed on when missing λs are run.
_LC_TRAIN_KEYS = (
    "model",
    "data",
    "seed",
    "batch_size",
    "validation_fraction",
    *OPTIMIZER_FIELDS,
)
_LC_METHOD_KEYS = (
    "criterion",
    "conv_scheme",
    "mu0",
    "mu_growth",
    "lc_steps",
    "epochs_per_l_step",
    "tolerance",
    "min_rank",
)


def make_parser(description: str, defaults: dict[str, Any]) -> argparse.ArgumentParser:
    """Returns a parser of --root and of --<name> for every setting in `defaults`.

    A setting left out parses as None (see `requested_settings`); --root is
    made absolute, since the trainers run with the repository as their cwd.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--root",
        type=lambda text: pathlib.Path(text).resolve(),
        default=DEFAULT_ROOT,
        help=f"folder of the work directories (default: {DEFAULT_ROOT})",
    )
    for name, default in defaults.items():
        add_setting_argument(
            parser,
            SETTINGS[name],
            default=None,
            default_text=f"the run's under --root, else {default}",
        )
    return parser


def requested_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Returns the settings given on the command line."""
    return {
        name: value
        for name, value in vars(args).items()
        if name in SETTINGS and value is not None
    }


def read_json(path: pathlib.Path) -> dict[str, Any] | None:
    """Returns the JSON object in `path`, or None when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


def lambda_dir(workdir: pathlib.Path, lam: float) -> pathlib.Path:
    """Returns the folder of one lambda's LC run (as keras_rank.lc.run names it)."""
    return workdir / f"lambda_{lam:g}"


def _flags(module: str, name: str, value: Any) -> list[str]:
    """The flags of one setting of `python -m <module>` (booleans: --x / --nox).

    A repeated setting (export's --model_path) gives one flag per value.
    """
    command = COMMANDS[module.removeprefix("trainers.")]
    item = next(
        item
        for config_class in command.configs
        for item in settings_of(config_class)
        if item.name == name
    )
    if item.kind is bool and not item.many:
        return [f"--{item.flag}" if value else f"--no{item.flag}"]
    if item.repeated:
        return [f"--{item.flag}={one}" for one in value]
    return [f"--{item.flag}={as_text(item, value)}"]


def run_trainer(module: str, workdir: pathlib.Path, settings: dict[str, Any]) -> None:
    """Runs `python -m <module>` in `workdir`, `settings` as flags (None: none)."""
    command = [
        sys.executable,
        "-m",
        module,
        f"--workdir={workdir}",
        "--verbose=2",
        *(
            flag
            for name, value in settings.items()
            if value is not None
            for flag in _flags(module, name, value)
        ),
    ]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, cwd=REPO, check=True)


def _trainer_settings(workdir: pathlib.Path) -> dict[str, Any]:
    """The model, data, epochs and seed a trainer run recorded in config.json."""
    config = read_json(workdir / "config.json")
    keys = ("model", "data", "epochs", "seed")
    return {key: config[key] for key in keys} if config else {}


def _lc_settings(workdir: pathlib.Path) -> dict[str, Any]:
    """The settings an LC run recorded (its λs, reference file, LC phases)."""
    recorded = {}
    results = read_json(workdir / "results.json")
    if results:
        recorded["lambdas"] = [run["lambda"] for run in results["runs"]]
        source = results["reference"]["source"]
        if source.startswith("file:"):
            recorded["reference"] = source.removeprefix("file:")
    for path in sorted(workdir.glob("lambda_*/lc/config.json")):
        config = json.loads(path.read_text())
        recorded.update({key: config[key] for key in _LC_TRAIN_KEYS})
        recorded.update({key: config["method"]["lc"][key] for key in _LC_METHOD_KEYS})
        break
    for path in sorted(workdir.glob("lambda_*/finetune/config.json")):
        config = json.loads(path.read_text())
        recorded["finetune_epochs"] = config["epochs"]
        recorded["finetune_learning_rate"] = config["learning_rate"]
        break
    if results:
        recorded["baselines"] = all("baselines" in run for run in results["runs"])
    return recorded


def _resolve(
    workdir: pathlib.Path,
    requested: dict[str, Any],
    defaults: dict[str, Any],
    recorded: dict[str, Any],
) -> dict[str, Any]:
    """Requested, else recorded, else default; a requested != recorded stops."""
    conflicts = [
        f"{name}={value} (the run has {recorded[name]})"
        for name, value in requested.items()
        if name != "lambdas" and name in recorded and recorded[name] != value
    ]
    if conflicts:
        raise SystemExit(
            f"{workdir} holds a run with other settings: {', '.join(conflicts)}. "
            "Leave these flags out to read that run, or choose another --root."
        )
    return {**defaults, **recorded, **requested}


def trainer_results(
    module: str,
    workdir: pathlib.Path,
    requested: dict[str, Any],
    defaults: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Reads (or first runs) a `trainers.baseline`/`trainers.dlra` run.

    Returns:
        The run's results.json and the settings it ran with.
    """
    settings = _resolve(workdir, requested, defaults, _trainer_settings(workdir))
    if not (workdir / "results.json").is_file():
        run_trainer(module, workdir, settings)
    return read_json(workdir / "results.json"), settings


@dataclasses.dataclass(frozen=True)
class LCRun:
    """A finished `trainers.lc` run and its reference net.

    Attributes:
        workdir: The LC work directory.
        results: Its results.json, with "runs" in the order of the λs asked.
        settings: The settings it ran with.
        reference: Path of the reference .keras file.
        reference_results: The results.json of the run that trained the
            reference (None for a file that no trainer run holds).
        reference_settings: That run's model, data, epochs and seed.
    """

    workdir: pathlib.Path
    results: dict[str, Any]
    settings: dict[str, Any]
    reference: pathlib.Path
    reference_results: dict[str, Any] | None
    reference_settings: dict[str, Any]


def _reference_file(
    workdir: pathlib.Path, default: pathlib.Path, requested: dict[str, Any]
) -> tuple[pathlib.Path, bool]:
    """The .keras file of an LC run's reference, and whether the LC run trained it.

    In order: the LC run's own reference/ folder; the requested or recorded
    --reference file; `default`/model.keras.
    """
    if (workdir / "reference" / "config.json").is_file():
        return workdir / "reference" / "model.keras", True
    reference = requested.get("reference") or _lc_settings(workdir).get("reference")
    return (pathlib.Path(reference) if reference else default / "model.keras"), False


def lc_run(
    workdir: pathlib.Path,
    reference_dir: pathlib.Path,
    requested: dict[str, Any],
    defaults: dict[str, Any],
) -> LCRun:
    """Reads (or first runs) an LC run (criterion flops) and its reference.

    Args:
        workdir: The LC work directory.
        reference_dir: Where `trainers.baseline` trains the reference when
            the LC run has none yet.
        requested: Settings asked for; must hold "model".
        defaults: Settings of a new run.
    """
    reference, in_place = _reference_file(workdir, reference_dir, requested)
    reference_requested = {
        "model": requested["model"],
        **{k: requested[k] for k in REFERENCE_SETTINGS if k in requested},
    }
    if reference.parent == reference_dir:
        _, reference_settings = trainer_results(
            "trainers.baseline",
            reference_dir,
            reference_requested,
            {k: defaults[k] for k in REFERENCE_SETTINGS},
        )
    else:  # read as it is: trained by the LC run, or another run's file
        recorded = _trainer_settings(reference.parent)
        reference_settings = (
            _resolve(reference.parent, reference_requested, {}, recorded)
            if recorded
            else {}
        )
    lc_requested = {k: v for k, v in requested.items() if k != "epochs"}
    if in_place:  # the trainer's --epochs are its reference's
        lc_requested["epochs"] = reference_settings["epochs"]
    else:
        lc_requested["reference"] = str(reference)
    settings = _resolve(
        workdir,
        lc_requested,
        {k: v for k, v in defaults.items() if k != "epochs"},
        _lc_settings(workdir),
    )
    settings["lambdas"] = [float(lam) for lam in settings["lambdas"]]
    results = read_json(workdir / "results.json")
    done = {run["lambda"]: run for run in results["runs"]} if results else {}
    if any(lam not in done for lam in settings["lambdas"]):
        run_trainer("trainers.lc", workdir, {**settings, "criterion": "flops"})
        results = read_json(workdir / "results.json")
        done = {run["lambda"]: run for run in results["runs"]}
    return LCRun(
        workdir=workdir,
        results={**results, "runs": [done[lam] for lam in settings["lambdas"]]},
        settings=settings,
        reference=reference,
        reference_results=read_json(reference.parent / "results.json"),
        reference_settings=reference_settings,
    )


def _optimizer(settings: dict[str, Any]) -> str:
    text = f"{settings['optimizer']} lr {settings['learning_rate']:g}"
    if settings["optimizer"] == "sgd" and settings["momentum"]:
        text += f" momentum {settings['momentum']:g}"
        text += " Nesterov" if settings["nesterov"] else ""
    return text


def describe(run: LCRun) -> list[str]:
    """Returns two lines naming the reference and the LC run's settings."""
    settings, reference = run.settings, run.reference_settings
    trained = (
        f"{reference['model']}, {reference['epochs']} epochs, seed {reference['seed']}"
        if reference
        else "a trained file"
    )
    return [
        f"Reference: {run.reference} ({trained}), test error "
        f"{run.results['reference']['test_error']:.2f} %.",
        f"LC: {settings['model']}, data {settings.get('data', DEFAULT_DATA)}, "
        f"criterion FLOPs, {settings['lc_steps']} LC steps x "
        f"{settings['epochs_per_l_step']} epoch(s), mu0 {settings['mu0']:g}, mu "
        f"growth {settings['mu_growth']:g}, {_optimizer(settings)}; fine-tuning "
        f"{settings['finetune_epochs']} epochs at lr "
        f"{settings.get('finetune_learning_rate') or settings['learning_rate']:g}; "
        "baselines "
        f"{'on' if settings['baselines'] else 'off'}; seed {settings['seed']}.",
    ]


# ------------------------------------------------------------------- tables
def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """Returns the lines of a markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def format_ranks(ranks: dict[str, Any]) -> str:
    """Returns ranks per layer as "[35, 16, 9 (dense)]"."""
    return "[" + ", ".join(str(rank) for rank in ranks.values()) + "]"


def _loss(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def last_train_loss(results: dict[str, Any] | None) -> float | None:
    """Returns the training loss of a trainer run's last epoch, if there is one."""
    return results["history"][-1]["loss"] if results else None


LC_TABLE_HEADER = (
    "net",
    "λ",
    "ranks",
    "FLOPs",
    "params",
    "ρ_FLOPs",
    "ρ_storage",
    "train loss",
    "test error % before FT",
    "test error %",
    "Δ vs R (pt)",
)
LC_TABLE_NOTES = (
    "FLOPs: multiply-adds per example of the weight products (1 per MAC); params "
    "include biases; ρ = reference / compressed. Baselines 1 and 2 are the "
    "heuristic ranks at the LC net's cost, fine-tuned like it. train loss: mean "
    "cross-entropy over the last training epoch (fine-tuning for the compressed "
    "nets); FT = fine-tuning."
)


def lc_table(results: dict[str, Any], reference_train_loss: float | None) -> list[str]:
    """Returns the Table-1-like rows: reference, then LC and both baselines per λ."""
    reference = results["reference"]
    rows = [
        [
            "reference",
            "-",
            "full",
            f"{reference['flops']:,}",
            f"{reference['params']:,}",
            "1.00",
            "1.00",
            _loss(reference_train_loss),
            "-",
            f"{reference['test_error']:.2f}",
            "0.00",
        ]
    ]
    for run in results["runs"]:
        entries = [("LC", run)] + [
            (f"baseline {name[-1]}", run["baselines"][name])
            for name in ("baseline2", "baseline1")
            if name in run.get("baselines", {})
        ]
        rows += [
            [
                label,
                f"{run['lambda']:g}",
                format_ranks(entry["ranks"]),
                f"{entry['flops']:,}",
                f"{entry['params']:,}",
                f"{entry['rho_flops']:.2f}",
                f"{entry['rho_storage']:.2f}",
                _loss(entry["train_loss"]),
                f"{entry['test_error_before_finetune']:.2f}",
                f"{entry['test_error']:.2f}",
                f"{entry['test_error'] - reference['test_error']:+.2f}",
            ]
            for label, entry in entries
        ]
    return markdown_table(LC_TABLE_HEADER, rows)


def lc_report(run: LCRun) -> list[str]:
    """Returns the run's settings and its Table-1-like table."""
    return [
        *describe(run),
        "",
        *lc_table(run.results, last_train_loss(run.reference_results)),
        "",
    ]


PAPER_HEADER = (
    "λ ×1e-3",
    "ranks",
    "FLOPs",
    "params",
    "log L",
    "train error %",
    "test error %",
    "Δ vs R (pt)",
    "ρ_FLOPs",
    "ρ_storage",
)


def paper_table(rows: Sequence[tuple]) -> list[str]:
    """Returns the paper's rows (λ, ranks, FLOPs, params, log L, errors, ρ).

    The first row is the reference; Δ is each row's test error minus its.
    """
    reference_error = rows[0][6]
    return markdown_table(
        PAPER_HEADER,
        (
            [*row[:6], f"{row[6]:.2f}", f"{row[6] - reference_error:+.2f}", *row[7:]]
            for row in rows
        ),
    )


def target_line(label: str, met: bool, detail: str) -> str:
    """Returns "- <label>: met|MISSED (<detail>)"."""
    return f"- {label}: {'met' if met else 'MISSED'} ({detail})"


def baseline_targets(results: dict[str, Any], which: str, label: str) -> list[str]:
    """Per λ: whether LC's test error is below the baseline's, with the numbers."""
    if not all("baselines" in run for run in results["runs"]):
        return [f"- {label}: not measured (the run was made with --nobaselines)"]
    lines = []
    for run in results["runs"]:
        base = run["baselines"][which]
        lines.append(
            target_line(
                label,
                run["test_error"] < base["test_error"],
                f"λ={run['lambda']:g}: LC {run['test_error']:.2f} % at ρ_FLOPs "
                f"{run['rho_flops']:.2f}, {which} {base['test_error']:.2f} % at "
                f"ρ_FLOPs {base['rho_flops']:.2f}",
            )
        )
    return lines


def emit(root: pathlib.Path, name: str, lines: list[str]) -> None:
    """Prints the lines and writes them to <root>/<name>.md."""
    text = "\n".join(lines)
    print(text)
    root.mkdir(parents=True, exist_ok=True)
    (root / f"{name}.md").write_text(text + "\n")
