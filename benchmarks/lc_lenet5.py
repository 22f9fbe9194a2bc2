"""LC rank selection on LeNet5 with both conv schemes, beside the paper's Table 1.

    python benchmarks/lc_lenet5.py --epochs 15 --lambda 1e-5 --lc_steps 20 \
        --epochs_per_l_step 1 --finetune_epochs 5 --mu0 5e-4 --mu_growth 1.25 \
        --optimizer sgd --learning_rate 0.01 --momentum 0.9 --nesterov \
        --finetune_learning_rate 0.01 --no-baselines --seed 0

(the defaults, written out). Work directories under --root (an existing run
is read, not repeated, and a setting left out is read from it):
<root>/lenet5_reference (`python -m trainers.baseline --model=lenet5`, Adam,
the reference net of both schemes), <root>/lenet5_scheme1 and
<root>/lenet5_scheme2 (`python -m trainers.lc --model=lenet5
--criterion=flops --conv_scheme=K --reference=<that net>`, one λ each:
--lambda1 / --lambda2, or --lambda for both). Prints per scheme the LC net
(and, with --baselines, baselines 2 and 1 at its cost) with the ranks of the
four layers conv_1, conv_2, dense_1, dense_2, and the paper's LeNet5 rows
(MNIST, scheme 1: compare ratios and Δ error, not errors).
"""

import lc_common

SCHEMES = (1, 2)
DEFAULTS = {
    "epochs": 15,
    "lc_steps": 20,
    "epochs_per_l_step": 1,
    "finetune_epochs": 5,
    "mu0": 5e-4,
    "mu_growth": 1.25,
    "baselines": False,
    "seed": 0,
    **lc_common.SGD,
    "finetune_learning_rate": 0.01,
}
LAMBDA = 1e-5

# Paper, Table 1, LeNet5 on MNIST (scheme 1): λ ×1e-3, ranks, FLOPs, params,
# log L, train error %, test error %, ρ_FLOPs, ρ_storage.
PAPER_LENET5 = (
    ("R", "[20 50 500 10]", "2.29M", "0.43M", "-6.27", "0.00", 0.55, "1.00", "1.00"),
    ("0.4", "[5 5 14 9]", "328,390", "26,855", "-3.73", "0.01", 0.75, "6.98", "16.04"),
    ("1.0", "[4 5 9 9]", "295,970", "20,310", "-3.27", "0.01", 0.82, "7.75", "21.20"),
    ("1.1", "[3 3 9 9]", "199,650", "19,165", "-2.28", "0.16", 1.33, "11.49", "22.47"),
)


def scheme_lines(run: lc_common.LCRun) -> list[str]:
    """One scheme's LC run: its settings, table and LC-vs-baselines lines."""
    lines = [
        f"#### Scheme {run.settings['conv_scheme']}",
        "",
        *lc_common.lc_report(run),
        "LC against the baselines at its cost (no target set):",
    ]
    for which in ("baseline2", "baseline1"):
        lines += lc_common.baseline_targets(run.results, which, f"LC below {which}")
    return [*lines, ""]


def main() -> None:
    parser = lc_common.make_parser(__doc__.splitlines()[0], DEFAULTS)
    parser.add_argument(
        "--lambda",
        dest="lam",
        type=float,
        default=None,
        help=f"λ of both schemes (default: the runs', else {LAMBDA})",
    )
    for scheme in SCHEMES:
        parser.add_argument(
            f"--lambda{scheme}",
            type=float,
            default=None,
            help=f"λ of scheme {scheme} (default: --lambda)",
        )
    args = parser.parse_args()
    requested = {**lc_common.requested_settings(args), "model": "lenet5"}
    lines = ["### LC on LeNet5, Fashion-MNIST, conv schemes 1 and 2", ""]
    for scheme in SCHEMES:
        lam = getattr(args, f"lambda{scheme}")
        lam = args.lam if lam is None else lam
        run = lc_common.lc_run(
            args.root / f"lenet5_scheme{scheme}",
            args.root / "lenet5_reference",
            {
                **requested,
                "conv_scheme": scheme,
                **({"lambdas": [lam]} if lam is not None else {}),
            },
            {**DEFAULTS, "lambdas": [LAMBDA]},
        )
        requested["reference"] = str(run.reference)  # scheme 2: the same net
        lines += scheme_lines(run)
    lines += [
        lc_common.LC_TABLE_NOTES,
        "",
        "Paper, Table 1, LeNet5 on MNIST, scheme 1 (compare ratios and Δ, not errors):",
        "",
        *lc_common.paper_table(PAPER_LENET5),
    ]
    lc_common.emit(args.root, "lc_lenet5", lines)


if __name__ == "__main__":
    main()
