r"""Every command line against bad input: one line, exit 2, nothing written.

    python benchmarks/bad_inputs.py              # run the table, write the block
    python benchmarks/bad_inputs.py --list       # print the cases only
    python benchmarks/bad_inputs.py --commands lc prox   # some entry points

The cases come from the settings themselves (`trainers.commands.COMMANDS`,
every flag of every entry point), so a new flag is covered when it is
declared: a word for a number, a fraction for an integer, inf and nan for a
float, each side of its bounds, a value outside its choices, a word for a
boolean, a missing file for a path. To those the command-line cases of every
entry point (an unknown flag, a stray argument, a flag without its value)
and the files a user gets wrong (a text file named .keras, a subclassed
model, a work directory that is a file or lies under one, LC's reference of
another net, prox's reload after the last epoch).

Each case runs the real entry point in a subprocess on a tiny dataset
(600 images, one epoch), so a case that is wrongly accepted ends quickly and
is reported as such. A case passes when the process exits with status 2,
its stderr holds exactly one line besides TensorFlow's own C++ log, with no
traceback, and the work directory was not created.

Writes <root>/bad_inputs.md (every case) and the summary between the
``bad-inputs`` markers of docs/results.md.
"""

import argparse
import concurrent.futures
import dataclasses
import pathlib
import re
import subprocess
import sys
import tempfile

REPO = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from synthetic import make_idx_folder  # noqa: E402
from tuning_search import add_root_argument, replace_block  # noqa: E402

from keras_rank.core.settings import Setting  # noqa: E402
from keras_rank.training.config import TrainConfig  # noqa: E402
from trainers.commands import COMMANDS, module_of  # noqa: E402
from trainers.common import flag_settings  # noqa: E402

