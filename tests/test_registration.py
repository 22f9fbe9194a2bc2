"""`import keras_rank` alone registers the layers and stays a cheap import."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from trainer_runs import REPO

from keras_rank.dlra import fusion
from keras_rank.layers.factorize import factorize_model, factorized_layers

# Both tests read the module fixture that loads a model in a fresh process.
pytestmark = pytest.mark.slow

# Runs in a fresh interpreter: nothing of keras_rank is imported but the package.
_LOAD_AND_PREDICT = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    before = set(sys.modules)
    import keras_rank
    added = sorted(set(sys.modules) - before)
    model = keras.saving.load_model(sys.argv[1])
    np.save(sys.argv[3], keras.ops.convert_to_numpy(model(np.load(sys.argv[2]))))
    with open(sys.argv[4], "w") as file:
        json.dump(added, file)
    """
)


def _fused_factorized_model() -> keras.Model:
    """A factorized Conv2D + Dense model in which fusions moved P and Q."""
    keras.utils.set_random_seed(0)
    plain = keras.Sequential(
        [
            keras.Input((6, 6, 2)),
            keras.layers.Conv2D(4, 3, activation="relu", name="conv"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(5, activation="relu", name="dense_1"),
            keras.layers.Dense(3, name="dense_2"),
        ]
    )
    model = factorize_model(plain, frobenius_norm=True)
    for layer in factorized_layers(model):
        state = layer.factor_state()
        fusion.fuse_columns(state, 0, 1)
        layer.assign_factor_state(state)
    return model


@pytest.fixture(scope="module")
def fresh_process_load(tmp_path_factory):
    """Saves a fused model; a fresh process imports keras_rank and loads it."""
    folder = tmp_path_factory.mktemp("registration")
    model = _fused_factorized_model()
    images = np.random.default_rng(1).normal(size=(4, 6, 6, 2)).astype(np.float32)
    np.save(folder / "images.npy", images)
    model.save(folder / "model.keras")
    expected = keras.ops.convert_to_numpy(model(images))
    q_indices = [layer.factor_state().q_index for layer in factorized_layers(model)]
    subprocess.run(
        [
            sys.executable,
            "-c",
            _LOAD_AND_PREDICT,
            str(folder / "model.keras"),
            str(folder / "images.npy"),
            str(folder / "outputs.npy"),
            str(folder / "modules.json"),
        ],
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=True,
        timeout=300,
    )
    return {
        "expected": expected,
        "q_indices": q_indices,
        "outputs": np.load(folder / "outputs.npy"),
        "modules": json.loads((folder / "modules.json").read_text()),
    }


def test_fresh_process_loads_fused_model_after_import_keras_rank_only(
    fresh_process_load,
):
    # The fusions made Q non-trivial in every layer, so the saved model is
    # not the plain one it was factorized from.
    for q_index in fresh_process_load["q_indices"]:
        assert not np.array_equal(q_index, np.arange(q_index.size))
    np.testing.assert_allclose(
        fresh_process_load["outputs"],
        fresh_process_load["expected"],
        rtol=1e-5,
        atol=1e-6,
    )


def test_import_keras_rank_loads_nothing_heavy_beyond_keras(fresh_process_load):
    added = fresh_process_load["modules"]
    assert [name for name in added if name.split(".")[0] != "keras_rank"] == []
    for heavy in ("keras_rank.data", "keras_rank.plots", "keras_rank.training"):
        assert heavy not in added


def test_package_exports_every_entry_point_on_first_use():
    import importlib

    import keras_rank

    lazy = keras_rank._LAZY
    assert set(lazy) <= set(keras_rank.__all__) and set(lazy) <= set(dir(keras_rank))
    for name, module in lazy.items():
        assert getattr(keras_rank, name) is getattr(
            importlib.import_module(module), name
        )
    assert callable(keras_rank.train_lc) and callable(keras_rank.deployable_model)
    with pytest.raises(AttributeError, match="no attribute 'train_nothing'"):
        keras_rank.train_nothing  # noqa: B018
