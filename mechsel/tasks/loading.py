"""Loading a task's rows as :class:`~mechsel.tasks.base.Example` objects.

Three ways in, one way out: the local data directory read as plain JSON lines (``reader="json"``,
the default: fast, no cache files), the same files through ``datasets.load_dataset("json", ...)``
(``reader="datasets"``), or the Hugging Face hub (``source="hub"``, needs network). Every path
ends in :func:`rows_to_examples`, so the same rows give the same examples whichever way they came.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from mechsel.errors import ConfigError, DataError, did_you_mean
from mechsel.paths import data_dir as resolve_data_dir
from mechsel.tasks.base import Example, TaskConfig, get_task

__all__ = ["Source", "Reader", "local_split_files", "load_rows", "rows_to_examples", "load_examples"]


Source = Literal["local", "hub"]
"""``local``: the data directory (``$MECHSEL_DATA_DIR``, ``../shared/data``); ``hub``: Hugging Face."""
Reader = Literal["json", "datasets"]
"""How local JSON-lines files are parsed: plain ``json`` or ``datasets.load_dataset("json")``."""


def local_split_files(task: str | TaskConfig, data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Split name → JSON-lines file of ``task`` in the local data directory.

    Raises:
        DataError: the data directory or the task's folder does not exist (says where it looked).
    """
    cfg = get_task(task)
    if cfg.files:
        out = {}
        for split, p in cfg.files.items():
            path = Path(p)
            if not path.is_absolute():
                path = resolve_data_dir(data_dir) / path
            out[split] = path
        return out
    root = resolve_data_dir(data_dir)
    folder = root / cfg.folder
    if not folder.is_dir():
        raise DataError(
            f"Task {cfg.name!r} has no folder {folder} in the data directory {root}. Put its "
            f"<split>.jsonl files there, point MECHSEL_DATA_DIR (or data_dir=...) at a directory "
            f"that has them, or load from the hub with source='hub' when online."
        )
    return {p.stem: p for p in sorted(folder.glob("*.jsonl"))}


