"""The whole analysis: `analyze`, its report, `trainers.analyze`, bad input."""

import json
import zipfile

import keras
import numpy as np
import pytest
from synthetic import small_conv_model
from trainer_runs import run as run_trainer

from keras_rank.analysis.config import AnalysisConfig
from keras_rank.analysis.pruning_criteria import CRITERIA
from keras_rank.analysis.report import report_blocks
from keras_rank.analysis.run import _first_prunable, analyze
from keras_rank.analysis.units import with_unit_matrix
from keras_rank.core import costs
from keras_rank.core.errors import ConfigError
from keras_rank.core.layer_matrices import unit_matrix
from keras_rank.core.tflite_file import LiteRTModel
from keras_rank.export import export_litert
from keras_rank.layers import LowRankDense
from keras_rank.layers.deployable import deployable_size
from keras_rank.layers.factorize import clone_replacing, factorize_model
from keras_rank.training import TrainConfig, train_and_evaluate

# Most tests read the module fixture that trains and analyses a model, or
# run the analysis trainer as a subprocess.
pytestmark = pytest.mark.slow


def small_model(seed: int = 0) -> keras.Model:
    return small_conv_model(16, seed)


@pytest.fixture(scope="module")
def trained_run(tiny_idx, tmp_path_factory):
    """A 3-epoch run on the tiny data recording the hidden layer every epoch."""
    workdir = tmp_path_factory.mktemp("run")
    config = TrainConfig(
        data=str(tiny_idx),
        epochs=3,
        batch_size=64,
        verbose=0,
        record_units=("hidden",),
    )
    train_and_evaluate(config, workdir, model=small_model())
    return workdir


