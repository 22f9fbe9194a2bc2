"""RaRe + DLRA on the engine: fusion, rebuild, resume, compact export."""

import dataclasses
import functools

import keras
import numpy as np
import pytest
from trainer_runs import error_lines
from trainer_runs import run as run_trainer

from keras_rank.core import costs
from keras_rank.core.errors import ConfigError
from keras_rank.dlra import DLRA, DLRAConfig, axis_vectors, fusion, rare
from keras_rank.dlra.run import WHY_SIZES_DIFFER, summary_table, train_dlra
from keras_rank.layers import FactorizedDense
from keras_rank.layers.factorize import factorize_model, to_plain_model
from keras_rank.training import TrainConfig, Trainer


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    x = FactorizedDense(6, activation="relu", name="d1")(inputs)
    x = keras.layers.Dropout(0.2, name="drop1")(x)
    x = FactorizedDense(6, activation="relu", name="d2")(x)
    outputs = FactorizedDense(3, name="d3")(x)
    model = keras.Model(inputs, outputs, name="chain")
    d2, d3 = model.get_layer("d2"), model.get_layer("d3")
    kernel = d2.kernel.numpy()
    kernel[:, 1] = 2.0 * kernel[:, 0]  # two exactly parallel rows of d2 ...
    d2.kernel.assign(kernel)
    d2.bias.assign(np.array([0.1, 0.2, 0.0, 0.0, 0.0, 0.0], np.float32))  # bias too
    kernel = d3.kernel.numpy()
    kernel[3] = -0.5 * kernel[2]  # ... and two exactly opposite columns of d3
    d3.kernel.assign(kernel)
    return model


def _dlra(**overrides):
    settings = dict(
        lambda1=0.0,
        lambda2=0.0,
        tau_cos=1e-4,
        tau_euc=1e-3,
        frobenius_norm=False,
        search_every=1,
    )
    settings.update(overrides)
    return DLRA(DLRAConfig(**settings))


def _start(model, dlra):
    trainer = Trainer(
        model,
        keras.optimizers.Adam(1e-3),
        loss_terms=dlra.loss_terms,
        callbacks=[dlra],
        verbose=0,
    )
    dlra.on_train_begin(trainer)
    dlra.on_epoch_begin(trainer, 0)
    return trainer


def test_fusing_parallel_rows_and_opposite_columns_keeps_outputs():
    model = _model()
    dlra = _dlra()
    trainer = _start(model, dlra)
    images = np.random.default_rng(0).normal(size=(32, 8)).astype(np.float32)
    before = model(images).numpy()

    dlra.on_step_end(trainer, 1, {})

    counts = {
        name: fusion.live_counts(model.get_layer(name).factor_state())
        for name in ("d1", "d2", "d3")
    }
    assert counts["d2"]["groups_out"] == 5
    assert counts["d3"]["groups_in"] == 5
    assert counts["d1"] == {"groups_in": 8, "groups_out": 6, "features_out": 6}
    np.testing.assert_allclose(model(images).numpy(), before, atol=1e-5)


def test_a_fused_axis_is_searched_again_at_once():
    """Between scheduled searches, each step can fuse again on the same axis."""
    model = _model()
    dlra = _dlra(tau_cos=2.0, tau_euc=1e9, search_every=1000)  # fuse any pair
    trainer = _start(model, dlra)
    d3 = model.get_layer("d3")
    live = [int(d3.col_mask.numpy().sum())]
    for step in (1, 2):
        dlra.on_step_end(trainer, step, {})
        live.append(int(d3.col_mask.numpy().sum()))
    assert live == [live[0], live[0] - 1, live[0] - 2]


def test_rebuild_after_fusion_keeps_outputs_and_kept_slots():
    model = _model()
    dlra = _dlra()
    trainer = _start(model, dlra)
    images = np.random.default_rng(1).normal(size=(32, 8)).astype(np.float32)
    rng = np.random.default_rng(2)
    for slot in trainer.optimizer.variables[2:]:
        slot.assign(rng.normal(size=slot.shape).astype(np.float32))
    old_slots = {v.name: v.numpy() for v in trainer.optimizer.variables}
    dlra.on_step_end(trainer, 1, {})
    before = model(images).numpy()
    kept_rows = np.flatnonzero(model.get_layer("d2").row_mask.numpy())
    kept_cols = np.flatnonzero(model.get_layer("d3").col_mask.numpy())

    logs = {}
    rebuild = dlra.on_epoch_end(trainer, 0, logs)
    trainer.replace_model(rebuild)

    new = trainer.model
    assert new.get_layer("d2").kernel.shape == (6, 5)
    assert new.get_layer("d3").kernel.shape == (5, 3)
    np.testing.assert_allclose(new(images).numpy(), before, atol=1e-5)
    slots = {v.name: v.numpy() for v in trainer.optimizer.variables}
    for slot in ("momentum", "velocity"):
        np.testing.assert_array_equal(
            slots[f"d2_kernel_{slot}"],
            old_slots[f"d2_kernel_{slot}"][:, kept_rows],
        )
        np.testing.assert_array_equal(
            slots[f"d3_kernel_{slot}"],
            old_slots[f"d3_kernel_{slot}"][kept_cols],
        )
    assert logs["dims/d2/out"] == 5 and logs["compression"] > 0


