"""Building an :class:`ExperimentConfig` from YAML / dicts, and ``--set key=value`` overrides.

Unknown keys are rejected at every level, naming the key, its place, a close match and the
valid keys; a file that is not UTF-8, not YAML or not a mapping is named with its line. Lists
become tuples where the field is a tuple; nested sections become their dataclasses. Overrides
address fields by dotted paths (``selection.seeds``, ``tasks.0.test_size``) and take YAML values
(``[0, 1, 2]``, ``null``, ``true``). Keys renamed since (:data:`RENAMED_TASK_KEYS`) are still
read, in files, dicts and overrides, with one deprecation warning naming the new key.
:func:`validate_against_model` then checks layer indices against the model's depth, read from its
config (never its weights, never the network), before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from mechsel.errors import ConfigError, DataError
from mechsel.experiment.config import ExperimentConfig
from mechsel.serialize import apply_overrides, from_dict, to_dict, yaml_problem

__all__ = ["RENAMED_TASK_KEYS", "load_config", "dump_config", "upgrade_renamed_keys", "model_n_layers", "validate_against_model"]

logger = logging.getLogger(__name__)

RENAMED_TASK_KEYS: dict[str, str] = {"selection_pool": "seed_pool_size", "metric": "quality_metric"}
"""Old ``tasks[]`` keys → their new names. ``selection_pool`` overlapped with the candidates
(``n_candidates``, drawn from ``pool_split``); ``metric`` read as the test metric but is the
quality metric."""


def load_config(source: str | os.PathLike[str] | Mapping[str, Any], overrides: Sequence[str] = (), **changes: Any) -> ExperimentConfig:
    """An :class:`ExperimentConfig` from a YAML file or a dict, with overrides applied.

    Args:
        source: path of a YAML file, or a mapping of settings.
        overrides: ``key=value`` strings (the CLI's ``--set``).
        changes: top-level fields to replace (e.g. ``output_dir=...``).
    """
    if isinstance(source, Mapping):
        data, folder, origin = dict(source), Path.cwd(), "config"
    else:
        data, folder, origin = _read_yaml(Path(source)), Path(source).resolve().parent, str(source)
    data.update(changes)
    data = upgrade_renamed_keys(data, origin)
    _plugins(data, folder)
    base = from_dict(ExperimentConfig, data)  # unknown keys of the file are caught here
    if overrides:
        data = apply_overrides(to_dict(base), [_renamed_override(o) for o in overrides])
        _plugins(data, Path.cwd())
        return from_dict(ExperimentConfig, data)
    return base


def upgrade_renamed_keys(data: Mapping[str, Any], origin: str = "config", *, warn: bool = True) -> dict[str, Any]:
    """A copy of config dict ``data`` whose ``tasks[]`` entries use the new names of
    :data:`RENAMED_TASK_KEYS`; with ``warn``, one logging warning per old key found (naming
    ``origin``, the tasks that use it and the new key). An entry that sets both names raises."""
    out = dict(data)
    tasks = out.get("tasks")
    if not isinstance(tasks, (list, tuple)):
        return out  # not a list of entries: from_dict says what is wrong
    used: dict[str, list[str]] = {}
    entries = []
    for i, entry in enumerate(tasks):
        if isinstance(entry, Mapping):
            entry = dict(entry)
            name = str(entry.get("name", i))
            for old, new in RENAMED_TASK_KEYS.items():
                if old not in entry:
                    continue
                if new in entry:
                    raise ConfigError(
                        f"{origin}: tasks[{name}] sets both {old} (the old name) and {new}; {old} is now {new}, so keep only {new}."
                    )
                entry[new] = entry.pop(old)
                used.setdefault(old, []).append(name)
        entries.append(entry)
    out["tasks"] = entries
    if warn:
        for old, names in used.items():
            logger.warning(
                "%s: tasks[].%s is deprecated; it is now tasks[].%s (read as such for task(s) %s). Rename the key to silence this.",
                origin,
                old,
                RENAMED_TASK_KEYS[old],
                ", ".join(names),
            )
    return out


def _renamed_override(text: str) -> str:
    """``tasks.N.<old key>=VALUE`` with the key's new name (and a deprecation warning); other overrides as given."""
    key, sep, value = text.partition("=")
    parts = key.strip().split(".")
    if sep and len(parts) == 3 and parts[0] == "tasks" and parts[2] in RENAMED_TASK_KEYS:
        new = RENAMED_TASK_KEYS[parts[2]]
        logger.warning(
            "--set %s: tasks[].%s is deprecated; it is now tasks[].%s. Use --set tasks.%s.%s=...", key, parts[2], new, parts[1], new
        )
        return f"tasks.{parts[1]}.{new}={value}"
    return text


def _plugins(data: dict[str, Any], folder: Path) -> None:
    """Import the config's plug-ins before its sections are built (they may name what a plug-in
    registers), storing ``.py`` paths absolute so that the run's saved config finds them too."""
    from mechsel.plugins import load_plugins, resolve_plugin

    specs = data.get("plugins") or ()
    load_plugins(specs, folder)
    if specs:
        data["plugins"] = [resolve_plugin(s, folder) for s in specs]


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
        raise ConfigError(f"{at} is not valid YAML ({yaml_problem(err)}); fix that line, e.g. its indentation or quotes.") from None
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


def _check_sae_folders(config: ExperimentConfig) -> None:
    """Refuse an ``sae.saes`` entry written as a local path (leading ``/``, ``.`` or ``~``) whose
    folder does not exist, before the model loads; ``release/sae_id`` names are checked on load."""
    for layer, spec in config.sae.saes.items():
        if spec.startswith(("/", ".", "~")) and not Path(spec).expanduser().is_dir():
            raise DataError(
                f"sae.saes[{layer}]: the SAE folder {spec!r} does not exist (checked from {os.getcwd()}). Give the folder "
                f"written by sae.save_model(folder) or mechsel train-sae, or a pretrained '<release>/<sae_id>'."
            )


def _check_data_paths(config: ExperimentConfig) -> None:
    """Refuse a task's ``data_dir`` that is not a folder, and a ``define.files`` entry that names
    no file (absolute, or relative to the task's ``data_dir``), before the model loads; folders
    found by the resolution order (``$MECHSEL_DATA_DIR``, the packaged subset, the hub) are
    checked when the data stage reads them."""
    for t in config.tasks:
        if t.source != "local":
            continue
        root = Path(t.data_dir).expanduser() if t.data_dir is not None else None
        if root is not None and not root.is_dir():
            raise DataError(
                f"tasks[{t.name}].data_dir: the folder {t.data_dir!r} does not exist (checked from {os.getcwd()}). Give the "
                f"folder holding the task's files, or remove data_dir to use $MECHSEL_DATA_DIR or the packaged data."
            )
        files = (t.define or {}).get("files") or {}
        for split, name in dict(files).items():
            path = Path(str(name)).expanduser()
            if not path.is_absolute():
                if root is None:
                    continue  # resolved against the data folder the run finds
                path = root / path
            if not path.is_file():
                raise DataError(
                    f"tasks[{t.name}].define.files.{split}: the file {str(path)!r} does not exist; give an existing JSON-lines "
                    f"file (absolute, or relative to tasks[{t.name}].data_dir)."
                )


def validate_against_model(config: ExperimentConfig) -> ExperimentConfig:
    """Check ``config``'s layer indices against the model's depth before any model is loaded.

    Layers in ``collect.layers``, the layer field of each run's selector (its ``layer_field``,
    e.g. ``params.layer``) and ``sae.saes`` must lie in
    ``-n_layers .. n_layers - 1``; negative ones are normalised once (``-1`` → ``n_layers - 1``),
    so every later check and the saved results use the same indices. Returns the normalised config
    (``config`` itself when nothing changes, or when the depth is not known offline).
    """
    from mechsel.selectors import SELECTORS

    _check_sae_folders(config)
    _check_data_paths(config)
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
        field = SELECTORS.get(r.selector).layer_field  # the selector names the field that holds its layer(s)
        layer = r.params.get(field) if field else None
        if field and layer is not None and layer != "all":
            where = f"selection.runs[{r.label}].params.{field}"
            if isinstance(layer, (list, tuple)):
                layer = [resolve(x, where) for x in layer]
            else:
                layer = resolve(layer, where)
            r = dataclasses.replace(r, params={**r.params, field: layer})
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
