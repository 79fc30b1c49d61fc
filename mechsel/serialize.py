"""Dataclass trees to and from plain data: the one place configs become dicts and back.

:func:`to_dict` turns any dataclass tree into JSON-ready dicts and lists (for YAML, hashing and
cache keys); :func:`from_dict` builds a dataclass tree from a mapping, rejecting unknown keys
with the valid ones listed; :func:`apply_overrides` applies ``--set key=value`` overrides to a
config dict before it is built.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, get_args, get_origin

import yaml

from mechsel.errors import ConfigError, did_you_mean

__all__ = ["to_dict", "from_dict", "parse_override", "apply_overrides", "yaml_problem", "FREE_FORM"]

FREE_FORM = ("define", "params", "saes")
"""Fields holding free-form mappings, where overrides may add new keys."""


def to_dict(obj: Any) -> Any:
    """A dataclass tree as plain dicts / lists (tuples become lists), for YAML and hashing."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    return obj


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass type inside ``tp`` (``X``, ``X | None``), if any."""
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return tp
    if get_origin(tp) in (typing.Union, types.UnionType):
        for arg in get_args(tp):
            if isinstance(arg, type) and dataclasses.is_dataclass(arg):
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
            f"Unknown key(s) {unknown} in {label}.{did_you_mean(str(unknown[0]), list(fields))} Valid keys: {', '.join(fields)}."
        )
    kwargs = {}
    for key, value in data.items():
        tp = hints[key]
        sub = _dataclass_in(tp)
        item = _tuple_item(tp)
        path = f"{where}.{key}" if where else key
        if sub is not None and (isinstance(value, Mapping) or value is None and not _admits_none(tp)):
            value = from_dict(sub, value, path)  # an empty section (``model:``) keeps its defaults
        elif sub is not None and not isinstance(value, sub) and value is not None:
            keys = [f.name for f in dataclasses.fields(sub)]
            raise ConfigError(
                f"{path} must be a section of settings (keys such as {', '.join(keys[:3])}), got {value!r}; "
                f"write it as {path}: {{{keys[0]}: ...}}."
            )
        elif item is not None and not isinstance(value, (list, tuple)) and value is not None:
            raise ConfigError(f"{path} must be a list, e.g. {path}: {_example(fields[key], item)}; got {type(value).__name__} {value!r}.")
        elif item is not None and isinstance(value, (list, tuple)):
            if isinstance(item, type) and dataclasses.is_dataclass(item):
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


def _example(f: dataclasses.Field, item: Any) -> str:
    """A YAML flow list to show in an error about list field ``f``, built from its default."""
    default = f.default if isinstance(f.default, tuple) else ()
    if not default:
        return "[...]"
    if dataclasses.is_dataclass(item):  # the required keys of the default's first entry: [{name: sst2}]
        first = default[0]
        required = [
            g.name for g in dataclasses.fields(first) if g.default is dataclasses.MISSING and g.default_factory is dataclasses.MISSING
        ]
        default = ({k: getattr(first, k) for k in required},)
    return yaml.safe_dump(list(default), default_flow_style=True).strip()


def _admits_none(tp: Any) -> bool:
    return get_origin(tp) in (typing.Union, types.UnionType) and type(None) in get_args(tp)


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
        raise ConfigError(f"Override {text!r}: the value is not valid YAML ({yaml_problem(err)}); quote it or fix its brackets.") from None
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


def yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error's problem on one line (PyYAML's own text spans several)."""
    problem = getattr(err, "problem", None)
    if not problem:
        return " ".join(str(err).split())
    context, mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    return f"{context} started at line {mark.line + 1}: {problem}" if context and mark is not None else problem
