"""Building an :class:`ExperimentConfig` from YAML / dicts, and ``--set key=value`` overrides.

Unknown keys are rejected at every level, naming the key, its place, a close match and the
valid keys; a file that is not UTF-8, not YAML or not a mapping is named with its line. Lists
become tuples where the field is a tuple; nested sections become their dataclasses. Overrides
address fields by dotted paths (``selection.seeds``, ``tasks.0.test_size``) and take YAML values
(``[0, 1, 2]``, ``null``, ``true``).
:func:`validate_against_model` then checks layer indices against the model's depth, read from its
config (never its weights, never the network), before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
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

__all__ = ["from_dict", "load_config", "apply_overrides", "parse_override", "dump_config", "model_n_layers", "validate_against_model"]

logger = logging.getLogger(__name__)


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
        raise ConfigError(f"Override {text!r}: the value is not valid YAML ({_yaml_problem(err)}); quote it or fix its brackets.") from None
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


def load_config(source: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[str] = (), **changes: Any) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a YAML file or a dict, with overrides applied.

    Args:
        source: path of a YAML file, or a mapping of settings.
        overrides: ``key=value`` strings (the CLI's ``--set``).
        changes: top-level fields to replace (e.g. ``output_dir=...``).
    """
    if isinstance(source, Mapping):
        data = dict(source)
    else:
        data = _read_yaml(Path(source))
    data.update(changes)
    base = from_dict(ExperimentConfig, data)  # unknown keys of the file are caught here
    if overrides:
        return from_dict(ExperimentConfig, apply_overrides(to_dict(base), overrides))
    return base


def _read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a YAML config file; every way it can be unreadable raises one line."""
    if path.is_dir():
        raise ConfigError(f"Config file {path} is a folder; pass a YAML file, e.g. configs/demo.yaml.")
    if not path.is_file():
        raise ConfigError(f"Config file {path} does not exist; see configs/*.yaml for examples.")
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ConfigError(f"Cannot read config file {path} ({err.strerror}); check its permissions.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}:{line} is not UTF-8 (byte 0x{raw[err.start]:02x}); re-save the config as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        raise ConfigError(f"{at} is not valid YAML ({_yaml_problem(err)}); fix that line, e.g. its indentation or quotes.") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        found, fix = (
            ("a list", "remove the leading '- ' of its entries")
            if isinstance(data, list)
            else (f"a single value ({data!r})", "write one 'key: value' per setting")
        )
        raise ConfigError(
            f"{path}: the top level must be a mapping of settings (name:, model:, tasks:, selection:, ...), but it is "
            f"{found}; {fix}, as in configs/*.yaml."
        )
    return dict(data)


def _yaml_problem(err: yaml.YAMLError) -> str:
    """A YAML error's problem on one line (PyYAML's own text spans several)."""
    problem = getattr(err, "problem", None)
    if not problem:
        return " ".join(str(err).split())
    context, mark = getattr(err, "context", None), getattr(err, "context_mark", None)
    return f"{context} started at line {mark.line + 1}: {problem}" if context and mark is not None else problem


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML (every field, defaults included); loads back to an equal config."""
    return yaml.safe_dump(to_dict(config), sort_keys=False, allow_unicode=True)


def model_n_layers(name: str) -> int | None:
    """The number of blocks of model ``name``, read from its config without loading weights.

    The embedded model's converted folder (or, before its first conversion, TransformerLens's own
    table of Gemma 3 shapes) gives its depth; other names are looked up in the local Hugging Face
    cache only (``local_files_only``). ``None`` when the config is not available offline: the
    network is never used here.
    """
    from mechsel.models.embedded import _FOLDER_NAME, EMBEDDED_MODEL
    from mechsel.paths import cache_dir

    if name == EMBEDDED_MODEL:
        converted = cache_dir() / "models" / _FOLDER_NAME / "config.json"
        if converted.is_file():
            return int(json.loads(converted.read_text(encoding="utf-8"))["num_hidden_layers"])
    try:
        if name == EMBEDDED_MODEL:  # not converted yet: Gemma 3's shapes are in TransformerLens's table (no download)
            from transformer_lens.loading_from_pretrained import convert_hf_model_config

            return int(convert_hf_model_config(name)["n_layers"])
        from transformers import AutoConfig

        return int(AutoConfig.from_pretrained(name, local_files_only=True).get_text_config().num_hidden_layers)
    except Exception as err:  # not in the local cache, a TransformerLens alias, a remote-code model ...
        logger.debug("No offline config for %r (%s: %s); layer indices are checked once it loads.", name, type(err).__name__, err)
        return None


def validate_against_model(config: ExperimentConfig) -> ExperimentConfig:
    """Check ``config``'s layer indices against the model's depth before any model is loaded.

    Layers in ``collect.layers``, activation runs' ``params.layer`` and ``sae.saes`` must lie in
    ``-n_layers .. n_layers - 1``; negative ones are normalised once (``-1`` → ``n_layers - 1``),
    so every later check and the saved results use the same indices. Returns the normalised config
    (``config`` itself when nothing changes, or when the depth is not known offline).
    """
    n = model_n_layers(config.model.name)
    if n is None:
        return config

    def resolve(layer: Any, where: str) -> int:
        if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n:
            raise ConfigError(
                f"{where}: layer {layer!r} is out of range for {config.model.name!r}, which has {n} layers: use 0..{n - 1} "
                f"(or -{n}..-1 counting from the end), or 'all'."
            )
        return layer % n

    collect = config.collect
    if collect.layers != "all":
        layers = tuple(resolve(x, f"collect.layers[{i}]") for i, x in enumerate(collect.layers))
        if len(set(layers)) != len(layers):
            raise ConfigError(
                f"collect.layers {list(collect.layers)} names the same layer twice once counted from 0 ({list(layers)}); list it once."
            )
        collect = dataclasses.replace(collect, layers=layers)
    runs = []
    for r in config.selection.runs:
        layer = r.params.get("layer", "all")
        if r.selector == "activation" and layer != "all":
            where = f"selection.runs[{r.label}].params.layer"
            if isinstance(layer, (list, tuple)):
                layer = [resolve(x, where) for x in layer]
            else:
                layer = resolve(layer, where)
            r = dataclasses.replace(r, params={**r.params, "layer": layer})
        runs.append(r)
    saes = {resolve(layer, "sae.saes"): path for layer, path in config.sae.saes.items()}
    if len(saes) != len(config.sae.saes):
        raise ConfigError(f"sae.saes names the same layer twice once counted from 0 ({sorted(config.sae.saes)}); give each layer one SAE.")
    changed = dataclasses.replace(
        config,
        collect=collect,
        selection=dataclasses.replace(config.selection, runs=tuple(runs)),
        sae=dataclasses.replace(config.sae, saes=saes),
    )
    return config if changed == config else changed
