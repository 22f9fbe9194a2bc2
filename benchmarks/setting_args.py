"""Benchmark arguments made from the configs' settings (declared once there).

A benchmark argument that is a setting of a trainer takes its flag name, type,
bounds and help from the declaration (`keras_rank.core.settings`); only its
default (the benchmark's own) is given here. A sweep takes several values,
space-separated, one run each.
"""

import argparse
import dataclasses
import functools
from typing import Any

from keras_rank.core.errors import ConfigError
from keras_rank.core.settings import Setting, as_text, check_value, settings_of


def find_setting(name: str, *config_classes: type) -> Setting:
    """Returns the setting called `name` of the first class that declares it."""
    for config_class in config_classes:
        for item in settings_of(config_class):
            if item.name == name:
                return item
    raise KeyError(f"no setting {name!r} in {[c.__name__ for c in config_classes]}")


def _value(item: Setting, text: str) -> Any:
    """Parses one token of a benchmark argument and checks it."""
    element = dataclasses.replace(item, many=False, repeated=False)
    try:
        kind = element.kind
        value = text if kind is str else kind(text)
        return check_value(element, value)
    except (ValueError, ConfigError) as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def add_setting_argument(
    parser: argparse.ArgumentParser,
    item: Setting,
    *,
    default: Any,
    sweep: bool = False,
    dest: str | None = None,
    default_text: str | None = None,
) -> None:
    """Adds ``--<flag>`` for a setting, with the benchmark's default.

    Args:
        parser: The benchmark's parser.
        item: The setting (`find_setting`).
        default: The benchmark's default value.
        sweep: Take several space-separated values (one run each); a tuple
            setting always takes several.
        dest: The attribute of the parsed arguments; default the field name.
        default_text: How the help shows the default; default the value.
    """
    shown = default_text if default_text is not None else _shown(item, default)
    several = (sweep or item.many) and not (item.kind is bool and not item.many)
    text = dataclasses.replace(item, many=False, repeated=False).describe()
    if several:
        text += " Several values, space-separated."
    options: dict[str, Any] = {
        "dest": dest or item.name,
        "default": default,
        "help": f"{text} (default: {shown})".replace("%", "%%"),
    }
    if item.kind is bool and not item.many:
        options["action"] = argparse.BooleanOptionalAction
    else:
        options["type"] = functools.partial(_value, item)
        if several:
            options["nargs"] = "+"
    parser.add_argument(f"--{item.flag}", **options)


def _shown(item: Setting, default: Any) -> str:
    if isinstance(default, list | tuple):
        return " ".join(map(str, default))
    return str(as_text(dataclasses.replace(item, many=False), default))
