"""Flags generated from the configs' settings, and one way to report bad input.

Every flag of every trainer is a setting of a config class
(`keras_rank.core.settings`): `define_flags` defines them, `config_from_flags`
builds the frozen config from the parsed values. Nothing here repeats a
name, default, bound or help text of a setting.
"""

import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags

from keras_rank.core.errors import KerasRankError
from keras_rank.core.settings import Setting, as_text, parse_text, settings_of


def flag_settings(*config_classes: type) -> list[Setting]:
    """Returns the settings of the classes, each flag once, in declaration order.

    A setting of a base class (`DataConfig` under `TrainConfig`) and a flag
    two classes share count once.
    """
    found: dict[str, Setting] = {}
    for config_class in config_classes:
        for item in settings_of(config_class):
            found.setdefault(item.flag, item)
    return list(found.values())


def define_flags(*config_classes: type) -> None:
    """Defines one absl flag per setting of the given config classes.

    Booleans are absl booleans (``--fn`` / ``--nofn``); every other setting
    is read as text and parsed by `config_from_flags`, so a bad value is one
    `ConfigError` line naming the flag, like any other bad input.
    """
    for item in flag_settings(*config_classes):
        if item.kind is bool and not item.many:
            flags.DEFINE_bool(item.flag, item.default, item.describe())
        elif item.repeated:
            flags.DEFINE_multi_string(item.flag, None, item.describe())
        else:
            default = None if item.required else as_text(item, item.default)
            flags.DEFINE_string(item.flag, default, item.describe())
        if item.required:
            flags.mark_flag_as_required(item.flag)


def flag_values(config_class: type) -> dict[str, Any]:
    """Returns the parsed values of `config_class`'s settings, by field name."""
    values = {}
    for item in settings_of(config_class):
        value = flags.FLAGS[item.flag].value
        if item.repeated:
            value = tuple(value or ())
        elif not (item.kind is bool and not item.many):
            value = parse_text(item, value)
        values[item.name] = value
    return values


def config_from_flags(config_class: type, **overrides: Any) -> Any:
    """Builds the frozen `config_class` from the parsed flags.

    Raises:
        ConfigError: A flag's text or value is not allowed.
    """
    return config_class(**{**flag_values(config_class), **overrides})


def run_or_exit(fn: Callable[[], object]) -> None:
    """Runs `fn`; bad input becomes one line on stderr and exit status 2."""
    try:
        fn()
    except KerasRankError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def reject_arguments(argv: list[str]) -> None:
    """Refuses positional arguments: trainers take flags only."""
    if len(argv) > 1:
        raise app.UsageError(
            f"error: unexpected arguments {' '.join(argv[1:])!r}; "
            "trainers take --flag=value only."
        )
