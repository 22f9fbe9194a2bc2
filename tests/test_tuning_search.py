"""A search to a budget, in process: its report, its final model, its failed trials."""

import csv
import dataclasses
import json

import keras
import keras_tuner
import pytest
from synthetic import make_idx_folder

import tuning.tuner as tuner_module
from keras_rank.core.errors import ConfigError
from keras_rank.layers.deployable import deployable_size
from keras_rank.training import NoCompression, TrainConfig, run_method
from keras_rank.training.evaluation import ModelEvaluator
from tuning.config import SearchConfig
from tuning.methods import SEARCHED
from tuning.run import OBJECTIVE, run_search
from tuning.tuner import MethodTuner, SearchContext, declare_space, layer_ranks

pytestmark = pytest.mark.slow


def _mlp(widths: tuple[int, int]) -> keras.Model:
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Flatten()(inputs)
    for width in widths:
        x = keras.layers.Dense(width, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10)(x))


def _config(data, **settings) -> TrainConfig:
    return TrainConfig(data=str(data), verbose=0, batch_size=32, **settings)


def test_a_two_trial_search_writes_the_pareto_report_and_the_final_export(
    tiny_idx, tmp_path
):
    workdir = tmp_path / "search"
    search = SearchConfig(method="all", max_trials=2, final_epochs=1)
    results = run_search(
        _config(tiny_idx, epochs=2), search, workdir, model=_mlp((32, 16))
    )
    with (workdir / "trials.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["trial_id"] for row in rows] == ["0", "1"]
    assert all(row["status"] == "completed" for row in rows)
    assert (workdir / "pareto.png").stat().st_size > 0
    assert "# Search summary" in (workdir / "summary.md").read_text()
    final = results["final"]
    assert final["method"] == results["best_trial"]["method"]
    for name in ("model.keras", "model_plain.keras"):
        assert (workdir / "final" / name).is_file()
    for model_name in ("reference", "best"):
        for fmt in ("float32", "int8"):
            entry = final["export"][model_name][fmt]
            assert entry["size_kb"] > 0 and entry["latency_us"] > 0
    # The final model is the user's net compressed, tested once on the test split.
    plain = keras.saving.load_model(workdir / "final" / "model_plain.keras")
    assert deployable_size(plain)["params"] == final["params"]
    assert 0 <= final["test_accuracy"] <= 1
    # Every trial started from the user's net, not the zoo's.
    assert (
        json.loads((workdir / "reference.json").read_text())["metrics"]["params"]
        == (deployable_size(_mlp((32, 16)))["params"])
    )


def test_a_diverging_trial_is_failed_and_the_search_goes_on(
    tiny_idx, tmp_path, monkeypatch
):
    prox = SEARCHED["prox"]

    def diverge_first(config, method, workdir, reference, latency):
        if workdir.name == "0":  # a learning rate no training survives
            config = dataclasses.replace(config, learning_rate=1e30)
        return prox.run(config, method, workdir, reference, latency)

    monkeypatch.setitem(
        tuner_module.SEARCHED, "prox", dataclasses.replace(prox, run=diverge_first)
    )
    workdir = tmp_path / "search"
    results = run_search(
        _config(tiny_idx, epochs=1),
        SearchConfig(method="prox", max_trials=3, final_epochs=0),
        workdir,
        model=_mlp((16, 16)),
    )
    records = {
        path.parent.name: json.loads(path.read_text())
        for path in (workdir / "trials").glob("*/record.json")
    }
    assert records["0"]["status"] == "failed"
    assert "loss became nan" in records["0"]["note"]
    assert [records[i]["status"] for i in ("1", "2")] == ["completed", "completed"]
    assert results["trials"] == 3 and results["completed"] == 2
    oracle = json.loads((workdir / "tuner" / "trial_0" / "trial.json").read_text())
    assert oracle["status"] == "FAILED"


def _corner_trials(data, root, widths, method):
    """Runs a trial at both ends of `method`'s space on an MLP of `widths`."""
    root.mkdir(parents=True)
    _mlp(widths).save(root / "initial.keras")
    config = _config(data, epochs=5, model=None, model_path=str(root / "initial.keras"))
    run_method(NoCompression(), config, root / "reference")
    reference_file = root / "reference" / "model.keras"
    reference = keras.saving.load_model(reference_file, compile=False)
    context = SearchContext(
        config=config,
        methods=(method,),
        goal=SearchConfig().goal(),
        reference={
            **deployable_size(reference),
            "val_accuracy": ModelEvaluator(config).validation_accuracy(reference),
        },
        reference_file=reference_file,
        workdir=root,
    )
    space = declare_space((method,))
    tuner = MethodTuner(
        keras_tuner.oracles.RandomSearchOracle(
            objective=OBJECTIVE, max_trials=2, hyperparameters=space
        ),
        context,
        directory=str(root),
        project_name="tuner",
    )
    (item,) = space.space
    outcomes = []
    for end in (item.min_value, item.max_value):
        hp = space.copy()
        hp.values[item.name] = end
        trial = keras_tuner.engine.trial.Trial(hp, trial_id=f"{end:g}")
        metrics = tuner.run_trial(trial)
        record = json.loads(
            (root / "trials" / trial.trial_id / "record.json").read_text()
        )
        model = keras.saving.load_model(root / record["model_file"], compile=False)
        outcomes.append((end, metrics, layer_ranks(model)))
    return context.reference, outcomes


@pytest.mark.parametrize("method", ["lc", "prox"])
def test_one_relative_space_fits_nets_ten_times_apart(method, tmp_path):
    data = make_idx_folder(tmp_path / "data", train=1200, test=200)
    nets = {"small": (48, 24), "large": (512, 256)}
    found = {
        name: _corner_trials(data, tmp_path / name, widths, method)
        for name, widths in nets.items()
    }
    flops = {name: reference["flops_mac1"] for name, (reference, _) in found.items()}
    assert flops["large"] >= 10 * flops["small"]
    for name, (_, outcomes) in found.items():
        for end, metrics, ranks in outcomes:
            where = f"{method} on the {name} net at {end:g} x its scale"
            assert min(ranks.values()) >= 3, f"{where}: ranks {ranks}"
            assert metrics["val_accuracy"] > 0.3, f"{where}: {metrics}"
        # The space spans compression: its far end is cheaper than its near end.
        (_, near, _), (_, far, _) = outcomes
        assert far["flops_mac1"] < near["flops_mac1"], (name, near, far)


def test_a_file_size_budget_measures_every_trial_s_int8_file(tiny_idx, tmp_path):
    workdir = tmp_path / "search"
    results = run_search(
        _config(tiny_idx, epochs=1),
        SearchConfig(method="dlra", max_trials=1, budget="int8_kb:20", final_epochs=0),
        workdir,
        model=_mlp((32, 16)),
    )
    record = results["best_trial"]
    assert results["reference"]["int8_kb"] > 20  # 26k weights: about 27 KB
    assert record["int8_kb"] > 0
    assert record["feasible"] == (record["int8_kb"] <= 20)
    assert list((workdir / "trials" / "0").glob("*.int8.tflite"))


def test_a_latency_budget_times_every_trial_and_lc_chooses_by_latency(
    tiny_idx, tmp_path
):
    workdir = tmp_path / "search"
    results = run_search(
        _config(tiny_idx, epochs=1),
        SearchConfig(method="lc", max_trials=1, budget="latency:0.9", final_epochs=0),
        workdir,
        model=_mlp((32, 16)),
    )
    record, reference = results["best_trial"], results["reference"]
    assert reference["latency_us"] > 0 and record["latency_us"] > 0
    assert record["feasible"] == (record["latency_us"] <= 0.9 * reference["latency_us"])
    assert (workdir / "reference.float32.tflite").is_file()
    assert list((workdir / "trials" / "0").glob("*.float32.tflite"))
    # LC's ranks traded the search's shared layer timings, not FLOPs.
    lc = json.loads((workdir / "trials" / "0" / "results.json").read_text())
    assert lc["criterion"] == "latency"
    assert json.loads((workdir / "layer_latency.json").read_text())
    assert not (workdir / "trials" / "0" / "layer_latency.json").exists()


def test_an_accuracy_floor_minimises_flops_and_hyperband_sets_each_trial_s_epochs(
    tiny_idx, tmp_path
):
    workdir = tmp_path / "search"
    results = run_search(
        _config(tiny_idx, epochs=3),
        SearchConfig(
            method="prox",
            tuner="hyperband",
            max_trials=3,
            max_drop=100.0,
            final_epochs=0,
        ),
        workdir,
        model=_mlp((32, 16)),
    )
    records = [json.loads(p.read_text()) for p in workdir.glob("trials/*/record.json")]
    assert len(records) == 3
    assert {record["epochs"] for record in records} <= {1, 2, 3}
    assert min(record["epochs"] for record in records) < 3  # hyperband's short trials
    for record in records:  # a floor of 100 points: everything is feasible
        assert record["feasible"]
        reference = results["reference"]["flops_mac1"]
        assert record["score"] == pytest.approx(-record["flops_mac1"] / reference)


def test_a_misconfigured_trial_stops_the_search_at_once(
    tiny_idx, tmp_path, monkeypatch
):
    def misconfigured(config, method, workdir, reference, latency):
        raise ConfigError("Expected tau >= 0. Received: tau=-1")

    monkeypatch.setitem(
        tuner_module.SEARCHED,
        "prox",
        dataclasses.replace(SEARCHED["prox"], run=misconfigured),
    )
    workdir = tmp_path / "search"
    with pytest.raises(ConfigError, match="tau >= 0"):
        run_search(
            _config(tiny_idx, epochs=1),
            SearchConfig(method="prox", max_trials=3),
            workdir,
            model=_mlp((8, 8)),
        )
    assert not (workdir / "trials" / "1").exists()
