"""A user's own .keras model on a user's own folder of PNG images, end to end.

The model has what real models have and the zoo lacks: Conv2D,
BatchNormalization, a residual Add, concatenated Dense branches and a softmax
output. Each trainer runs as a subprocess, as a user would run it; a run
killed with SIGKILL and re-run must end with the weights of an uninterrupted
one.
"""

import json

import keras
import numpy as np
import pytest
from synthetic import write_image_folder
from trainer_runs import assert_same_weights, final_weights, kill_after_checkpoint, run

import keras_rank  # noqa: F401  (registers the factorized layers for loading)
from keras_rank import data as data_lib
from keras_rank.layers import FactorizedConv2D, FactorizedDense

pytestmark = pytest.mark.slow

FASHION_CLASSES = (
    "ankle_boot", "bag", "coat", "dress", "pullover",
    "sandal", "shirt", "sneaker", "trouser", "tshirt_top",
)  # fmt: skip
# Fashion-MNIST label -> index of its name above (the folder order).
_LABEL_NAMES = (9, 8, 4, 3, 2, 5, 6, 7, 1, 0)


@pytest.fixture(scope="module")
def png_folder(tmp_path_factory):
    """600 train and 200 test images of the Fashion-MNIST copy, as PNG files."""
    root = data_lib.DEFAULT_DATA_DIR
    splits = {}
    for split, prefix, count in (("train", "train", 600), ("test", "t10k", 200)):
        images = data_lib.read_idx(root / f"{prefix}-images-idx3-ubyte.gz")[:count]
        labels = data_lib.read_idx(root / f"{prefix}-labels-idx1-ubyte.gz")[:count]
        splits[split] = (images, np.take(_LABEL_NAMES, labels))
    return write_image_folder(
        tmp_path_factory.mktemp("fashion_png"), splits, FASHION_CLASSES
    )


def _user_model() -> keras.Model:
    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1), name="image")
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="stem")(
        inputs
    )
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    y = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="block")(x)
    x = keras.layers.Add(name="residual")([x, y])
    x = keras.layers.MaxPooling2D(4, name="pool")(x)
    x = keras.layers.Flatten(name="flatten")(x)
    a = keras.layers.Dense(16, activation="relu", name="branch_a")(x)
    b = keras.layers.Dense(16, activation="relu", name="branch_b")(x)
    x = keras.layers.Concatenate(name="branches")([a, b])
    # Linked to the classifier through Dropout: its fused rows shrink the
    # compact plain model.
    x = keras.layers.Dense(64, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(0.1, name="dropout")(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="classes")(x)
    return keras.Model(inputs, outputs, name="user_net")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("user_model") / "user_net.keras"
    _user_model().save(path)
    return path


def _flags(model_file, png_folder):
    return [
        f"--model_path={model_file}",
        f"--data={png_folder}",
        "--epochs=3",
        "--batch_size=50",
        "--seed=1",
        "--verbose=0",
    ]


# Loose fusion thresholds so that a few steps compress the small layers.
_DLRA_FLAGS = ["--tau_cos=0.3", "--tau_euc=100"]


def _kill_resume_and_compare(trainer, flags, tmp_path, min_accuracy):
    straight = run(trainer, f"--workdir={tmp_path / 'straight'}", *flags)
    assert straight.returncode == 0, straight.stderr
    killed = tmp_path / "killed"
    kill_after_checkpoint(trainer, killed, 1, *flags)
    resumed = run(trainer, f"--workdir={killed}", *flags)
    assert resumed.returncode == 0, resumed.stderr
    assert_same_weights(
        final_weights(tmp_path / "straight"), final_weights(killed)
    )
    results = json.loads((tmp_path / "straight" / "results.json").read_text())
    assert [h["epoch"] for h in results["history"]] == [1, 2, 3]
    assert results["model_source"] == f"file:{flags[0].split('=', 1)[1]}"
    assert results["task_loss"] == {
        "kind": "sparse_categorical_crossentropy",
        "from_logits": False,  # The model ends in softmax.
    }
    assert results["data"]["train_examples"] == 540
    assert results["data"]["test_examples"] == 200
    assert results["test_accuracy"] > min_accuracy  # Chance: 0.1.
    return results


def test_baseline_trains_your_model_on_your_images_and_resumes_after_kill(
    model_file, png_folder, tmp_path
):
    _kill_resume_and_compare(
        "baseline", _flags(model_file, png_folder), tmp_path, min_accuracy=0.3
    )


def test_dlra_compresses_your_model_and_exports_an_equal_plain_model(
    model_file, png_folder, tmp_path
):
    flags = _flags(model_file, png_folder) + _DLRA_FLAGS
    # The loose thresholds fuse vectors far from parallel: a test of the
    # mechanics, not of accuracy (0.255 measured, 0.405 without DLRA).
    results = _kill_resume_and_compare("dlra", flags, tmp_path, min_accuracy=0.15)
    dlra = results["dlra"]
    assert dlra["compression"] > 0.02
    assert dlra["left_as_is"] == [
        {"layer": "stem_bn", "class": "BatchNormalization",
         "reason": "BatchNormalization has no factorized form"},
    ]  # fmt: skip
    assert dlra["compact_model"]["max_abs_diff"] < 1e-5

    workdir = tmp_path / "straight"
    factorized = keras.saving.load_model(workdir / "model.keras")
    compact = keras.saving.load_model(workdir / "model_compact.keras")
    assert any(isinstance(x, FactorizedConv2D) for x in factorized.layers)
    assert any(isinstance(x, FactorizedDense) for x in factorized.layers)
    assert {type(x).__module__.split(".")[0] for x in compact.layers} == {"keras"}
    assert compact.count_params() < _user_model().count_params()
    images = data_lib.read_idx(
        data_lib.DEFAULT_DATA_DIR / "t10k-images-idx3-ubyte.gz"
    )[:100, ..., None].astype(np.float32) / 255
    np.testing.assert_allclose(
        compact.predict(images, verbose=0),
        factorized.predict(images, verbose=0),
        atol=1e-5,
    )