@pytest.fixture(scope="module")
def analysis(trained_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("analysis")
    config = AnalysisConfig(
        model_path=str(trained_run / "model.keras"),
        layer="hidden",
        prune_units=("0%", "25%", "50%", 12),
        random_seeds=2,
        verbose=0,
    )
    return folder, analyze(config, folder)


def test_analysis_measures_every_criterion_on_the_grid(analysis, trained_run):
    folder, results = analysis
    saved = json.loads((folder / "analysis.json").read_text())
    assert saved["pruning"]["counts"] == [0, 4, 8, 12]
    curves = {curve["criterion"]: curve for curve in saved["pruning"]["curves"]}
    assert sorted(curves) == sorted(CRITERIA)
    trained = json.loads((trained_run / "results.json").read_text())
    for curve in curves.values():
        # Nothing pruned: the model's own test accuracy.
        assert curve["accuracy"][0] == pytest.approx(trained["test_accuracy"], abs=1e-6)
    assert curves["random"]["seeds"] == [0, 1]
    assert saved["pruning"]["half"]["units_pruned"] == 8


def test_the_pruned_model_saves_loads_and_exports(analysis, tmp_path):
    folder, results = analysis
    half = results["pruning"]["half"]
    pruned = keras.saving.load_model(folder / half["model"])
    assert pruned.get_layer("hidden").kernel.shape[-1] == 16 - 8
    assert pruned.count_params() == half["params"]
    images = np.random.default_rng(0).uniform(size=(8, 28, 28, 1)).astype(np.float32)
    path = export_litert(pruned, tmp_path / "pruned.tflite", "float32")
    np.testing.assert_allclose(
        LiteRTModel(path).invoke(images), pruned(images), atol=1e-4
    )


def test_spectra_cover_every_layer_with_the_recorded_init(analysis):
    _, results = analysis
    layers = results["spectra"]["layers"]
    assert [layer["name"] for layer in layers] == ["conv", "hidden", "out"]
    for layer in layers:
        assert layer["init_source"] == "recorded at init"
        assert 1 <= layer["elbow_rank"] <= min(layer["units"], layer["inputs"])
        assert 0.0 <= layer["accuracy_at_elbow_rank"] <= 1.0


def test_graph_has_a_frame_per_epoch_and_a_page(analysis):
    folder, results = analysis
    graph = results["graph"]
    assert len(graph["frames"]) == 4  # init and 3 epochs
    assert (folder / graph["page"]).is_file()
    for picture in graph["pictures"]:
        assert (folder / picture).stat().st_size > 1000


def test_report_is_self_contained_and_names_every_figure(analysis):
    folder, results = analysis
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 + len(results["graph"]["pictures"])
    assert "http://" not in page and "https://" not in page
    markdown = (folder / "report.md").read_text()
    for name in ("pruning_hidden.png", "spectra.png", "residuals.png"):
        assert f"]({name})" in markdown
    assert "max_frame_potential" in markdown


def test_report_labels_the_methods_own_count_where_it_differs(analysis):
    _, results = analysis
    assert "own count" not in report_blocks(results)[1].text
    fewer = {**results, "method_params": results["params"] - 100}
    line = report_blocks(fewer)[1].text
    assert f"{results['params']:,} parameters (the plain model as it exports)" in line
    assert f"{results['params'] - 100:,} by the method's own count" in line


def test_rank_k_replacement_changes_only_that_layer():
    model = small_model()
    matrix = unit_matrix(model.get_layer("conv").kernel)
    copy = with_unit_matrix(model, "conv", np.zeros_like(matrix))
    assert not np.any(copy.get_layer("conv").kernel.numpy())
    np.testing.assert_array_equal(
        copy.get_layer("hidden").kernel.numpy(),
        model.get_layer("hidden").kernel.numpy(),
    )
    with pytest.raises(ConfigError, match="shape"):
        with_unit_matrix(model, "conv", matrix[:2])


def test_prune_units_accepts_counts_and_percentages():
    config = AnalysisConfig(model_path="m.keras", prune_units=("10%", 3, "50%", "3"))
    assert config.counts(10) == (1, 3, 5)
    with pytest.raises(ConfigError, match="below the layer's width 10"):
        AnalysisConfig(model_path="m.keras", prune_units=(10,)).counts(10)
    for bad in ("100%", "-1", "x", 2.5, True):
        with pytest.raises(ConfigError, match="prune_units"):
            AnalysisConfig(model_path="m.keras", prune_units=(bad,))


def test_data_comes_from_the_runs_config(trained_run, tiny_idx):
    config = AnalysisConfig(model_path=str(trained_run / "model.keras"))
    assert config.train_config().data == str(tiny_idx)
    other = AnalysisConfig(
        model_path=str(trained_run / "model.keras"), data="elsewhere"
    )
    assert other.train_config().data == "elsewhere"


@pytest.mark.parametrize(
    "flag, message",
    [
        ("--layer=flatten", "it is a Flatten"),
        ("--layer=nope", "no such layer"),
        ("--prune_units=16", "below the layer's width 16"),
        ("--layer=out", "model output"),
    ],
)
def test_bad_input_is_one_clear_line(trained_run, tmp_path, flag, message):
    config = {
        "--layer": "layer",
        "--prune_units": "prune_units",
    }[flag.split("=")[0]]
    value = flag.split("=")[1]
    kwargs = {config: (value,) if config == "prune_units" else value}
    if config == "prune_units":
        kwargs["layer"] = "hidden"
    with pytest.raises(ConfigError, match=message):
        analyze(
            AnalysisConfig(model_path=str(trained_run / "model.keras"), **kwargs),
            tmp_path,
        )


@pytest.mark.parametrize(
    "content, reason",
    [
        (None, "is not a .keras file: not a zip archive"),
        ({"config.json": "{not json"}, "cannot be loaded"),
    ],
)
def test_trainer_refuses_a_file_that_does_not_load(tmp_path, content, reason):
    broken = tmp_path / "broken.keras"
    if content is None:
        broken.write_bytes(b"not a zip")
    else:
        with zipfile.ZipFile(broken, "w") as archive:
            for name, text in content.items():
                archive.writestr(name, text)
    result = run_trainer(
        "analyze", f"--model_path={broken}", f"--workdir={tmp_path / 'out'}"
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith("error: model_path=") and reason in lines[-1]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_trainer_analyzes_a_users_model_file(trained_run, tmp_path):
    # A user's own .keras file outside any work directory, with --data.
    model = keras.saving.load_model(trained_run / "model.keras")
    user_file = tmp_path / "mine.keras"
    model.save(user_file)
    config = json.loads((trained_run / "config.json").read_text())
    result = run_trainer(
        "analyze",
        f"--model_path={user_file}",
        f"--data={config['data']}",
        "--prune_units=0,50%",
        "--random_seeds=1",
        "--criteria=max_magnitude,max_frame_potential,random",
        f"--workdir={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "out" / "analysis.json").read_text())
    assert results["pruning"]["layer"] == "conv"  # the first prunable layer
    assert results["spectra"]["layers"][0]["init_source"] == (
        "drawn from the initializer"
    )
    assert len(results["graph"]["frames"]) == 1
    assert (tmp_path / "out" / "report.html").is_file()


@pytest.mark.parametrize("kind", ["factorized", "low_rank"])
def test_every_methods_model_is_analysed_in_its_plain_form(
    trained_run, tiny_idx, tmp_path, kind
):
    model = keras.saving.load_model(trained_run / "model.keras")
    if kind == "factorized":  # DLRA's layers, computing what the model does
        method_model, layer = factorize_model(model), "hidden"
    else:  # LC's layers: the hidden layer at rank 4 exports as two Dense
        method_model, layer = (
            clone_replacing(
                model,
                lambda old: (
                    LowRankDense.from_dense(old, 4) if old.name == "hidden" else None
                ),
            ),
            "hidden_v",
        )
    path = tmp_path / f"{kind}.keras"
    method_model.save(path)
    config = AnalysisConfig(
        model_path=str(path),
        data=str(tiny_idx),
        layer=layer,
        prune_units=(0, 8),
        criteria=("max_magnitude",),
        verbose=0,
    )
    results = analyze(config, tmp_path / "analysis")
    assert results["params"] == deployable_size(method_model)["params"]
    assert results["method_params"] == costs.model_cost(method_model).params
    assert results["pruning"]["curves"][0]["accuracy"][0] == results["test_accuracy"]
    spectra = {entry["name"]: entry for entry in results["spectra"]["layers"]}
    if kind == "factorized":
        assert sorted(spectra) == ["conv", "hidden", "out"]
        trained = json.loads((trained_run / "results.json").read_text())
        assert results["test_accuracy"] == pytest.approx(
            trained["test_accuracy"], abs=1e-6
        )
    else:
        assert sorted(spectra) == ["conv", "hidden_u", "hidden_v", "out"]
        assert (spectra["hidden_v"]["units"], spectra["hidden_v"]["inputs"]) == (16, 4)


def test_data_is_read_beside_below_or_above_the_model(tmp_path):
    def write(folder, data):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"data": data}))

    def data_of(model_path):
        return AnalysisConfig(model_path=str(model_path)).train_config().data

    write(tmp_path / "lc_run" / "lc", "below")  # LC: models beside lc/, finetune/
    assert data_of(tmp_path / "lc_run" / "model_lowrank.keras") == "below"
    write(tmp_path / "prox_run", "above")  # prox: energy_<e>/ below the run
    assert data_of(tmp_path / "prox_run" / "energy_90" / "model_plain.keras") == "above"
    write(tmp_path / "prox_run" / "energy_90", "beside")
    assert (
        data_of(tmp_path / "prox_run" / "energy_90" / "model_plain.keras") == "beside"
    )


def test_a_layer_without_history_is_drawn_once_and_the_report_names_others(
    trained_run, tmp_path
):
    config = AnalysisConfig(
        model_path=str(trained_run / "model.keras"),
        layer="conv",
        prune_units=(0, 2),
        criteria=("max_magnitude",),
        verbose=0,
    )
    graph = analyze(config, tmp_path)["graph"]
    assert [frame["label"] for frame in graph["frames"]] == ["final weights"]
    assert "--record_units=conv" in graph["source"]
    assert "recorded: hidden" in graph["source"]


def test_the_default_layer_is_the_first_the_default_grid_fits():
    inputs = keras.Input((6,))
    x = keras.layers.Dense(1, name="rank_1_factor")(inputs)  # A low-rank pair's u.
    x = keras.layers.Dense(8, name="hidden")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="out")(x))
    assert _first_prunable(model, AnalysisConfig(model_path="m.keras")) == "hidden"
    narrow = AnalysisConfig(model_path="m.keras", prune_units=(8,))
    with pytest.raises(ConfigError, match="wider than every count of --prune_units=8"):
        _first_prunable(model, narrow)
