"""Proximal training on the engine: the callback, `train_prox`, `trainers.prox`."""

import json

import keras
import numpy as np
import pytest
from synthetic import small_conv_model
from trainer_runs import assert_same_weights, final_weights, kill_after_checkpoint
from trainer_runs import run as run_trainer

from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import kernel_as_matrix
from keras_rank.prox import Prox, ProxConfig, operators, train_prox
from keras_rank.prox.decompose import decompose
from keras_rank.prox.run import ProxMethod
from keras_rank.training import TrainConfig, run_method


def small_model(seed: int = 0) -> keras.Model:
    return small_conv_model(24, seed)


def sgd_config(tiny_idx, **overrides) -> TrainConfig:
    """A short SGD run on the tiny data (2 epochs, batch 32, rate 0.05)."""
    settings = {
        "epochs": 2,
        "batch_size": 32,
        "optimizer": "sgd",
        "learning_rate": 0.05,
    }
    return TrainConfig(data=str(tiny_idx), verbose=0, **{**settings, **overrides})


def test_apply_replaces_every_kernel_by_its_prox():
    model = small_model()
    before = {
        layer.name: layer.kernel.numpy()
        for layer in model.layers[:1] + model.layers[2:]
    }
    config = ProxConfig(tau=(2.0, 0.5), group_lambda=(0.0, 0.1), first_layers=1)
    Prox(config, verbose=0).apply(model, step_size=0.1)
    for index, name in enumerate(("conv", "hidden", "out")):
        tau, lam = (2.0, 0.0) if index == 0 else (0.5, 0.1)
        expected = operators.low_rank_group_sparse_prox(
            kernel_as_matrix(before[name]), 0.1, tau, lam, 0.2
        ).matrix
        np.testing.assert_allclose(
            kernel_as_matrix(model.get_layer(name).kernel),
            expected,
            atol=1e-5,
        )


@pytest.mark.slow
def test_prox_every_k_steps_runs_once_per_k_steps(tiny_idx, tmp_path):
    calls = []

    class Counting(Prox):
        def apply(self, model, step_size):
            calls.append(step_size)
            super().apply(model, step_size)

    config = sgd_config(tiny_idx, epochs=1, batch_size=54)
    method = ProxMethod(ProxConfig(prox_every=3), verbose=0)
    method.callback = Counting(method.config, verbose=0)
    run_method(method, config, tmp_path, model=small_model())
    # 540 training examples / 54 = 10 steps: after steps 3, 6 and 9.
    assert calls == pytest.approx([0.05] * 3)


