"""Benchmarks take their settings' flags from the declarations, like trainers."""

import argparse
import sys

import pytest
from trainer_runs import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

import lc_common  # noqa: E402
from setting_args import add_setting_argument, find_setting  # noqa: E402

from keras_rank.prox import ProxConfig  # noqa: E402
from keras_rank.training import TrainConfig  # noqa: E402


@pytest.mark.parametrize(
    ("module", "name", "value", "flags"),
    [
        ("trainers.prox", "tau", 2.0, ["--tau=2.0"]),
        ("trainers.prox", "energy", "90", ["--energy=90"]),
        ("trainers.lc", "lambdas", [1e-5, 2e-5], ["--lambda=1e-05,2e-05"]),
        ("trainers.lc", "baselines", False, ["--nobaselines"]),
        ("trainers.lc", "reference", "r.keras", ["--reference=r.keras"]),
        ("trainers.dlra", "frobenius_norm", True, ["--fn"]),
        (
            "trainers.export",
            "model_path",
            ["A=a.keras", "B=b.keras"],
            ["--model_path=A=a.keras", "--model_path=B=b.keras"],
        ),
        ("trainers.export", "formats", "float32,int8", ["--formats=float32,int8"]),
    ],
)
def test_trainer_flags_of_a_benchmark_setting(module, name, value, flags):
    name = {"energy": "energies"}.get(name, name)
    assert lc_common._flags(module, name, value) == flags


def test_a_benchmark_argument_checks_the_declared_bounds():
    parser = argparse.ArgumentParser()
    tau = find_setting("tau", ProxConfig)
    add_setting_argument(parser, tau, default=[1.0], dest="taus")
    add_setting_argument(parser, find_setting("epochs", TrainConfig), default=15)
    args = parser.parse_args(["--tau", "0", "2.5", "--epochs", "3"])
    assert args.taus == [0.0, 2.5] and args.epochs == 3
    assert parser.parse_args([]).taus == [1.0]
    with pytest.raises(SystemExit):
        parser.parse_args(["--tau", "-1"])
    with pytest.raises(SystemExit):
        parser.parse_args(["--epochs", "0"])
