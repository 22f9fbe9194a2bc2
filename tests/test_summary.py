"""Every results.json begins with the same summary block, whatever the method."""

import json

import pytest

from keras_rank.dlra import DLRAConfig
from keras_rank.dlra.run import DLRAMethod
from keras_rank.prox import ProxConfig
from keras_rank.prox.run import ProxMethod
from keras_rank.training import NoCompression, TrainConfig, run_method
from keras_rank.training.summary import summary_block

SUMMARY_KEYS = {
    "method",
    "test_accuracy",
    "best_val_accuracy",
    "epochs",
    "deployable",
    "train_time_s",
    "wall_time_s",
    "settings",
}


def _block(method_size):
    size = {"params": 10, "flops_mac1": 5, "flops_mac2": 10}
    return summary_block(
        method="m",
        test_accuracy=0.5,
        best_val_accuracy=None,
        epochs=3,
        deployable={**size, "counted_from": "plain"},
        method_size=method_size,
        train_time_s=1.0,
        wall_time_s=2.0,
        settings={"train": {}, "method": None},
    )


def test_method_size_is_given_only_where_it_differs():
    same = {"params": 10, "flops_mac1": 5, "flops_mac2": 10, "other": 1}
    assert set(_block(same)) == SUMMARY_KEYS
    assert set(_block(None)) == SUMMARY_KEYS
    differs = _block({**same, "params": 8})
    assert differs["method_size"] == {"params": 8, "flops_mac1": 5, "flops_mac2": 10}
    assert differs["deployable"] == {"params": 10, "flops_mac1": 5, "flops_mac2": 10}


@pytest.mark.slow
@pytest.mark.parametrize(
    "method",
    [
        NoCompression(),
        DLRAMethod(DLRAConfig(tau_cos=0.05), verbose=0),
        ProxMethod(ProxConfig(tau=(3.0,), energies=(100.0,)), verbose=0),
    ],
    ids=lambda method: method.name,
)
def test_every_method_writes_the_same_summary_first(method, tiny_idx, tmp_path):
    config = TrainConfig(
        model="lenet300", data=str(tiny_idx), epochs=1, batch_size=32, verbose=0
    )
    results = run_method(method, config, tmp_path)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert next(iter(saved)) == "summary"
    summary = saved["summary"]
    assert SUMMARY_KEYS <= set(summary) <= SUMMARY_KEYS | {"method_size"}
    assert summary["method"] == method.name
    assert summary["test_accuracy"] == results["test_accuracy"]
    assert 0 <= summary["test_accuracy"] <= 1
    assert summary["deployable"]["params"] == results["deployable"]["params"]
    settings = {"train": config.to_dict(), "method": method.settings()}
    assert summary["settings"] == json.loads(json.dumps(settings))
    # The method's own count is shown exactly where it differs (DLRA's W').
    assert ("method_size" in summary) == (
        results["params"] != results["deployable"]["params"]
    )
    if method.name != "baseline":
        assert method.name in saved
