"""Exception types raised by keras_rank for bad input.

Every error names the argument, flag or file at fault and what was allowed, so
that trainers can print it as one line and exit non-zero.
"""


class KerasRankError(Exception):
    """Base class of the errors keras_rank raises for bad input."""


class ConfigError(KerasRankError, ValueError):
    """An argument or flag has a value outside the allowed ones."""


class DataError(KerasRankError, ValueError):
    """A dataset or checkpoint cannot be read: missing, malformed or mismatched."""


class ExportError(KerasRankError, ValueError):
    """A model cannot be exported as asked: an op or layer a phone runtime lacks."""


def check_at_least(name: str, value: object, minimum: int) -> None:
    """Raises `ConfigError` unless `value` is an integer (not a bool) >= `minimum`.

    Args:
        name: The argument's name, for the message.
        value: The received value.
        minimum: The smallest allowed value.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"Expected {name} >= {minimum}. Received: {name}={value!r}")