DEFAULT_ROOT = REPO / "runs" / "bad_inputs"
RESULTS_DOC = REPO / "docs" / "results.md"
BLOCK = "bad-inputs"
# Flags every case of a command gets (a valid run but for the one bad flag).
TRAINING = ("--data={data}", "--model=lenet300", "--epochs=1")
BASE_FLAGS = {
    "baseline": TRAINING,
    "dlra": TRAINING,
    "lc": TRAINING,
    "prox": TRAINING,
    "export": ("--model_path={good}",),
    "analyze": ("--model_path={good}",),
    "search": (*TRAINING, "--max_trials=1"),
}
PATH_FLAGS = ("data", "model_path", "reference", "baseline_path")
NOT_CASES = ("workdir", "tf_logs")
_NATIVE_LOG = re.compile(
    r"^[IWEF]\d{4} \d\d:\d\d:|^WARNING: All log messages before absl"
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One bad command line: the entry point, its flags and what is wrong."""

    command: str
    flags: tuple[str, ...]
    what: str


def _outside(item: Setting) -> list[tuple[str, str]]:
    """Values just outside `item`'s bounds, each with what it tests."""
    bounds, values = item.bounds, []
    step = 1 if item.kind is int else 0.5
    if bounds.low is not None:
        low = bounds.low - step if bounds.low_closed else bounds.low
        values.append((_text(low, item.kind), "below its bounds"))
    if bounds.high is not None:
        high = bounds.high + step if bounds.high_closed else bounds.high
        values.append((_text(high, item.kind), "above its bounds"))
    return values


def _text(value: float, kind: type) -> str:
    return str(int(value)) if kind is int else f"{value:g}"


def setting_cases(command: str, item: Setting) -> list[Case]:
    """The bad values of one flag."""
    values: list[tuple[str, str]] = []
    if item.kind is bool:
        values.append(("maybe", "a word for a boolean"))
    elif item.choices is not None:
        values.append(("no_such_choice", "a value outside its choices"))
    elif item.kind in (int, float):
        values.append(("abc", "a word for a number"))
        if item.kind is int:
            values.append(("1.5", "a fraction for an integer"))
        else:
            values += [("inf", "infinity"), ("nan", "nan")]
        if item.bounds is not None:
            values += _outside(item)
    elif item.name in PATH_FLAGS:
        values.append(("{missing}", "a missing file"))
    cases = []
    for value, what in values:
        if item.many and not item.repeated and item.kind is not bool:
            value = f"1,{value}" if item.kind in (int, float) else value
        flag = f"--{item.flag}={value}"
        cases.append(Case(command, (flag,), f"--{item.flag}: {what}"))
    return cases


def command_cases(command: str) -> list[Case]:
    """Flag-parsing cases every entry point must refuse."""
    return [
        Case(command, ("--bogus=1",), "an unknown flag"),
        Case(command, ("stray",), "a stray argument"),
        Case(command, ("--workdir",), "a flag without its value"),
        Case(command, ("--workdir={file}",), "a work directory that is a file"),
        Case(command, ("--workdir={file}/sub",), "a work directory under a file"),
    ]


def file_cases() -> list[Case]:
    """The model files a user gets wrong, and the cross-flag mistakes."""
    cases = []
    for command in ("baseline", "dlra", "lc", "prox", "export", "analyze", "search"):
        flag = "--reference" if command == "lc" else "--model_path"
        for name, what in (
            ("fake", "a text file named .keras"),
            ("subclassed", "a subclassed model"),
            ("h5", "a file that is not .keras"),
        ):
            cases.append(Case(command, (f"{flag}={{{name}}}",), f"{flag}: {what}"))
    cases.append(
        Case("lc", ("--model=mlp", "--reference={good}"), "--reference of another net")
    )
    cases.append(Case("prox", ("--reload_epoch=5",), "--reload_epoch after the last"))
    return cases


def all_cases() -> list[Case]:
    """Every case of every entry point.

    The training flags (`TrainConfig`'s) are parsed by the same code for
    every trainer: their values are tried on `trainers.baseline` only.
    """
    cases = []
    for command, spec in COMMANDS.items():
        cases += command_cases(command)
        configs = spec.configs if command == "baseline" else spec.configs[1:]
        if spec.configs[0] is not TrainConfig:
            configs = spec.configs
        for item in flag_settings(*configs):
            if item.name not in NOT_CASES:
                cases += setting_cases(command, item)
    return cases + file_cases()


def _files(folder: pathlib.Path) -> dict[str, str]:
    """The inputs the cases name: the tiny data, good and bad model files."""
    import keras
    import numpy as np

    from keras_rank import models

    data = make_idx_folder(folder / "data")
    good = folder / "good.keras"
    models.build_model("lenet300", (28, 28, 1), 10).save(good)

    class MyNet(keras.Model):
        def call(self, x):
            return keras.ops.reshape(x, (-1, 784))[:, :10]

    subclassed = MyNet()
    subclassed(np.zeros((1, 28, 28, 1), "float32"))
    subclassed.save(folder / "subclassed.keras")
    (folder / "fake.keras").write_text("not a zip")
    (folder / "model.h5").write_text("")
    (folder / "a_file").write_text("")
    return {
        "data": str(data),
        "good": str(good),
        "subclassed": str(folder / "subclassed.keras"),
        "fake": str(folder / "fake.keras"),
        "h5": str(folder / "model.h5"),
        "file": str(folder / "a_file"),
        "missing": str(folder / "missing" / "nothing.keras"),
    }


@dataclasses.dataclass
class Outcome:
    """What one case did."""

    case: Case
    exit_code: int
    lines: list[str]
    wrote: bool

    @property
    def passed(self) -> bool:
        return (
            self.exit_code == 2
            and len(self.lines) == 1
            and not self.wrote
            and "Traceback" not in self.lines[0]
        )


def run_case(case: Case, files: dict[str, str], workdir: pathlib.Path) -> Outcome:
    """Runs one case in a fresh process; `workdir` must stay absent."""
    flags = [flag.format(**files) for flag in case.flags]
    named = {flag.split("=")[0] for flag in flags}
    base = [
        flag.format(**files)
        for flag in BASE_FLAGS[case.command]
        if flag.split("=")[0] not in named
    ]
    if not any(flag.startswith("--workdir") for flag in flags):
        base.append(f"--workdir={workdir}")
    if named & {"--model_path", "--reference"}:  # the file is the model
        base = [flag for flag in base if not flag.startswith("--model=")]
    command = [sys.executable, "-m", module_of(case.command), *base, *flags]
    try:
        done = subprocess.run(
            command, cwd=REPO, capture_output=True, text=True, timeout=300
        )
        code, stderr = done.returncode, done.stderr
    except subprocess.TimeoutExpired as error:
        code, stderr = -1, (error.stderr or b"").decode(errors="replace")
    lines = [
        line
        for line in stderr.splitlines()
        if line.strip() and not _NATIVE_LOG.match(line)
    ]
    return Outcome(case, code, lines, workdir.exists())


def _row(outcome: Outcome) -> str:
    case = outcome.case
    shown = outcome.lines[-1] if outcome.lines else "(nothing)"
    shown = shown.replace("|", "\\|")[:160]
    flags = " ".join(case.flags).replace("|", "\\|")
    verdict = "ok" if outcome.passed else "FAILED"
    return (
        f"| {case.command} | `{flags}` | {case.what} | {outcome.exit_code} "
        f"| {len(outcome.lines)} | {'yes' if outcome.wrote else 'no'} "
        f"| {verdict} | {shown} |"
    )


def summary(outcomes: list[Outcome]) -> str:
    """The results block: counts per entry point and every failed case."""
    lines = [
        "Every entry point against bad input (`python benchmarks/bad_inputs.py`; "
        "cases generated from the declared settings, see its docstring). A case "
        "passes when the run exits with status 2, prints one line and no "
        "traceback, and creates no work directory.",
        "",
        "| entry point | cases | one line, exit 2, nothing written | failed |",
        "| --- | --- | --- | --- |",
    ]
    for command in COMMANDS:
        mine = [o for o in outcomes if o.case.command == command]
        passed = sum(o.passed for o in mine)
        lines.append(f"| {command} | {len(mine)} | {passed} | {len(mine) - passed} |")
    passed = sum(o.passed for o in outcomes)
    lines.append(f"| all | {len(outcomes)} | {passed} | {len(outcomes) - passed} |")
    failed = [o for o in outcomes if not o.passed]
    if failed:
        lines += ["", "Failed cases:", "", *_table_head(), *map(_row, failed)]
    return "\n".join(lines)


def _table_head() -> list[str]:
    return [
        "| entry point | flags | what is wrong | exit | lines | wrote | verdict "
        "| last line |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_root_argument(parser, DEFAULT_ROOT)
    parser.add_argument("--list", action="store_true", help="print the cases only")
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once")
    parser.add_argument(
        "--commands",
        nargs="+",
        choices=tuple(COMMANDS),
        default=list(COMMANDS),
        help="entry points to try (all: the results block is rewritten)",
    )
    args = parser.parse_args()
    cases = [case for case in all_cases() if case.command in args.commands]
    if args.list:
        for case in cases:
            print(case.command, " ".join(case.flags), "#", case.what)
        print(f"{len(cases)} cases")
        return
    args.root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        scratch = pathlib.Path(folder)
        files = _files(scratch)
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            outcomes = []
            for outcome in pool.map(
                lambda index: run_case(cases[index], files, scratch / f"w{index}"),
                range(len(cases)),
            ):
                outcomes.append(outcome)
                print(_row(outcome), flush=True)
    block = summary(outcomes)
    table = "\n".join([*_table_head(), *map(_row, outcomes)])
    (args.root / "bad_inputs.md").write_text(f"{block}\n\nEvery case:\n\n{table}\n")
    if set(args.commands) == set(COMMANDS):
        RESULTS_DOC.write_text(replace_block(RESULTS_DOC.read_text(), BLOCK, block))
    print(block)
    if not all(outcome.passed for outcome in outcomes):
        sys.exit(1)


if __name__ == "__main__":
    main()
