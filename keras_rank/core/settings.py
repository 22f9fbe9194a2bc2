"""Every setting declared once: a config field with its help, bounds and flag.

A config class of keras_rank is a frozen dataclass whose fields are declared
with `setting`::

    @dataclasses.dataclass(frozen=True)
    class LCConfig:
        mu0: float = setting(5e-4, "Penalty parameter of the first LC step.",
                             bounds="> 0")

        def __post_init__(self):
            check_settings(self)

From these declarations alone come the config's own checks (`check_settings`:
type, choices and bounds, one `ConfigError` naming the setting and what is
allowed), the trainers' command-line flags and their parsing
(`parse_text`), the CLI reference in docs/ (`describe`) and the benchmarks'
argument lists. Checks that relate several fields stay in `__post_init__`.
"""

import dataclasses
import functools
import math
import os
import re
import types
import typing
from collections.abc import Sequence
from typing import Any

from keras_rank.core.errors import ConfigError

_KEY = "keras_rank.setting"

REQUIRED = dataclasses.MISSING
"""The default of a setting that must be given (it has none)."""

SEED_BOUNDS = "[0, 4294967295]"
"""The bounds of a seed: those of NumPy's (and so Keras's) seeds, [0, 2**32)."""


@dataclasses.dataclass(frozen=True)
class Bounds:
    """An interval of allowed numbers, written like ``"[0, 1)"`` or ``"> 0"``.

    Attributes:
        low: Lower end, or None.
        high: Upper end, or None.
        low_closed: Whether `low` itself is allowed.
        high_closed: Whether `high` itself is allowed.
    """

    low: float | None = None
    high: float | None = None
    low_closed: bool = True
    high_closed: bool = True

    @classmethod
    def parse(cls, text: str) -> "Bounds":
        """Reads ``"> 0"``, ``">= 1"``, ``"< 1"``, ``"[0, 1)"``, ``"(0, 100]"``."""
        text = text.strip()
        one_sided = re.fullmatch(r"(>=|>|<=|<)\s*(\S+)", text)
        if one_sided:
            op, value = one_sided.group(1), float(one_sided.group(2))
            if op.startswith(">"):
                return cls(low=value, low_closed=op == ">=")
            return cls(high=value, high_closed=op == "<=")
        interval = re.fullmatch(r"([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])", text)
        if not interval:
            raise ValueError(f"Cannot read bounds {text!r}")
        return cls(
            low=float(interval.group(2)),
            high=float(interval.group(3)),
            low_closed=interval.group(1) == "[",
            high_closed=interval.group(4) == "]",
        )

    def admits_all(self, other: "Bounds") -> bool:
        """Whether every number within `other` is within these bounds."""
        if self.low is not None and (
            other.low is None
            or other.low < self.low
            or (other.low == self.low and other.low_closed and not self.low_closed)
        ):
            return False
        if self.high is not None and (
            other.high is None
            or other.high > self.high
            or (other.high == self.high and other.high_closed and not self.high_closed)
        ):
            return False
        return True

    def __contains__(self, value: float) -> bool:
        if self.low is not None and not (
            value >= self.low if self.low_closed else value > self.low
        ):
            return False
        if self.high is not None and not (
            value <= self.high if self.high_closed else value < self.high
        ):
            return False
        return True

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>=' if self.low_closed else '>'} {_number(self.low)}"
        if self.low is None:
            return f"{'<=' if self.high_closed else '<'} {_number(self.high)}"
        return (
            f"in {'[' if self.low_closed else '('}{_number(self.low)}, "
            f"{_number(self.high)}{']' if self.high_closed else ')'}"
        )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


@dataclasses.dataclass(frozen=True)
class Search:
    """Where a tuner searches a setting: an interval on a scale, or choices.

    Attributes:
        low: Lower end of the interval (None with `values`).
        high: Upper end.
        scale: "linear" or "log" (log needs ``low > 0``).
        values: The choices, instead of an interval.
        relative_to: The name of a scale measured on the user's net (e.g.
            "lc_lambda_scale"): the interval is then of multiples of it, so
            that one space fits nets of any size (`tuning.calibration`).
            None: the interval is of the setting's own values.
    """

    low: float | None = None
    high: float | None = None
    scale: str = "linear"
    values: tuple[Any, ...] | None = None
    relative_to: str | None = None

    def __post_init__(self):
        if self.values is not None:
            if self.low is not None or self.high is not None or not self.values:
                raise ValueError(f"A search has an interval or values: {self}")
            if self.relative_to is not None:
                raise ValueError(f"Only an interval can be relative: {self}")
            object.__setattr__(self, "values", tuple(self.values))
            return
        if self.scale not in ("linear", "log"):
            raise ValueError(f"Unknown search scale {self.scale!r}")
        if self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"A search interval needs low < high: {self}")
        if self.scale == "log" and not self.low > 0:
            raise ValueError(f"A log search needs low > 0: {self}")
        if self.relative_to is not None and not self.low > 0:
            raise ValueError(f"A relative search needs multiples > 0: {self}")

    def describe(self) -> str:
        """Returns e.g. ``"in [0.01, 100] (log)"`` or ``"over 80, 90, 100"``."""
        if self.values is not None:
            return "over " + ", ".join(map(str, self.values))
        unit = "" if self.relative_to is None else f" x {self.relative_to}"
        return f"in [{self.low:g}, {self.high:g}]{unit} ({self.scale})"