@pytest.fixture(scope="module")
def prox_run(tiny_idx, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("prox")
    config = sgd_config(tiny_idx, momentum=0.9)
    prox_config = ProxConfig(tau=(20.0,), group_lambda=(0.05,), energies=(60.0, 100.0))
    return workdir, train_prox(config, prox_config, workdir, model=small_model())


@pytest.mark.slow
def test_train_prox_lowers_ranks_and_decomposes_per_energy(prox_run):
    workdir, results = prox_run
    layers = results["prox"]["layers"]
    assert layers["hidden"]["final_rank"] < layers["hidden"]["max_rank"]
    assert (
        layers["hidden"]["final_nuclear_norm"]
        < layers["hidden"]["initial_nuclear_norm"]
    )
    by_energy = {entry["energy"]: entry for entry in results["prox"]["energies"]}
    # At 100 % the decomposition is exact: the same predictions.
    assert by_energy[100.0]["test_accuracy"] == pytest.approx(
        results["test_accuracy"],
        abs=0.0051,  # one test image of 200
    )
    assert by_energy[60.0]["params"] < by_energy[100.0]["params"]
    # Each decomposition has its own summary; the search reads its validation.
    for energy, entry in by_energy.items():
        folder = workdir / f"energy_{energy:g}"
        saved = json.loads((folder / "results.json").read_text())
        assert 0 <= entry["val_accuracy"] <= 1
        assert saved["summary"]["best_val_accuracy"] == entry["val_accuracy"]
        assert saved["summary"]["deployable"]["params"] == entry["params"]
        assert saved["summary"]["settings"]["method"]["prox"]["energy"] == energy
    plain = keras.saving.load_model(workdir / "energy_60" / "model_plain.keras")
    assert plain.count_params() == by_energy[60.0]["params"]
    for name in ("spectra.png", "tradeoff.png", "curves.png"):
        assert (workdir / name).is_file()
    history = results["history"]
    assert history[-1]["prox/hidden/rank"] == layers["hidden"]["final_rank"]
    assert results["prox"]["reload"] is None
    assert results["prox"]["trained"]["test_accuracy"] == results["test_accuracy"]
    assert all(0 <= epoch["prox_time_s"] < epoch["epoch_time_s"] for epoch in history)


@pytest.mark.slow
def test_reload_trains_the_compact_net_on(tiny_idx, tmp_path, monkeypatch):
    config = sgd_config(tiny_idx)
    decompositions = []

    def recorded(*args, **kwargs):
        decompositions.append(kwargs)
        return decompose(*args, **kwargs)

    monkeypatch.setattr("keras_rank.prox.decompose.decompose", recorded)
    prox_config = ProxConfig(
        tau=(50.0,),
        energies=(100.0,),
        reload_epoch=1,
        reload_energy=90.0,
        rank_multiple=4,
    )
    results = train_prox(config, prox_config, tmp_path, model=small_model())
    trained = keras.saving.load_model(tmp_path / "model.keras")
    # The reload's and the final decompositions both took the rank multiple.
    assert [call.get("rank_multiple") for call in decompositions] == [4, 4]
    for entry in results["prox"]["energies"][0]["layers"]:
        assert entry["rank"] % 4 == 0 or entry["rank"] == entry["max_rank"], entry
    reload = results["prox"]["reload"]
    assert reload["reload_epoch"] == 1
    assert reload["full_epoch_s"] == results["history"][0]["epoch_time_s"]
    assert reload["compact_epoch_s"] == results["history"][1]["epoch_time_s"]
    assert trained.count_params() < small_model().count_params()
    assert results["params"] == trained.count_params()
    assert results["epochs_completed"] == 2
    assert "prox_rank" not in results["history"][-1]


@pytest.mark.slow
def test_latency_criterion_reloads_and_decomposes_with_timed_shapes(tiny_idx, tmp_path):
    config = sgd_config(tiny_idx)
    prox_config = ProxConfig(
        tau=(50.0,),
        energies=(90.0,),
        reload_epoch=1,
        reload_energy=90.0,
        criterion="latency",
    )
    results = train_prox(config, prox_config, tmp_path, model=small_model())
    timings = json.loads((tmp_path / "layer_latency.json").read_text())
    assert timings and all(value > 0 for value in timings.values())
    assert results["prox"]["reload"]["reload_epoch"] == 1
    assert [entry["energy"] for entry in results["prox"]["energies"]] == [90.0]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"tau": (-1.0,)}, "tau"),
        ({"tau": (1.0, 2.0, 3.0)}, "tau"),
        ({"group_lambda": (-0.1,)}, "group_lambda"),
        ({"alpha": 1.5}, "alpha"),
        ({"energies": (0.0,)}, "energies"),
        ({"energies": (101.0,)}, "energies"),
        ({"prox_every": -1}, "prox_every"),
        ({"reload_epoch": 0}, "reload_epoch"),
        ({"rank_multiple": 0}, "rank_multiple"),
    ],
)
def test_bad_settings_name_the_argument(settings, named):
    with pytest.raises(ConfigError, match=f"Expected {named}"):
        ProxConfig(**settings)


TINY = ["--model=lenet300", "--epochs=2", "--batch_size=32", "--verbose=0"]


@pytest.mark.slow
def test_trainer_resumes_after_kill_to_the_same_weights(tiny_idx, tmp_path):
    flags = [f"--data={tiny_idx}", *TINY, "--tau=5", "--energy=100"]
    straight = run_trainer("prox", f"--workdir={tmp_path / 'straight'}", *flags)
    assert straight.returncode == 0, straight.stderr
    workdir = tmp_path / "killed"
    kill_after_checkpoint("prox", workdir, 1, *flags)
    resumed = run_trainer("prox", f"--workdir={workdir}", *flags)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(final_weights(tmp_path / "straight"), final_weights(workdir))
    results = json.loads((workdir / "results.json").read_text())
    straight_results = json.loads((tmp_path / "straight" / "results.json").read_text())
    assert results["prox"]["layers"] == straight_results["prox"]["layers"]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "expected"),
    [("--tau=abc", "--tau"), ("--energy=0", "energy"), ("--alpha=2", "alpha")],
)
def test_trainer_bad_flag_is_one_line(flag, expected, tiny_idx, tmp_path):
    result = run_trainer(
        "prox", f"--workdir={tmp_path}", f"--data={tiny_idx}", *TINY, flag
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and expected in errors[0], result.stderr
