"""keras-tuner search spaces made from the settings' declarations.

A setting declared with ``search=Search(...)`` (`keras_rank.core.settings`)
is a hyperparameter: `declare` adds every such setting of a config class to
a `keras_tuner.HyperParameters`, named ``<prefix>/<field>``, and `chosen`
reads a trial's values back as keyword arguments of the config class. No
range is written here: it is part of the setting's one declaration. A
relative search (``relative_to``) is a multiple of a scale measured on the
user's net (`tuning.calibration`); `chosen` multiplies it out.
"""

from typing import Any

import keras_tuner

from keras_rank.core.settings import Setting, settings_of


def searched(config_class: type) -> list[Setting]:
    """Returns the settings of `config_class` that declare a search."""
    return [item for item in settings_of(config_class) if item.search is not None]


def _name(prefix: str, item: Setting) -> str:
    return f"{prefix}/{item.name}"


def declare(hp: keras_tuner.HyperParameters, config_class: type, prefix: str) -> None:
    """Adds every searched setting of `config_class` to `hp`.

    An interval of an int setting is an `Int`, of any other a `Float`, on the
    declared scale; declared values are a `Choice`. The default is the
    setting's own when it lies in the search (the first element of a tuple).
    """
    for item in searched(config_class):
        search, name = item.search, _name(prefix, item)
        default = item.default[0] if item.many and item.default else item.default
        if search.values is not None:
            hp.Choice(
                name,
                list(search.values),
                default=default if default in search.values else None,
            )
            continue
        # A relative search's default is a multiple: the setting's own is not one.
        inside = (
            search.relative_to is None
            and default is not None
            and search.low <= default <= search.high
        )
        kind = hp.Int if item.kind is int else hp.Float
        kind(
            name,
            search.low,
            search.high,
            sampling=search.scale,
            default=default if inside else None,
        )


def scales_needed(config_class: type) -> list[str]:
    """Returns the names of the scales `config_class`'s relative searches use."""
    return sorted({item.search.relative_to for item in searched(config_class)} - {None})


def chosen(
    hp: keras_tuner.HyperParameters,
    config_class: type,
    prefix: str,
    scales: dict[str, float] | None = None,
) -> dict:
    """Returns the trial's values of `config_class`'s searched settings.

    A tuple setting (one value per layer group, say) gets the one value.

    Args:
        hp: The trial's hyperparameters.
        config_class: The config class `declare` was given.
        prefix: Its prefix.
        scales: The value of every scale a relative search names
            (`scales_needed`), measured on the user's net.

    Raises:
        KeyError: A relative search's scale is missing from `scales`.
    """
    values: dict[str, Any] = {}
    for item in searched(config_class):
        value = hp.get(_name(prefix, item))
        if item.search.relative_to is not None:
            value = float(value * (scales or {})[item.search.relative_to])
        values[item.name] = (value,) if item.many else value
    return values
