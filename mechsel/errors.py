"""Exception types. Every mechsel error says what was wrong, what was expected and how to fix it."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["MechselError", "ConfigError", "ProvenanceMismatchError", "DataError", "WorkerError"]


class MechselError(ValueError):
    """Base class of all errors raised by mechsel on bad input."""


class ConfigError(MechselError):
    """A configuration value is invalid, unknown or contradicts another one."""


class ProvenanceMismatchError(MechselError):
    """Two results (or a result and a model/SAE) were produced under different settings."""


class DataError(MechselError):
    """Input data is missing, empty or malformed."""


class WorkerError(MechselError):
    """A worker of a distributed run could not start, or died more often than it may be restarted."""


def did_you_mean(name: object, options: Iterable[object]) -> str:
    """Return a ' Did you mean ...?' hint listing close matches of `name` among `options`.

    Names and options that are not strings (a number read from YAML or JSON) are compared as text.
    """
    import difflib

    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
