"""Flags generated from the configs' settings, and one way to report bad input.

Every flag of every trainer is a setting of a config class
(`keras_rank.core.settings`): `define_flags` defines them, `config_from_flags`
builds the frozen config from the parsed values, `help_text` lists them
grouped by config. Nothing here repeats a name, default, bound or help text
of a setting. `run_command` runs a trainer's ``main`` the one way every bad
input ends: one line on stderr, exit status 2.
"""

import functools
import re
import sys
import textwrap
from collections.abc import Callable
from typing import Any, NoReturn

from absl import app, flags

from keras_rank.core.errors import KerasRankError
from keras_rank.core.settings import Setting, as_text, parse_text, settings_of
from trainers import startup
from trainers.commands import COMMANDS, command_sections, module_of, own_settings

USAGE_EXIT = 2
"""The exit status of every refused input, flag parsing included."""

HELP_FLAGS = ("--help", "-help", "-h", "--helpshort", "-helpshort", "-?")


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


def refuse(message: str) -> NoReturn:
    """Writes ``error: <message>`` as one line on stderr; exits with status 2."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    sys.exit(USAGE_EXIT)


def run_or_exit(fn: Callable[[], object]) -> None:
    """Runs `fn`; bad input becomes one line on stderr and exit status 2."""
    try:
        fn()
    except KerasRankError as error:
        refuse(str(error))


def _flag_line(item: Setting) -> str:
    name = (
        f"--[no]{item.flag}"
        if item.kind is bool and not item.many
        else f"--{item.flag}"
    )
    return f"  {name} (default: {item.shown_default})"


def help_text(name: str) -> str:
    """Returns command `name`'s ``--help``: what it does, every flag, grouped.

    The groups are the config classes that declare the flags, in the order
    of docs/cli.md, which holds the same text as tables.
    """
    command = COMMANDS[name]
    lines = [
        f"python -m {module_of(name)}: {command.summary}",
        "",
        f"    {command.usage}",
        "",
        "Flags (--flag=value), grouped by the config that declares them (docs/cli.md):",
    ]
    for config_class in command_sections(name):
        settings = own_settings(config_class)
        if not settings:
            continue
        lines += ["", f"{config_class.__name__} ({config_class.__module__}):"]
        for item in settings:
            lines.append(_flag_line(item))
            lines += textwrap.wrap(
                item.describe(),
                width=79,
                initial_indent=" " * 6,
                subsequent_indent=" " * 6,
            )
    return "\n".join(lines)


def _parse_error(error: flags.Error) -> str:
    """Rewrites an absl parse error in the words of the other refusals."""
    text = str(error).rstrip(".")
    missing = re.search(r"Flag --(\w+) must have a value other than None", text)
    if missing:
        return f"--{missing.group(1)} is required"
    boolean = re.fullmatch(r"flag --(\w+)=(.*): \('Non-boolean argument.*", text)
    if boolean:
        name, value = boolean.groups()
        return (
            f"Expected --{name} to be true or false (or --no{name}). "
            f"Received: --{name}={value}"
        )
    return text


def parse_flags(name: str, argv: list[str]) -> list[str]:
    """Parses command `name`'s flags; help and every refusal end here.

    ``--help`` (``-h``, ``--helpshort``) prints `help_text` and exits 0. An
    unknown flag, a missing required one, a malformed boolean or a
    positional argument is one ``error:`` line and exit status 2, like a
    bad value found later (`run_or_exit`).

    Returns:
        `argv` as absl leaves it (the program name alone).
    """
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(help_text(name))
        sys.exit(0)
    try:
        rest = flags.FLAGS(argv)
    except flags.Error as error:
        refuse(f"{_parse_error(error)}. Run with --help to list the flags.")
    if len(rest) > 1:
        refuse(
            f"unexpected arguments {' '.join(rest[1:])!r}; "
            "trainers take --flag=value only."
        )
    return rest


def run_command(name: str, main: Callable[[list[str]], None]) -> None:
    """Runs `main` as command `name` with absl (`parse_flags` parses).

    TensorFlow's Python logger shows errors only, unless ``--tf_logs``.
    """

    def logged_main(argv: list[str]) -> None:
        startup.show_tensorflow_logs(flags.FLAGS.tf_logs)
        main(argv)

    app.run(logged_main, flags_parser=functools.partial(parse_flags, name))