@dataclasses.dataclass(frozen=True)
class _Declared:
    help: str
    flag: str | None
    choices: tuple[Any, ...] | None
    bounds: Bounds | None
    shown_default: str | None
    repeated: bool
    search: Search | None


def setting(
    default: Any,
    help: str,
    *,
    flag: str | None = None,
    choices: Sequence[Any] | None = None,
    bounds: str | None = None,
    shown_default: str | None = None,
    repeated: bool = False,
    search: Search | None = None,
) -> Any:
    """Declares a config field as a setting.

    Args:
        default: The default value (`REQUIRED` for none); tuples for lists.
        help: One line saying what it does, for flags and docs.
        flag: The command-line flag's name where it is not the field's.
        choices: The allowed values, when there are few.
        bounds: The allowed interval of a number (of each element of a
            tuple), e.g. ``"> 0"`` or ``"[0, 1)"``.
        shown_default: How docs show the default, where its value depends on
            the machine (a path).
        repeated: A tuple given as a repeated flag (``--x=a --x=b``), not
            comma-separated (paths, which may hold commas).
        search: Where a tuner searches it (`tuning.spaces`); its interval
            lies within `bounds`, its values among `choices`.

    Returns:
        A `dataclasses.field` carrying the declaration.
    """
    if isinstance(default, list | dict | set):
        raise TypeError(f"A setting's default must be immutable; got {default!r}")
    parsed = None if bounds is None else Bounds.parse(bounds)
    if search is not None:
        ends = search.values if search.values is not None else (search.low, search.high)
        if search.relative_to is not None:
            # Positive multiples of a positive scale: any value > 0.
            positive = Bounds(low=0.0, low_closed=False)
            if parsed is not None and not parsed.admits_all(positive):
                raise ValueError(f"Search {search} needs bounds admitting all > 0")
        elif parsed is not None and not all(end in parsed for end in ends):
            raise ValueError(f"Search {search} reaches outside bounds {parsed}")
        if choices is not None and not set(ends) <= set(choices):
            raise ValueError(f"Search {search} reaches outside choices {choices}")
    declared = _Declared(
        help=help,
        flag=flag,
        choices=None if choices is None else tuple(choices),
        bounds=parsed,
        shown_default=shown_default,
        repeated=repeated,
        search=search,
    )
    return dataclasses.field(default=default, metadata={_KEY: declared})


def like(config_class: type, name: str, default: Any, note: str) -> Any:
    """Declares a field as the setting `name` of `config_class`, another default.

    The help, bounds, choices and flag stay those of the one declaration;
    `note` says what the new default means.

    Args:
        config_class: The class that declares the setting.
        name: Its field name.
        default: This field's default.
        note: Appended to the help, e.g. "default: the run's".
    """
    field = next(f for f in dataclasses.fields(config_class) if f.name == name)
    declared = dataclasses.replace(
        field.metadata[_KEY], help=f"{field.metadata[_KEY].help.rstrip('.')}; {note}"
    )
    return dataclasses.field(default=default, metadata={_KEY: declared})


@dataclasses.dataclass(frozen=True)
class Setting:
    """One declared setting of a config class, with its type resolved.

    Attributes:
        name: The field's name.
        flag: The command-line flag's name.
        help: What it does.
        default: Its default (`REQUIRED` when it has none).
        kind: The type of the value (of each element for a tuple): bool,
            int, float or str (str also for mixed element types).
        many: Whether the value is a tuple (a comma-separated flag).
        optional: Whether None is allowed.
        choices: The allowed values, or None.
        bounds: The allowed interval, or None.
        shown_default: The default as docs show it.
        repeated: Whether a tuple is given as a repeated flag.
        search: Where a tuner searches it, or None.
    """

    name: str
    flag: str
    help: str
    default: Any
    kind: type
    many: bool
    optional: bool
    choices: tuple[Any, ...] | None
    bounds: Bounds | None
    shown_default: str
    repeated: bool
    search: Search | None

    @property
    def required(self) -> bool:
        """Whether the setting has no default."""
        return self.default is REQUIRED

    def describe(self) -> str:
        """Returns the help text with what is allowed, e.g. ``"...; > 0."``."""
        allowed = []
        if self.choices is not None:
            allowed.append("one of " + ", ".join(map(str, self.choices)))
        if self.bounds is not None:
            allowed.append(str(self.bounds))
        if self.repeated:
            allowed.append("repeat the flag for several")
        elif self.many:
            allowed.append("comma-separated")
        if self.search is not None:
            allowed.append(f"searched {self.search.describe()}")
        text = self.help.rstrip(".")
        return f"{text}; {', '.join(allowed)}." if allowed else f"{text}."


