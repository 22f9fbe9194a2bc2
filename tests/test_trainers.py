"""The baseline trainer end to end: real entry point, real flags, subprocesses."""

import gzip
import json

import pytest
from synthetic import make_idx_folder
from trainer_runs import (
    assert_same_weights,
    error_lines,
    final_weights,
    kill_after_checkpoint,
)
from trainer_runs import run as run_trainer

from keras_rank.core.errors import ConfigError
from keras_rank.training import TrainConfig, train_and_evaluate

# The trainers end to end: subprocesses, kill -9 resumes, two-CPU runs.
pytestmark = pytest.mark.slow


def _run(*flags):
    return run_trainer("baseline", *flags)


def test_train_and_evaluate_learns_and_writes_results(tiny_idx, tmp_path):
    config = TrainConfig(
        model="lenet300", data=str(tiny_idx), epochs=2, batch_size=32, verbose=0
    )
    results = train_and_evaluate(config, tmp_path)

    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["params"] == 266_610
    assert saved["flops_mac1"] == 784 * 300 + 300 * 100 + 100 * 10
    assert saved["flops_mac2"] == 2 * saved["flops_mac1"]
    # A plain model is its own deployable form: both counts agree.
    assert saved["deployable"] == {
        "params": saved["params"],
        "flops_mac1": saved["flops_mac1"],
        "flops_mac2": saved["flops_mac2"],
        "counted_from": "plain Keras layers of the exported model",
    }
    assert [h["epoch"] for h in saved["history"]] == [1, 2]
    assert saved["history"][1]["loss"] < saved["history"][0]["loss"]
    assert saved["test_accuracy"] == results["test_accuracy"] > 0.5
    assert saved["data"] == {
        "source": str(tiny_idx),
        "train_examples": 540,
        "validation_examples": 60,
        "test_examples": 200,
    }
    assert (tmp_path / "model.keras").is_file()
    assert list((tmp_path / "tensorboard").glob("train/events.out.tfevents.*"))


def test_rerun_resumes_and_refuses_another_config(tiny_idx, tmp_path):
    config = TrainConfig(
        model="lenet300", data=str(tiny_idx), epochs=1, batch_size=32, verbose=0
    )
    train_and_evaluate(config, tmp_path)
    longer = train_and_evaluate(
        TrainConfig(**{**config.to_dict(), "epochs": 2}), tmp_path
    )
    assert [h["epoch"] for h in longer["history"]] == [1, 2]
    with pytest.raises(ConfigError, match="learning_rate=0.001 there, 0.5 here"):
        train_and_evaluate(
            TrainConfig(**{**config.to_dict(), "learning_rate": 0.5}), tmp_path
        )


def test_mirrored_strategy_over_two_cpus(tiny_idx, tmp_path):
    config = TrainConfig(
        model="lenet300",
        data=str(tiny_idx),
        epochs=1,
        batch_size=32,
        strategy="mirrored",
        cpu_devices=2,
        verbose=0,
    )
    results = train_and_evaluate(config, tmp_path)
    assert results["replicas"] == 2
    assert results["test_accuracy"] > 0.5


def _truncated_idx_folder(folder):
    make_idx_folder(folder, train=50, test=20)
    path = folder / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    return folder, path


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--model=resnet"], ["model 'resnet'", "lenet300", "lenet5", "mlp"]),
        (["--epochs=0"], ["epochs >= 1", "epochs=0"]),
        (["--epochs=abc"], ["--epochs to be an integer", "--epochs=abc"]),
        (["--batch_size=-4"], ["batch_size >= 1", "batch_size=-4"]),
        (["--strategy=tpu"], ["strategy 'tpu'", "mirrored"]),
        (["--data=no/such/folder"], ["no/such/folder", "tfds:NAME"]),
        (["--validation_fraction=1.5"], ["validation_fraction", "[0, 1)"]),
        (["stray"], ["unexpected arguments 'stray'", "--flag=value"]),
    ],
)
def test_bad_flag_exits_non_zero_with_one_clear_line(flags, expected, tmp_path):
    result = _run(f"--workdir={tmp_path / 'w'}", *flags)
    assert result.returncode == 2, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    for text in expected:
        assert text in errors[0]


def test_unwritable_workdir_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = _run(f"--workdir={blocker / 'sub'}")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"error: workdir '{blocker / 'sub'}' is not a writable folder")
    )


def test_bad_idx_file_is_named(tmp_path):
    folder, path = _truncated_idx_folder(tmp_path / "data")
    result = _run(f"--workdir={tmp_path / 'w'}", f"--data={folder}", "--epochs=1")
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert str(path) in last and "truncated" in last


def test_sigkill_then_rerun_finishes_with_uninterrupted_weights(tmp_path):
    # Streamed image folders: tests/test_your_model_your_data.py.
    data = make_idx_folder(tmp_path / "data", train=2000, test=100)
    flags = [
        f"--data={data}",
        "--model=mlp",
        "--epochs=8",
        "--batch_size=50",
        "--seed=3",
        "--verbose=0",
    ]
    straight = _run(f"--workdir={tmp_path / 'straight'}", *flags)
    assert straight.returncode == 0, straight.stderr

    workdir = tmp_path / "killed"
    kill_after_checkpoint("baseline", workdir, 2, *flags)
    resumed = _run(f"--workdir={workdir}", *flags[:-1], "--verbose=2")
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming from" in resumed.stdout
    history = json.loads((workdir / "results.json").read_text())["history"]
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert_same_weights(final_weights(tmp_path / "straight"), final_weights(workdir))
