"""Every command line: --help lists every flag; every bad input is one line, exit 2.

The refusals run the real entry points as subprocesses and check that the
work directory was not created: a rejected run writes nothing.
"""

import json

import keras
import numpy as np
import pytest
from trainer_runs import error_lines, run

from keras_rank.core.errors import ConfigError
from keras_rank.training import TrainConfig
from keras_rank.training.run import check_workdir, write_run_config
from trainers import common
from trainers.commands import COMMANDS, module_of


@pytest.mark.parametrize("name", list(COMMANDS))
def test_help_lists_every_flag_of_the_command_grouped(name):
    text = common.help_text(name)
    for item in common.flag_settings(*COMMANDS[name].configs):
        assert f"--{item.flag} (default:" in text or f"--[no]{item.flag} (" in text
    for config_class in COMMANDS[name].configs:
        assert f"\n{config_class.__name__} (" in text
    assert text.startswith(f"python -m {module_of(name)}: ")


@pytest.mark.slow
@pytest.mark.parametrize("flag", ["--help", "-h", "--helpshort"])
def test_help_flag_prints_the_flags_and_exits_0(flag):
    result = run("baseline", flag)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == common.help_text("baseline")


def _subclassed_model_file(folder):
    class MyNet(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.head = keras.layers.Dense(10)

        def call(self, x):
            return self.head(keras.ops.reshape(x, (-1, 784)))

    model = MyNet()
    model(np.zeros((1, 28, 28, 1), "float32"))
    path = folder / "subclassed.keras"
    model.save(path)
    return path


def _small_cnn_file(folder):
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.Flatten()(x)
    model = keras.Model(inputs, keras.layers.Dense(10)(x))
    path = folder / "cnn.keras"
    model.save(path)
    return path


BAD_INPUTS = [
    ("baseline", ["--bogus=1"], "Unknown command line flag 'bogus'"),
    ("baseline", ["stray"], "unexpected arguments 'stray'"),
    ("baseline", ["--deterministic=maybe"], "--deterministic to be true or false"),
    ("baseline", ["--epochs"], "Missing value for flag --epochs"),
    ("baseline", ["--seed=-1"], "Expected seed in [0, 4294967295]"),
    ("baseline", ["--split_seed=4294967296"], "split_seed in [0, 4294967295]"),
    (
        "baseline",
        ["--learning_rate=inf"],
        "Expected learning_rate to be a finite number > 0. Received: learning_rate=inf",
    ),
    ("baseline", ["--learning_rate=nan"], "learning_rate to be a finite number"),
    ("dlra", ["--lambda2=inf"], "Expected lambda2 to be a finite number >= 0"),
    ("lc", ["--tolerance=inf"], "Expected tolerance to be a finite number"),
    ("lc", ["--mu0=inf"], "Expected mu0 to be a finite number > 0"),
    ("prox", ["--epochs=1", "--reload_epoch=5"], "reload_epoch below epochs (1)"),
    ("baseline", ["--model_path={fake}"], "is not a .keras file: not a zip"),
    ("baseline", ["--model_path={subclassed}"], "model class 'MyNet' is not"),
    (
        "lc",
        ["--model=lenet300", "--reference={cnn}"],
        "Expected --reference to be the net --model=lenet300 names",
    ),
    ("lc", ["--workdir={file}"], "is not a writable folder: it is a file"),
    ("prox", ["--workdir={file}/sub"], "is not a writable folder: '"),
    ("export", ["--formats=float8"], "formats"),
    ("analyze", ["--model_path={fake}"], "is not a .keras file"),
    ("tuning.search", ["--budget=flops"], "budget"),
    ("tuning.search", ["--reference={fake}"], "reference="),
    ("tuning.search", ["--model_path={subclassed}"], "model class 'MyNet'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    "trainer, flags, expected", BAD_INPUTS, ids=lambda x: str(x)[:40]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    trainer, flags, expected, tmp_path
):
    fake = tmp_path / "fake.keras"
    fake.write_text("not a zip")
    file = tmp_path / "a_file"
    file.write_text("")
    paths = {"fake": fake, "file": file}
    if any("{subclassed}" in flag for flag in flags):
        paths["subclassed"] = _subclassed_model_file(tmp_path)
    if any("{cnn}" in flag for flag in flags):
        paths["cnn"] = _small_cnn_file(tmp_path)
    flags = [flag.format(**paths) for flag in flags]
    workdir = tmp_path / "w"
    if not any(flag.startswith("--workdir") for flag in flags):
        flags.insert(0, f"--workdir={workdir}")
    if trainer == "export":
        flags.append(f"--model_path={fake}")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = run(trainer, *flags)
    assert result.returncode == 2, result.stderr
    errors = error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith("error: ") and expected in errors[0], errors[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_reused_workdir_names_only_the_settings_that_differ(tmp_path):
    config = TrainConfig(model="mlp", epochs=2)
    method = {"lc": {"mu0": 5e-4, "lambdas": [1e-5]}}
    write_run_config(tmp_path, config, method)
    check_workdir(tmp_path, config, method)  # the same run resumes
    changed = TrainConfig(model="mlp", epochs=2, learning_rate=0.01, batch_size=128)
    with pytest.raises(ConfigError) as error:
        check_workdir(tmp_path, changed, {"lc": {"mu0": 0.05, "lambdas": [1e-5]}})
    message = str(error.value)
    assert "learning_rate=0.001 there, 0.01 here" in message
    assert "method.lc.mu0=0.0005 there, 0.05 here" in message
    for same in ("batch_size", "lambdas", "model", "epochs"):
        assert same not in message
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["learning_rate"] == 0.001  # the refusal wrote nothing
    # A setting added to the method since that run does not stop the resume;
    # another method's settings do.
    check_workdir(tmp_path, config, {"lc": {**method["lc"], "rank_multiple": 1}})
    with pytest.raises(ConfigError, match="method.prox.tau=None there"):
        check_workdir(tmp_path, config, {"prox": {"tau": 2.0}})


def test_check_workdir_writes_nothing(tmp_path):
    workdir = tmp_path / "a" / "b"
    check_workdir(workdir, TrainConfig(model="mlp"))
    assert not (tmp_path / "a").exists()
