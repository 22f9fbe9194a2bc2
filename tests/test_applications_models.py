"""keras.applications' mobile nets through every method, the export and the analysis.

MobileNetV2 (depthwise, BatchNormalization, ReLU6, inverted residual Adds)
and MobileNetV3Small (hard-swish written as tensor arithmetic,
squeeze-and-excite Multiply gates), built with weights=None at 32x32x3, as
a user brings them: saved to a .keras file, trained for one epoch on a tiny
image folder. About 25 minutes on 2 cores (big graphs to trace in every
run, an analysis per layer), so `make test` leaves them out and
`make test-applications` runs them.
"""

import json
import pathlib

import keras
import numpy as np
import pytest
from synthetic import class_images, write_image_folder

from keras_rank.analysis.config import AnalysisConfig
from keras_rank.analysis.run import analyze
from keras_rank.dlra.config import DLRAConfig
from keras_rank.dlra.run import train_dlra
from keras_rank.export import ExportConfig, export_models
from keras_rank.lc.config import LCConfig
from keras_rank.lc.run import train_lc
from keras_rank.prox.config import ProxConfig
from keras_rank.prox.run import train_prox
from keras_rank.training import NoCompression, TrainConfig, run_method

pytestmark = [pytest.mark.slow, pytest.mark.applications]


def _rgb(count, seed):
    images, labels = class_images(count, 10, seed)
    images = np.pad(images, ((0, 0), (2, 2), (2, 2)))
    return np.repeat(images[..., None], 3, axis=-1), labels


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory) -> pathlib.Path:
    names = tuple(f"class_{label}" for label in range(10))
    return write_image_folder(
        tmp_path_factory.mktemp("rgb"),
        {"train": _rgb(160, 0), "test": _rgb(40, 1)},
        names,
    )


APPLICATIONS = {
    "mobilenet_v2": lambda: keras.applications.MobileNetV2(
        input_shape=(32, 32, 3), alpha=0.35, weights=None, classes=10,
        classifier_activation=None,
    ),
    "mobilenet_v3_small": lambda: keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3), minimalistic=False, weights=None, classes=10,
        include_preprocessing=False, classifier_activation=None,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(APPLICATIONS))
def test_every_method_export_and_analysis_run_on_an_application(
    name, rgb_folder, tmp_path
):
    keras.utils.set_random_seed(0)
    APPLICATIONS[name]().save(tmp_path / "initial.keras")
    config = TrainConfig(
        data=str(rgb_folder),
        model_path=str(tmp_path / "initial.keras"),
        epochs=1,
        batch_size=16,
        verbose=0,
    )
    run_method(NoCompression(), config, tmp_path / "baseline")
    train_dlra(config, DLRAConfig(), tmp_path / "dlra")
    train_lc(
        config,
        LCConfig(lc_steps=2, finetune_epochs=1, baselines=False),
        tmp_path / "lc",
        reference=str(tmp_path / "baseline" / "model.keras"),
    )
    train_prox(config, ProxConfig(energies=(90.0,)), tmp_path / "prox")
    lc_model = next((tmp_path / "lc").glob("lambda_*/model_lowrank.keras"))
    prox_model = tmp_path / "prox" / "energy_90" / "model_lowrank.keras"
    models = {
        "baseline": tmp_path / "baseline" / "model.keras",
        "dlra": tmp_path / "dlra" / "model.keras",
        "lc": lc_model,
        "prox": prox_model,
    }
    exported = export_models(
        {key: keras.saving.load_model(path) for key, path in models.items()},
        tmp_path / "export",
        ExportConfig(
            formats="float32", data=str(rgb_folder), latency_invocations=1, verbose=0
        ),
        baseline="baseline",
    )
    for key in models:
        file = exported["models"][key]["formats"]["float32"]
        assert file["max_abs_diff"] < 1e-3, key
    keras_costs = {key: exported["models"][key]["keras"] for key in models}
    assert keras_costs["lc"]["flops_mac1"] <= keras_costs["baseline"]["flops_mac1"]
    report = analyze(
        AnalysisConfig(model_path=str(models["baseline"]), random_seeds=1, verbose=0),
        tmp_path / "analysis",
    )
    assert report["pruning"]["layer"] and report["spectra"]
    saved = json.loads((tmp_path / "analysis" / "analysis.json").read_text())
    assert saved["pruning"]["layer"] == report["pruning"]["layer"]
