"""Building an :class:`ExperimentConfig` from YAML / dicts, and ``--set key=value`` overrides.

Unknown keys are rejected at every level, naming the key, its place, a close match and the
valid keys. Lists become tuples where the field is a tuple; nested sections become their
dataclasses. Overrides address fields by dotted paths (``selection.seeds``,
``tasks.0.test_size``) and take YAML values (``[0, 1, 2]``, ``null``, ``true``).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml

from mechsel.errors import ConfigError, did_you_mean
from mechsel.experiment.config import ExperimentConfig, to_dict

FREE_FORM = ("define", "params", "saes")
"""Fields holding free-form mappings, where overrides may add new keys."""

__all__ = ["from_dict", "load_config", "apply_overrides", "parse_override", "dump_config"]


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass type inside ``tp`` (``X``, ``X | None``), if any."""
    if dataclasses.is_dataclass(tp):
        return tp
    if get_origin(tp) in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _tuple_item(tp: Any) -> Any:
    """For ``tuple[X, ...]`` (optionally ``| None``) return ``X``; else ``None``."""
    candidates = get_args(tp) if get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    for c in candidates:
        if get_origin(c) is tuple:
            args = get_args(c)
            return args[0] if args else Any
    return None


def from_dict(cls: type, data: Mapping[str, Any] | None, where: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys."""
    data = {} if data is None else data
    label = where or cls.__name__
    if not isinstance(data, Mapping):
        raise ConfigError(f"{label} must be a mapping of settings, got {type(data).__name__}: {data!r}.")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = [k for k in data if k not in fields]
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {unknown} in {label}.{did_you_mean(str(unknown[0]), list(fields))} "
            f"Valid keys: {', '.join(fields)}."
        )
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        sub = _dataclass_in(tp)
        item = _tuple_item(tp)
        path = f"{where}.{key}" if where else key
        if sub is not None and isinstance(value, Mapping):
            value = from_dict(sub, value, path)
        elif item is not None and isinstance(value, (list, tuple)):
            if dataclasses.is_dataclass(item):
                value = tuple(
                    from_dict(item, v, f"{path}[{i}]") if isinstance(v, Mapping) else _bad_item(path, i, v, item)
                    for i, v in enumerate(value)
                )
            else:
                value = tuple(value)
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{label}: {err}.") from None


def _bad_item(path: str, i: int, value: Any, item: type) -> Any:
    raise ConfigError(f"{path}[{i}] must be a mapping of {item.__name__} settings, got {value!r}.")


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b.0.c=VALUE"`` → (``["a", "b", "0", "c"]``, YAML-parsed VALUE)."""
    if "=" not in text:
        raise ConfigError(f"Override {text!r} must look like key=value, e.g. selection.seeds=[0,1,2] or tasks.0.test_size=100.")
    key, raw = text.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not all(parts):
        raise ConfigError(f"Override key {key!r} has an empty part; use dots between names, e.g. analysis.n_boot=500.")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise ConfigError(f"Override {text!r}: the value is not valid YAML ({err}).") from None
    return parts, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` (a full config dict) with every ``key=value`` override applied.

    Paths must exist in the full config (defaults included), so a typo is caught here, with the
    valid keys at that level; only inside the free-form mappings (:data:`FREE_FORM`) may an
    override add a key.
    """
    out = to_dict(data)
    for text in overrides:
        parts, value = parse_override(text)
        node: Any = out
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            here = ".".join(parts[:depth]) or "the config"
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ConfigError(f"Override {text!r}: {here} is a list of {len(node)}; use an index 0..{len(node) - 1}.")
                idx: Any = int(part)
            elif isinstance(node, dict):
                free = any(p in FREE_FORM for p in parts[:depth])
                if part not in node and not free:
                    raise ConfigError(
                        f"Override {text!r}: unknown key {part!r} in {here}.{did_you_mean(part, list(node))} "
                        f"Valid keys: {', '.join(map(str, node))}."
                    )
                idx = part
            else:
                raise ConfigError(f"Override {text!r}: {here} is a value ({node!r}), not a section.")
            if last:
                node[idx] = value
                break
            child = node.get(idx) if isinstance(node, dict) else node[idx]
            if child is None:
                child = node[idx] = {}
            node = child
    return out


def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[str] = (), **changes: Any
) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a YAML file or a dict, with overrides applied.

    Args:
        source: path of a YAML file, or a mapping of settings.
        overrides: ``key=value`` strings (the CLI's ``--set``).
        changes: top-level fields to replace (e.g. ``output_dir=...``).
    """
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ConfigError(f"Config file {path} does not exist; see configs/*.yaml for examples.")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
    data.update(changes)
    base = from_dict(ExperimentConfig, data)  # unknown keys of the file are caught here
    if overrides:
        return from_dict(ExperimentConfig, apply_overrides(to_dict(base), overrides))
    return base


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML (every field, defaults included); loads back to an equal config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)
