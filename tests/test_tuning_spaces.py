"""Search spaces come from the settings' declarations, never written twice."""

import dataclasses

import keras_tuner
import pytest

from keras_rank.core.settings import Search, check_settings, setting, settings_of
from keras_rank.dlra import DLRAConfig
from keras_rank.lc import LCConfig
from keras_rank.prox import ProxConfig
from tuning.calibration import SCALES
from tuning.spaces import chosen, declare, scales_needed, searched
from tuning.tuner import declare_space


@dataclasses.dataclass(frozen=True)
class Toy:
    rate: float = setting(0.1, "Rate", bounds="> 0", search=Search(1e-3, 1.0, "log"))
    steps: int = setting(3, "Steps", bounds=">= 1", search=Search(1, 8))
    mode: str = setting(
        "a", "Mode", choices=("a", "b", "c"), search=Search(values=("a", "c"))
    )
    taus: tuple[float, ...] = setting(
        (5.0,), "Taus", bounds=">= 0", search=Search(0.0, 2.0)
    )
    fixed: int = setting(1, "Not searched")

    def __post_init__(self):
        check_settings(self)


def _space(hp):
    return {item.name: item for item in hp.space}


def test_declared_searches_become_hyperparameters():
    hp = keras_tuner.HyperParameters()
    declare(hp, Toy, "toy")
    space = _space(hp)
    assert set(space) == {"toy/rate", "toy/steps", "toy/mode", "toy/taus"}
    rate, steps = space["toy/rate"], space["toy/steps"]
    mode, taus = space["toy/mode"], space["toy/taus"]
    assert isinstance(rate, keras_tuner.engine.hyperparameters.Float)
    assert (rate.min_value, rate.max_value, rate.sampling) == (1e-3, 1.0, "log")
    assert rate.default == 0.1
    assert isinstance(steps, keras_tuner.engine.hyperparameters.Int)
    assert (steps.min_value, steps.max_value, steps.default) == (1, 8, 3)
    assert mode.values == ["a", "c"] and mode.default == "a"
    # A default outside the search (5 > 2) is not imposed on it.
    assert taus.default == 0.0


def test_chosen_values_build_the_config():
    hp = keras_tuner.HyperParameters()
    declare(hp, Toy, "toy")
    trial = {"toy/rate": 0.5, "toy/steps": 2, "toy/mode": "c", "toy/taus": 1.5}
    hp.values.update(trial)
    values = chosen(hp, Toy, "toy")
    assert values == {"rate": 0.5, "steps": 2, "mode": "c", "taus": (1.5,)}
    assert Toy(**values).taus == (1.5,)


def test_dlra_searches_its_thresholds_on_a_log_scale():
    names = [item.name for item in searched(DLRAConfig)]
    assert names == ["lambda1", "tau_cos", "tau_euc"]
    hp = keras_tuner.HyperParameters()
    declare(hp, DLRAConfig, "dlra")
    assert all(item.sampling == "log" for item in hp.space)
    DLRAConfig(**chosen(hp, DLRAConfig, "dlra"))  # the defaults pass the checks


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"bounds": "> 0", "search": Search(0.0, 1.0)}, "outside bounds"),
        ({"choices": ("a",), "search": Search(values=("a", "b"))}, "outside choices"),
    ],
)
def test_a_search_outside_what_is_allowed_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        setting(1.0, "x", **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"low": 1.0, "high": 1.0}, "low < high"),
        ({"low": 0.0, "high": 1.0, "scale": "log"}, "low > 0"),
        ({"low": 0.0, "high": 1.0, "scale": "cubic"}, "Unknown search scale"),
        ({"low": 0.0, "values": (1,)}, "an interval or values"),
    ],
)
def test_a_bad_search_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Search(**kwargs)


def test_the_cli_reference_shows_the_search():
    (lambda1,) = [item for item in settings_of(DLRAConfig) if item.name == "lambda1"]
    assert lambda1.describe().endswith("searched in [0.01, 100] (log).")


@dataclasses.dataclass(frozen=True)
class Scaled:
    lam: tuple[float, ...] = setting(
        (2e-5,),
        "Lambda",
        bounds=">= 0",
        search=Search(0.1, 2.0, "log", relative_to="u"),
    )

    def __post_init__(self):
        check_settings(self)


def test_a_relative_search_is_a_multiple_of_its_measured_scale():
    hp = keras_tuner.HyperParameters()
    declare(hp, Scaled, "s")
    (item,) = hp.space
    # The space holds multiples; the setting's own default is not one.
    assert (item.min_value, item.max_value, item.default) == (0.1, 2.0, 0.1)
    hp.values["s/lam"] = 0.5
    assert scales_needed(Scaled) == ["u"]
    assert chosen(hp, Scaled, "s", {"u": 4e-6}) == {"lam": (2e-6,)}
    with pytest.raises(KeyError, match="u"):
        chosen(hp, Scaled, "s", {})


def test_a_relative_search_needs_bounds_that_admit_every_positive_value():
    with pytest.raises(ValueError, match="admitting all > 0"):
        setting(1.0, "x", bounds="[0, 1]", search=Search(0.1, 2.0, relative_to="u"))
    with pytest.raises(ValueError, match="multiples > 0"):
        Search(0.0, 2.0, relative_to="u")
    with pytest.raises(ValueError, match="Only an interval"):
        Search(values=(1, 2), relative_to="u")
    assert "x u (log)" in Search(0.1, 2.0, "log", relative_to="u").describe()


def test_lc_and_prox_search_relative_spaces_and_dlra_absolute_ones():
    assert scales_needed(LCConfig) == ["lc_lambda_scale"]
    assert scales_needed(ProxConfig) == ["prox_tau_scale"]
    assert scales_needed(DLRAConfig) == []
    assert set(scales_needed(LCConfig) + scales_needed(ProxConfig)) <= set(SCALES)


def test_several_methods_make_the_method_a_choice_and_their_settings_conditional():
    hp = declare_space(("dlra", "lc", "prox"))
    names = {item.name for item in hp.space}
    assert {"method", "dlra/lambda1", "lc/lambdas", "prox/tau"} <= names
    hp.values["method"] = "lc"
    assert hp.is_active("lc/lambdas") and not hp.is_active("prox/tau")
    single = declare_space(("lc",))
    assert [item.name for item in single.space] == ["lc/lambdas"]