def test_rare_term_is_eq16_over_the_most_parallel_pairs():
    model = _model()
    dlra = _dlra(lambda1=3.0, fusion=False)
    _start(model, dlra)
    value = float(dlra.loss_terms[0](model))
    # The term also leaves the fusion test's inputs for after the step.
    np.testing.assert_allclose(
        dlra.search.probe_of_last_step.numpy(), dlra.search.probe().numpy()
    )

    layers = [model.get_layer(name) for name in ("d1", "d2", "d3")]
    sizes = [layer.kernel.shape[0] * layer.kernel.shape[1] for layer in layers]
    allowed = {"d2": ("col", "row"), "d3": ("col",)}  # longer axes, not d1/d3 rows
    expected = 0.0
    for layer, size in zip(layers, sizes, strict=True):
        for axis in allowed.get(layer.name, ()):
            vectors, mask = axis_vectors(layer, axis)
            expected += size * float(rare.rare(vectors, mask))
    expected *= 3.0 / (2 * sum(sizes))
    assert value == pytest.approx(expected, rel=1e-5)


def test_config_errors_name_the_argument():
    with pytest.raises(ConfigError, match="tau_cos > 0.*tau_cos=0"):
        DLRAConfig(tau_cos=0)
    with pytest.raises(ConfigError, match="lambda1 >= 0.*lambda1=-1"):
        DLRAConfig(lambda1=-1)
    with pytest.raises(ConfigError, match="search_every"):
        DLRAConfig(search_every=0)
    with pytest.raises(ConfigError, match="l2_target 'w'.*kernel, effective"):
        DLRAConfig(l2_target="w")
    pooled = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.MaxPooling2D()])
    with pytest.raises(ConfigError, match="no Dense or Conv2D"):
        factorize_model(pooled)


# Thresholds loose enough that random vectors fuse: exercises every path fast.
_LOOSE = DLRAConfig(lambda1=20.0, tau_cos=0.9, tau_euc=1e3, search_every=2)


def _config(data, epochs, model="mlp"):
    return TrainConfig(
        model=model, data=str(data), epochs=epochs, batch_size=50, seed=1, verbose=0
    )


@pytest.mark.slow
def test_train_dlra_compresses_and_exports_an_equivalent_plain_model(
    tiny_idx, tmp_path
):
    results = train_dlra(_config(tiny_idx, 2), _LOOSE, tmp_path)

    dlra = results["dlra"]
    assert dlra["params_after"] < dlra["params_before"] == 1_399_516
    assert (
        0 < dlra["compression"] == pytest.approx(results["history"][-1]["compression"])
    )
    assert [layer["layer"] for layer in dlra["layers"]] == [
        f"dense_{i}" for i in range(1, 7)
    ]
    assert dlra["layers"][0]["input"] == 784 and dlra["layers"][-1]["output"] == 10
    for name in ("curves.png", "compression.png", "layer_dims.png"):
        assert (tmp_path / name).stat().st_size > 0
    images = np.random.default_rng(0).uniform(size=(16, 28, 28, 1)).astype(np.float32)
    factorized = keras.saving.load_model(tmp_path / "model.keras")
    compact = keras.saving.load_model(tmp_path / "model_compact.keras")
    assert not any(
        type(layer).__module__.startswith("keras_rank") for layer in compact.layers
    )
    np.testing.assert_allclose(
        compact(images), factorized(images), rtol=1e-4, atol=1e-4
    )


_SIZES = ("params", "flops_mac1", "flops_mac2")


@pytest.mark.slow
def test_deployable_size_counts_the_saved_compact_model_not_w_prime(
    tiny_idx, tmp_path, capsys
):
    config = dataclasses.replace(_config(tiny_idx, 1, model="lenet300"), verbose=2)
    results = train_dlra(config, _LOOSE, tmp_path)

    compact = keras.saving.load_model(tmp_path / "model_compact.keras")
    cost = costs.model_cost(compact)
    deployable = results["deployable"]
    assert deployable == {
        "params": cost.params,
        "flops_mac1": cost.flops_mac1,
        "flops_mac2": cost.flops_mac2,
        "counted_from": "plain Keras layers of the exported model",
    }
    # Loose thresholds fuse column groups, which plain layers keep at full width.
    assert any(
        compact.get_layer(layer["layer"]).kernel.shape[0] > layer["input"]
        for layer in results["dlra"]["layers"]
    )
    assert deployable["params"] > results["params"] == results["dlra"]["params_after"]
    compact_entry = results["dlra"]["compact_model"]
    assert {key: compact_entry[key] for key in _SIZES} == {
        key: deployable[key] for key in _SIZES
    }
    assert results["dlra"]["deployable_before"] == {
        "params": 266_610,
        "flops_mac1": 266_200,
        "flops_mac2": 532_400,
    }
    printed = capsys.readouterr().out
    assert (
        f"params {results['params']:,} (method's count), "
        f"{deployable['params']:,} deployable (plain exported model)"
    ) in printed
    assert f"deployable != W': {WHY_SIZES_DIFFER}" in printed


