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