def _read_json_lines(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file: one JSON object per non-blank line, UTF-8 encoded."""
    rows = []
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{lineno} is not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                    f"re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8)."
                ) from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}:{lineno} is not valid JSON ({err.msg}); fix or remove that line.") from None
            if not isinstance(row, dict):
                raise DataError(
                    f"{path}:{lineno} holds a JSON {_json_kind(row)}, but every line must be one object of the "
                    f'task\'s fields, e.g. {{"sentence": "...", "label": 0}}; fix or remove that line.'
                )
            rows.append(row)
    return rows


def _json_kind(value: Any) -> str:
    """The JSON name of a parsed value's type (array, string, number, ...)."""
    kinds = {list: "array", str: "string", bool: "boolean", int: "number", float: "number", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def _read_with_datasets(path: Path) -> list[dict[str, Any]]:
    import datasets

    ds = datasets.load_dataset("json", data_files=str(path), split="train")
    return ds.to_list()


def _read_hub(cfg: TaskConfig, split: str) -> list[dict[str, Any]]:
    if not cfg.hub_id:
        raise ConfigError(f"Task {cfg.name!r} has no hub_id; load it with source='local' or set TaskConfig.hub_id.")
    import datasets

    try:
        ds = datasets.load_dataset(cfg.hub_id, cfg.hub_config, split=split)
    except ValueError as err:
        raise DataError(f"The hub dataset {cfg.hub_id!r} has no split {split!r} ({err}).") from err
    except Exception as err:  # network, authentication and missing-dataset errors come in many types
        raise DataError(
            f"Could not load {cfg.hub_id!r} (config {cfg.hub_config!r}) from the Hugging Face hub "
            f"({type(err).__name__}: {err}). Offline, use source='local' with the data directory "
            f"(MECHSEL_DATA_DIR)."
        ) from err
    return ds.to_list()


def load_rows(
    task: str | TaskConfig,
    split: str,
    *,
    source: Source = "local",
    data_dir: str | os.PathLike[str] | None = None,
    reader: Reader = "json",
) -> list[dict[str, Any]]:
    """The raw rows (dicts) of one split of ``task``."""
    cfg = get_task(task)
    if source not in get_args(Source):
        raise ConfigError(f"source must be one of {get_args(Source)}, got {source!r}.")
    if reader not in get_args(Reader):
        raise ConfigError(f"reader must be one of {get_args(Reader)}, got {reader!r}.")
    if source == "hub":
        return _read_hub(cfg, split)
    files = local_split_files(cfg, data_dir)
    if split not in files:
        raise DataError(f"Task {cfg.name!r} has no local split {split!r}.{did_you_mean(split, list(files))} Available: {sorted(files)}.")
    path = files[split]
    if not path.is_file():
        raise DataError(f"Split {split!r} of task {cfg.name!r} should be at {path}, which does not exist.")
    return _read_json_lines(path) if reader == "json" else _read_with_datasets(path)


def _field(row: dict[str, Any], name: str, cfg: TaskConfig, where: str, what: str) -> Any:
    if not isinstance(row, Mapping):
        raise DataError(f"{where} is a {type(row).__name__}, not a mapping of fields; each row must map field names to values.")
    if name not in row:
        raise DataError(
            f"{where}: no field {name!r} (the task's {what}).{did_you_mean(name, list(row))} "
            f"The row has fields {sorted(row)}; fix TaskConfig.{what} of task {cfg.name!r}."
        )
    return row[name]


def _text(row: dict[str, Any], name: str, cfg: TaskConfig, where: str, what: str) -> str:
    value = _field(row, name, cfg, where, what)
    if not isinstance(value, str):
        raise DataError(f"{where}: field {name!r} should hold text, got {type(value).__name__} {value!r}.")
    return value


def _label(value: Any, cfg: TaskConfig, where: str) -> int:
    names = cfg.label_names
    if isinstance(value, str) and value in names:
        return names.index(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return value
    hint = " (a -1 label marks an unlabelled split, such as GLUE's hub test splits; use another split)" if value == -1 else ""
    raise DataError(
        f"{where}: label {value!r} is outside the label set of task {cfg.name!r}: indices 0..{len(names) - 1} "
        f"or names {list(names)}{hint}. Fix the data or TaskConfig.label_names."
    )


def rows_to_examples(task: str | TaskConfig, rows: list[dict[str, Any]], split: str) -> list[Example]:
    """Validate raw rows and turn them into examples.

    Classification: one example per row. Generation: rows with identical inputs (e.g. the same
    E2E meaning representation) become one example whose references are those rows' outputs, in
    file order; its id is the group's index in order of first appearance.
    """
    cfg = get_task(task)
    if not rows:
        raise DataError(f"Split {split!r} of task {cfg.name!r} is empty.")
    where = lambda i: f"Task {cfg.name!r}, split {split!r}, row {i}"  # noqa: E731
    if cfg.kind == "generation":
        groups: dict[tuple[str, ...], list[str]] = {}
        for i, row in enumerate(rows):
            key = tuple(_text(row, f, cfg, where(i), "input_fields") for f in cfg.input_fields)
            groups.setdefault(key, []).append(_text(row, cfg.reference_field, cfg, where(i), "reference_field"))  # type: ignore[arg-type]
        return [
            Example(id=g, inputs=dict(zip(cfg.input_fields, key)), references=tuple(refs), split=split)
            for g, (key, refs) in enumerate(groups.items())
        ]
    out = []
    for i, row in enumerate(rows):
        inputs = {f: _text(row, f, cfg, where(i), "input_fields") for f in cfg.input_fields}
        label = _label(_field(row, cfg.label_field, cfg, where(i), "label_field"), cfg, where(i))  # type: ignore[arg-type]
        ex_id = _field(row, cfg.id_field, cfg, where(i), "id_field") if cfg.id_field else i
        out.append(Example(id=ex_id, inputs=inputs, label=label, split=split))
    if cfg.id_field and len({e.id for e in out}) != len(out):
        raise DataError(
            f"Task {cfg.name!r}, split {split!r}: id field {cfg.id_field!r} has duplicate values; set id_field=None to use row numbers."
        )
    return out


def load_examples(
    task: str | TaskConfig,
    split: str,
    *,
    source: Source = "local",
    data_dir: str | os.PathLike[str] | None = None,
    reader: Reader = "json",
) -> list[Example]:
    """Load one split of ``task`` as validated :class:`Example` objects.

    Args:
        task: a registered task name or a :class:`TaskConfig`.
        split: a split name (``"train"``, ``"validation"``, ``"test"``, or a key of ``TaskConfig.files``).
        source: ``"local"`` (the data directory) or ``"hub"`` (Hugging Face, needs network).
        data_dir: data directory override (default: ``$MECHSEL_DATA_DIR``, else ``../shared/data``).
        reader: how local files are parsed; both readers give identical examples.
    """
    return rows_to_examples(task, load_rows(task, split, source=source, data_dir=data_dir, reader=reader), split)