def _resolve(annotation: Any) -> tuple[type, bool, bool]:
    """(kind, many, optional) of a field annotation."""
    optional = False
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) in (
        typing.Union,
    ):
        optional = type(None) in args
        rest = [arg for arg in args if arg is not type(None)]
        annotation = rest[0] if len(rest) == 1 else str
    many = typing.get_origin(annotation) is tuple
    if many:
        element = typing.get_args(annotation)[0]
        kind = element if element in (bool, int, float, str) else str
    else:
        kind = annotation if annotation in (bool, int, float, str) else str
    return kind, many, optional


@functools.cache
def settings_of(config_class: type) -> tuple[Setting, ...]:
    """Returns the declared settings of a config dataclass, in field order."""
    hints = typing.get_type_hints(config_class)
    found = []
    for field in dataclasses.fields(config_class):
        declared = field.metadata.get(_KEY)
        if declared is None:
            continue
        kind, many, optional = _resolve(hints[field.name])
        default = field.default
        shown = declared.shown_default
        if shown is None:
            shown = "(required)" if default is REQUIRED else _shown(default)
        found.append(
            Setting(
                name=field.name,
                flag=declared.flag or field.name,
                help=declared.help,
                default=default,
                kind=kind,
                many=many,
                optional=optional,
                choices=declared.choices,
                bounds=declared.bounds,
                shown_default=shown,
                repeated=declared.repeated,
                search=declared.search,
            )
        )
    return tuple(found)


def _shown(default: Any) -> str:
    if default is None:
        return "(none)"
    if isinstance(default, tuple):
        return ",".join(map(str, default)) if default else "(empty)"
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


_KIND_WORDS = {bool: "a bool", int: "an integer", float: "a number", str: "a string"}
_PLURALS = {bool: "bools", int: "integers", float: "numbers", str: "strings"}


def _check_one(item: Setting, value: Any) -> Any:
    """Returns one value (an element of a tuple) checked, floats made float."""
    kind = item.kind
    named = item.name if item.flag == item.name else f"{item.name} (--{item.flag})"
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok and not (kind is str and item.many):
        raise ConfigError(
            f"Expected {named}: {_KIND_WORDS[kind]}. Received: {item.name}={value!r}"
        )
    if kind is float and ok and not math.isfinite(value):
        bounds = f" {item.bounds}" if item.bounds else ""
        raise ConfigError(
            f"Expected {named} to be a finite number{bounds}. "
            f"Received: {item.name}={value!r}"
        )
    if item.choices is not None and value not in item.choices:
        raise ConfigError(
            f"Unknown {named} {value!r}. "
            f"Expected one of: {', '.join(map(str, item.choices))}."
        )
    if item.bounds is not None and value not in item.bounds:
        raise ConfigError(
            f"Expected {named} {item.bounds}. Received: {item.name}={value!r}"
        )
    return float(value) if kind is float and item.many else value


def check_value(item: Setting, value: Any) -> Any:
    """Returns one value of `item` (an element of a tuple setting) if allowed.

    Raises:
        ConfigError: Wrong type, not among the choices or out of bounds.
    """
    return _check_one(item, value)


def check_settings(config: Any) -> None:
    """Checks every declared setting of `config`; tuples are stored as tuples.

    Call first in `__post_init__`.

    Raises:
        ConfigError: A value has the wrong type, is not among the choices or
            is out of bounds; the message names the setting.
    """
    for item in settings_of(type(config)):
        value = getattr(config, item.name)
        if item.kind is str and isinstance(value, os.PathLike):
            value = os.fspath(value)
            object.__setattr__(config, item.name, value)
        if value is None and item.optional:
            continue
        if item.many:
            if isinstance(value, str) or not isinstance(value, Sequence):
                raise ConfigError(
                    f"Expected {item.name}: a sequence. Received: {item.name}={value!r}"
                )
            value = tuple(
                _check_one(item, os.fspath(v) if isinstance(v, os.PathLike) else v)
                for v in value
            )
            object.__setattr__(config, item.name, value)
        else:
            _check_one(item, value)


def _parse_one(item: Setting, text: str) -> Any:
    if item.kind is int:
        return int(text)
    if item.kind is float:
        return float(text)
    return text


def parse_text(item: Setting, text: str | None) -> Any:
    """Returns the value of a setting written as command-line text.

    Args:
        item: The setting.
        text: The flag's text (comma-separated for a tuple), or None for
            the default.

    Raises:
        ConfigError: The text is not of the setting's kind; names the flag.
    """
    if text is None:
        return item.default
    try:
        if item.many:
            return tuple(
                _parse_one(item, part.strip())
                for part in text.split(",")
                if part.strip()
            )
        return _parse_one(item, text.strip())
    except ValueError as error:
        what = (
            f"comma-separated {_PLURALS[item.kind]}"
            if item.many
            else _KIND_WORDS[item.kind]
        )
        raise ConfigError(
            f"Expected --{item.flag} to be {what}. Received: --{item.flag}={text}"
        ) from error


def as_text(item: Setting, value: Any) -> str | None:
    """Returns a value as the flag text `parse_text` reads back (None stays)."""
    if value is None or value is REQUIRED:
        return None
    if item.many:
        values = value if isinstance(value, list | tuple) else (value,)
        return ",".join(map(str, values))
    return str(value)
