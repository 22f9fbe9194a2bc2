"""Settings declared once: checks, flag text and the configs built on them."""

import dataclasses
import math

import pytest

from keras_rank.analysis.config import AnalysisConfig
from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import (
    REQUIRED,
    Bounds,
    as_text,
    check_settings,
    parse_text,
    setting,
    settings_of,
)
from keras_rank.data import DataConfig
from keras_rank.dlra import DLRAConfig
from keras_rank.export import ExportConfig
from keras_rank.lc import LCConfig
from keras_rank.prox import ProxConfig
from keras_rank.training import TrainConfig
from trainers.commands import COMMANDS

CONFIGS = (
    DataConfig,
    TrainConfig,
    DLRAConfig,
    LCConfig,
    ProxConfig,
    ExportConfig,
    AnalysisConfig,
)


@dataclasses.dataclass(frozen=True)
class Toy:
    rate: float = setting(0.5, "A rate", bounds="[0, 1)")
    steps: int = setting(3, "Steps", bounds=">= 1", flag="n")
    mode: str = setting("a", "Mode", choices=("a", "b"))
    sizes: tuple[int, ...] = setting((1, 2), "Sizes", bounds="> 0")
    path: str | None = setting(None, "A path")

    def __post_init__(self):
        check_settings(self)


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [
        ("> 0", [1e-9, 5], [0, -1]),
        (">= 1", [1, 2], [0.999]),
        ("[0, 1)", [0, 0.5], [1, -0.1]),
        ("(0, 100]", [100, 1e-3], [0, 100.5]),
        ("< 2", [1.9, -5], [2]),
    ],
)
def test_bounds_hold_what_they_say(text, inside, outside):
    bounds = Bounds.parse(text)
    assert str(bounds) in (text, f"in {text}")
    assert all(value in bounds for value in inside)
    assert not any(value in bounds for value in outside)
    assert math.nan not in bounds


def test_bad_bounds_text_is_refused_at_declaration():
    with pytest.raises(ValueError, match="Cannot read bounds"):
        setting(1, "x", bounds="between 0 and 1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 1.0}, "Expected rate in [0, 1). Received: rate=1.0"),
        (
            {"rate": math.inf},
            "Expected rate to be a finite number in [0, 1). Received: rate=inf",
        ),
        ({"rate": "0.5"}, "Expected rate: a number. Received: rate='0.5'"),
        ({"steps": 0}, "Expected steps (--n) >= 1. Received: steps=0"),
        ({"steps": True}, "Expected steps (--n): an integer. Received: steps=True"),
        ({"mode": "c"}, "Unknown mode 'c'. Expected one of: a, b."),
        ({"sizes": (1, 0)}, "Expected sizes > 0. Received: sizes=0"),
        ({"sizes": "12"}, "Expected sizes: a sequence. Received: sizes='12'"),
    ],
)
def test_check_settings_names_the_setting_and_what_is_allowed(kwargs, message):
    with pytest.raises(ConfigError) as error:
        Toy(**kwargs)
    assert str(error.value) == message


def test_check_settings_stores_tuples_and_accepts_none_where_optional():
    toy = Toy(sizes=[4, 5], path=None)
    assert toy.sizes == (4, 5) and toy.path is None


@pytest.mark.parametrize(
    ("flag_text", "value"),
    [
        ("0.25", 0.25),
        (None, 0.5),
    ],
)
def test_parse_text_reads_a_number_or_keeps_the_default(flag_text, value):
    (rate,) = [item for item in settings_of(Toy) if item.name == "rate"]
    assert parse_text(rate, flag_text) == value


def test_parse_text_errors_name_the_flag():
    items = {item.name: item for item in settings_of(Toy)}
    steps, sizes = items["steps"], items["sizes"]
    with pytest.raises(ConfigError, match="Expected --n to be an integer. Received"):
        parse_text(steps, "x")
    with pytest.raises(ConfigError, match="--sizes to be comma-separated integers"):
        parse_text(sizes, "1,a")
    assert parse_text(sizes, "3, 4,") == (3, 4)


def test_a_mutable_default_is_refused():
    with pytest.raises(TypeError, match="immutable"):
        setting([1], "x")


@pytest.mark.parametrize("config_class", CONFIGS)
def test_every_field_of_every_config_is_a_declared_setting(config_class):
    declared = {item.name for item in settings_of(config_class)}
    assert declared == {field.name for field in dataclasses.fields(config_class)}
    for item in settings_of(config_class):
        assert item.help and not item.help.endswith(" "), item.name


@pytest.mark.parametrize("config_class", CONFIGS)
def test_defaults_pass_their_own_checks_and_survive_flag_text(config_class):
    required = {"model_path": "m.keras"} if config_class is AnalysisConfig else {}
    config = config_class(**required)
    for item in settings_of(config_class):
        if item.repeated or item.default is REQUIRED or item.kind is bool:
            continue
        text = as_text(item, getattr(config, item.name))
        assert parse_text(item, text) == getattr(config, item.name), item.name


def test_flag_names_are_unique_within_every_command():
    for name, command in COMMANDS.items():
        flags = [item.flag for cls in command.configs for item in settings_of(cls)]
        # A base class's settings (DataConfig under TrainConfig) count once.
        seen = {}
        for cls in command.configs:
            for item in settings_of(cls):
                assert seen.setdefault(item.flag, item) == item, (name, item.flag)
        assert flags


def test_todays_flag_names_keep_working():
    flags = {item.name: item.flag for item in settings_of(DLRAConfig)}
    assert flags["frobenius_norm"] == "fn"
    assert {item.name: item.flag for item in settings_of(LCConfig)}["lambdas"] == (
        "lambda"
    )
    assert {item.name: item.flag for item in settings_of(ProxConfig)}["energies"] == (
        "energy"
    )


def test_the_data_settings_are_declared_once_and_shared():
    data = {item.name: item for item in settings_of(DataConfig)}
    for config_class in (TrainConfig, ExportConfig):
        shared = {item.name: item for item in settings_of(config_class)}
        assert all(shared[name] == item for name, item in data.items())
    analysis = {item.name: item for item in settings_of(AnalysisConfig)}
    for name, item in data.items():
        assert analysis[name].help.startswith(item.help.rstrip("."))
        assert analysis[name].bounds == item.bounds
        assert analysis[name].default is None


def test_tau_cos_zero_is_refused_by_the_one_check():
    with pytest.raises(ConfigError, match="Expected tau_cos > 0"):
        DLRAConfig(tau_cos=0.0)