def _summary_results(deployable_params):
    sizes = {"params": 100, "flops_mac1": 90, "flops_mac2": 180}
    return {
        "test_accuracy": 0.5,
        "deployable": {**sizes, "params": deployable_params},
        "dlra": {
            **{f"{key}_before": 2 * value for key, value in sizes.items()},
            **{f"{key}_after": value for key, value in sizes.items()},
            "deployable_before": {key: 2 * value for key, value in sizes.items()},
            "compact_model": {"max_abs_diff": 1e-7},
            "layers": [{"layer": "d1", "input": 4, "output": 3, "features": 3}],
            "left_as_is": [],
        },
    }


def test_summary_labels_both_sizes_and_says_why_only_when_they_differ():
    differing = summary_table(_summary_results(deployable_params=120)).splitlines()
    assert any(
        line.startswith("parameters (factorized W', paper's count)")
        and line.endswith("200 -> 100  (50.00 % removed)")
        for line in differing
    )
    assert any(
        line.startswith("deployable (plain exported model)")
        and line.endswith("200 -> 120  (40.00 % removed)")
        for line in differing
    )
    assert f"deployable != W': {WHY_SIZES_DIFFER}" in differing
    equal = summary_table(_summary_results(deployable_params=100))
    assert "deployable (plain exported model)" in equal
    assert WHY_SIZES_DIFFER not in equal


@pytest.mark.slow
def test_resume_across_a_rebuild_matches_an_uninterrupted_run(tiny_idx, tmp_path):
    run = functools.partial(_config, tiny_idx, model="lenet300")
    straight = train_dlra(run(epochs=3), _LOOSE, tmp_path / "straight")
    train_dlra(run(epochs=1), _LOOSE, tmp_path / "resumed")
    resumed = train_dlra(run(epochs=3), _LOOSE, tmp_path / "resumed")

    assert straight["history"][0]["compression"] > 0  # shapes changed after epoch 1
    untimed = [
        [
            {k: v for k, v in h.items() if not k.endswith("time_s")}
            for h in run["history"]
        ]
        for run in (straight, resumed)
    ]
    assert untimed[0] == untimed[1]
    a = keras.saving.load_model(tmp_path / "straight" / "model.keras").get_weights()
    b = keras.saving.load_model(tmp_path / "resumed" / "model.keras").get_weights()
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.mark.slow
def test_lenet5_with_factorized_convolutions_trains_and_exports(tiny_idx, tmp_path):
    results = train_dlra(_config(tiny_idx, 1, model="lenet5"), _LOOSE, tmp_path)
    assert results["dlra"]["params_after"] <= results["dlra"]["params_before"]
    images = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    factorized = keras.saving.load_model(tmp_path / "model.keras")
    plain = to_plain_model(factorized)
    np.testing.assert_allclose(plain(images), factorized(images), rtol=1e-4, atol=1e-4)


def test_baseline_ablation_trains_the_plain_zoo_model(tiny_idx, tmp_path):
    baseline = DLRAConfig(lambda1=0, lambda2=0, frobenius_norm=False, fusion=False)
    results = train_dlra(_config(tiny_idx, 1, model="lenet300"), baseline, tmp_path)
    assert results["params"] == 266_610 and "dlra" not in results


@pytest.mark.slow
@pytest.mark.parametrize(
    "flag, expected",
    [
        ("--tau_cos=0", "tau_cos"),
        ("--lambda1=-1", "lambda1"),
        ("--l2_target=x", "l2_target"),
    ],
)
def test_dlra_trainer_bad_flags_exit_with_one_line(flag, expected, tmp_path):
    result = run_trainer("dlra", f"--workdir={tmp_path}", flag, timeout=120)
    assert result.returncode == 2, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1 and expected in errors[0], result.stderr
    assert not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("target", ["kernel", "effective"])
def test_factor_l2_is_eq17_mean_of_squared_norms(target):
    keras.utils.set_random_seed(3)
    model = factorize_model(
        keras.Sequential(
            [keras.Input((5,)), keras.layers.Dense(4), keras.layers.Dense(3)]
        ),
        frobenius_norm=True,
    )
    layers = [layer for layer in model.layers if isinstance(layer, FactorizedDense)]
    layers[0].gain.assign(1.7)
    dlra = _dlra(lambda2=0.5, l2_target=target, frobenius_norm=True)
    _start(model, dlra)
    value = float(dlra.loss_terms[0](model))
    if target == "kernel":
        squares = [np.sum(layer.kernel.numpy() ** 2) for layer in layers]
    else:
        squares = [np.sum(layer.effective_kernel().numpy() ** 2) for layer in layers]
    assert value == pytest.approx(0.5 * np.mean(squares), rel=1e-5)
