"""Checks shared by the experiment's config sections: each raises one :class:`ConfigError` line
naming the field, what it got and what it takes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mechsel.errors import ConfigError, did_you_mean

__all__ = ["positive", "int_list", "layer_list", "has_negative", "moment_statistic_names", "choice"]


def positive(name: str, value: Any, *, allow_none: bool = False, minimum: int = 1) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer ≥ {minimum}{' or null' if allow_none else ''}, got {value!r}.")


def int_list(name: str, value: Any, *, minimum: int, example: str) -> tuple[int, ...]:
    """``value`` as a tuple of distinct integers ≥ ``minimum``; anything else raises, naming ``name``."""
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{name} must be a non-empty list of distinct integers ≥ {minimum}, e.g. {example}; got {value!r}.")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
            raise ConfigError(f"{name}[{i}] must be an integer ≥ {minimum}, got {v!r}; e.g. {name}: {example}.")
    dupes = sorted({v for v in value if list(value).count(v) > 1})
    if dupes:
        raise ConfigError(f"{name} must not repeat values; {list(value)} repeats {dupes}. List each value once.")
    return tuple(value)


def layer_list(value: Any) -> tuple[int, ...]:
    """``collect.layers`` given as a list: distinct integer indices (negative ones count from the end)."""
    if isinstance(value, (str, bytes, bool, Mapping)) or not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"collect.layers must be 'all' or a non-empty list of layer indices, e.g. [0, 5, -1]; got {value!r}.")
    for i, v in enumerate(value):
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"collect.layers[{i}] must be a layer index (an integer; -1 is the last layer), got {v!r}.")
    dupes = sorted({v for v in value if list(value).count(v) > 1})
    if dupes:
        raise ConfigError(f"collect.layers must not repeat a layer; {list(value)} repeats {dupes}. List each layer once.")
    return tuple(value)


def has_negative(*layer_lists: Any) -> bool:
    return any(isinstance(x, int) and x < 0 for layers in layer_lists for x in layers)


def moment_statistic_names() -> tuple[str, ...]:
    """Statistic names computed by the registered families that need no arguments (moments, token
    moments): the valid entries of ``collect.statistics``. SAE statistics come from ``sae``."""
    from mechsel.stats import STATISTICS

    names: list[str] = []
    for family in STATISTICS.names():
        try:
            reducer = STATISTICS.get(family)()
        except TypeError:  # families that need objects (an SAE per layer) are configured elsewhere
            continue
        names.extend(n for n in reducer.statistic_names() if n not in names)
    return tuple(names)


def choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{name} must be one of {list(options)}, got {value!r}.{did_you_mean(str(value), options)}")
