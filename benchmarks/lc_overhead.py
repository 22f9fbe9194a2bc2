"""Wall-time cost of LC on LeNet300 (tanh): C step vs L step, LC vs the reference.

    python benchmarks/lc_overhead.py --root runs/bench_lc

reads the LC run of `benchmarks/lc_lenet300.py` in <root>/lenet300 when it
has finished; otherwise it runs (or reads) a small one of its own in
<root>/overhead, its reference in <root>/overhead_reference (the defaults,
written out):

    python benchmarks/lc_overhead.py --root runs/bench_lc --epochs 10 \
        --lambda 1e-5 --lc_steps 15 --epochs_per_l_step 1 --finetune_epochs 5 \
        --mu0 5e-4 --mu_growth 1.25 --optimizer sgd --learning_rate 0.01 \
        --momentum 0.9 --nesterov --baselines --seed 0

Per λ, from the run's files:

- C step / L step: the mean wall time of a C step (lambda_<v>/lc/results.json,
  "lc" "steps" "time_s": all of them, the first one on the reference weights
  included) over the mean L step (the epochs' "epoch_time_s" summed over the
  LC phase, minus the C steps run inside those epochs, per L step; an epoch's
  time includes its validation pass). Target <= 0.05.
- (LC phase + fine-tuning of the LC net) / reference training, each the sum
  of its epochs' wall times (the LC phase plus its first C step, which runs
  before the first epoch; the reference's time is read from the run that
  trained it). Target <= 3. Also shown, not a target: the same with the
  fine-tuning of both baselines added (with --baselines).

The phases ran one after another on a shared machine: the ratios hold only
as far as the load stayed the same.
"""

import pathlib
import statistics

import lc_common

SMALL_DEFAULTS = {
    "epochs": 10,
    "lambdas": [1e-5],
    "lc_steps": 15,
    "epochs_per_l_step": 1,
    "finetune_epochs": 5,
    "mu0": 5e-4,
    "mu_growth": 1.25,
    "baselines": True,
    "seed": 0,
    **lc_common.SGD,
}
C_OVER_L_TARGET = 0.05
TOTAL_OVER_REFERENCE_TARGET = 3.0


def overhead_row(workdir: pathlib.Path, run: dict, reference_s: float) -> dict:
    """The times and ratios of one λ's LC run."""
    lc = lc_common.read_json(
        lc_common.lambda_dir(workdir, run["lambda"]) / "lc" / "results.json"
    )
    steps = [step["time_s"] for step in lc["lc"]["steps"]]
    l_steps = len(steps) - 1
    epochs_s = sum(entry["epoch_time_s"] for entry in lc["history"])
    c_step_s = statistics.fmean(steps)
    l_step_s = (epochs_s - sum(steps[1:])) / l_steps
    lc_phase_s = run["lc_time_s"] + steps[0]
    lc_total_s = lc_phase_s + run["finetune_time_s"]
    baselines = run.get("baselines", {}).values()
    baselines_s = sum(entry["finetune_time_s"] for entry in baselines)
    with_baselines = (lc_total_s + baselines_s) / reference_s
    return {
        "lambda": run["lambda"],
        "l_steps": l_steps,
        "c_step_s": c_step_s,
        "l_step_s": l_step_s,
        "c_over_l": c_step_s / l_step_s,
        "lc_phase_s": lc_phase_s,
        "finetune_s": run["finetune_time_s"],
        "total_over_reference": lc_total_s / reference_s,
        "baselines_s": f"{baselines_s:.1f}" if baselines else "-",
        "with_baselines": f"{with_baselines:.2f}" if baselines else "-",
    }


def overhead_targets(rows: list[dict], reference_s: float) -> list[str]:
    """Both targets per λ, met or MISSED with the numbers."""
    lines = []
    for row in rows:
        lam = f"λ={row['lambda']:g}"
        baselines = (
            f"; with both baselines' fine-tuning (not a target) {row['with_baselines']}"
            if row["with_baselines"] != "-"
            else ""
        )
        lines += [
            lc_common.target_line(
                f"C step / L step <= {C_OVER_L_TARGET}",
                row["c_over_l"] <= C_OVER_L_TARGET,
                f"{lam}: {row['c_step_s']:.3f} s / {row['l_step_s']:.2f} s = "
                f"{row['c_over_l']:.4f}",
            ),
            lc_common.target_line(
                f"(LC phase + fine-tuning) / reference training <= "
                f"{TOTAL_OVER_REFERENCE_TARGET:g}",
                row["total_over_reference"] <= TOTAL_OVER_REFERENCE_TARGET,
                f"{lam}: ({row['lc_phase_s']:.1f} + {row['finetune_s']:.1f}) s / "
                f"{reference_s:.1f} s = {row['total_over_reference']:.2f}{baselines}",
            ),
        ]
    return lines


def main() -> None:
    args = lc_common.make_parser(__doc__.splitlines()[0], SMALL_DEFAULTS).parse_args()
    part = "lenet300"
    if not (args.root / part / "results.json").is_file():
        part = "overhead"
    run = lc_common.lc_run(
        args.root / part,
        args.root / f"{part}_reference",
        {**lc_common.requested_settings(args), "model": "lenet300_tanh"},
        SMALL_DEFAULTS,
    )
    if run.reference_results is None:
        raise SystemExit(
            f"{run.reference} is a file that no trainer run holds, so its training "
            "time is unknown; the LC / reference ratio needs the run that trained it."
        )
    reference_s = run.reference_results["summary"]["train_time_s"]
    workdir = run.workdir
    rows = [overhead_row(workdir, entry, reference_s) for entry in run.results["runs"]]
    header = (
        "λ",
        "L steps",
        "C step s (mean)",
        "L step s (mean)",
        "C / L",
        "reference s",
        "LC phase s",
        "LC fine-tune s",
        "(LC + FT) / reference",
        "baselines FT s",
        "(LC + FT + baselines FT) / reference",
    )
    lines = [
        "### LC wall time on LeNet300 (tanh), Fashion-MNIST",
        "",
        f"Run {workdir}:",
        *lc_common.describe(run),
        "",
        *lc_common.markdown_table(
            header,
            (
                [
                    f"{row['lambda']:g}",
                    row["l_steps"],
                    f"{row['c_step_s']:.3f}",
                    f"{row['l_step_s']:.2f}",
                    f"{row['c_over_l']:.4f}",
                    f"{reference_s:.1f}",
                    f"{row['lc_phase_s']:.1f}",
                    f"{row['finetune_s']:.1f}",
                    f"{row['total_over_reference']:.2f}",
                    row["baselines_s"],
                    row["with_baselines"],
                ]
                for row in rows
            ),
        ),
        "",
        "Targets:",
        *overhead_targets(rows, reference_s),
    ]
    lc_common.emit(args.root, "lc_overhead", lines)


if __name__ == "__main__":
    main()
