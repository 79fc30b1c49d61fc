"""Loading a task's rows as :class:`~mechsel.tasks.base.Example` objects.

Where a task's rows come from (``source="local"``, the default; :func:`locate_task`), in order:

1. an explicit ``data_dir`` argument, else ``$MECHSEL_DATA_DIR``: when either is given it is the
   only place looked at (a name you chose is never silently replaced by other data);
2. the default data directories (``../shared/data``, :func:`mechsel.paths.default_data_dirs`)
   that hold the task's folder;
3. the subset packaged with mechsel (:mod:`mechsel.tasks.packaged`), for the tasks it holds;
4. the Hugging Face hub (``datasets.load_dataset(hub_id, hub_config, split=...)``, cached the
   usual way), unless ``HF_DATASETS_OFFLINE`` or ``HF_HUB_OFFLINE`` is set.

If none has the task, the error names every place looked at and the fix. ``source="hub"`` reads
the hub only. Local files are parsed as plain JSON lines (``reader="json"``, the default: fast, no
cache files) or through ``datasets.load_dataset("json", ...)`` (``reader="datasets"``). Every path
ends in :func:`rows_to_examples`, so the same rows give the same examples whichever way they came.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from mechsel import paths
from mechsel.errors import ConfigError, DataError, did_you_mean
from mechsel.paths import data_dir as resolve_data_dir
from mechsel.tasks.base import Example, TaskConfig, get_task
from mechsel.tasks.packaged import PACKAGED_DIR, PackagedSplit, packaged_splits, packaged_tasks, parse_index, read_packaged_split

__all__ = [
    "Source",
    "Reader",
    "TaskLocation",
    "SplitExamples",
    "hub_online",
    "locate_task",
    "check_choices",
    "local_split_files",
    "load_rows",
    "read_split",
    "rows_to_examples",
    "load_examples",
]

logger = logging.getLogger(__name__)

Source = Literal["local", "hub"]
"""``local``: the first place that has the task, in the order of the module docstring (a data
directory, the packaged subset, then the hub when online); ``hub``: the Hugging Face hub only."""
LocationKind = Literal["directory", "packaged", "hub"]
"""Where :func:`locate_task` found a task: a data directory, the packaged subset, or the hub."""
Reader = Literal["json", "datasets"]
"""How local JSON-lines files are parsed: plain ``json`` or ``datasets.load_dataset("json")``."""


@dataclass(frozen=True)
class TaskLocation:
    """Where a task's rows are read from."""

    kind: LocationKind
    """``directory``, ``packaged`` or ``hub``."""
    where: str
    """The data directory (empty for a task whose ``files`` are all absolute), the packaged
    task folder, or the hub id."""
    why: str
    """How it was chosen, e.g. ``"$MECHSEL_DATA_DIR"`` or ``"the packaged subset"``."""

    def describe(self) -> str:
        """One phrase for logs and listings."""
        return f"{self.why} ({self.where})" if self.where else self.why


_OFFLINE_VARIABLES = ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


def hub_online() -> bool:
    """Whether the hub may be tried: neither ``HF_DATASETS_OFFLINE`` nor ``HF_HUB_OFFLINE`` is set."""
    return not any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"} for v in _OFFLINE_VARIABLES)


def _hub_location(cfg: TaskConfig) -> TaskLocation:
    if not cfg.hub_id:
        raise ConfigError(f"Task {cfg.name!r} has no hub_id; load it with source='local' or set TaskConfig.hub_id.")
    return TaskLocation("hub", cfg.hub_id + (f" ({cfg.hub_config})" if cfg.hub_config else ""), "the Hugging Face hub")


def _directory_has(root: Path, cfg: TaskConfig) -> bool:
    if cfg.files:
        return all((Path(p) if Path(p).is_absolute() else root / p).is_file() for p in cfg.files.values())
    return (root / cfg.folder).is_dir()


def locate_task(task: str | TaskConfig, data_dir: str | os.PathLike[str] | None = None, *, source: Source = "local") -> TaskLocation:
    """The place ``task`` is read from: with ``source="local"`` the first place in the order of
    the module docstring that has it, with ``source="hub"`` the hub.

    Raises:
        DataError: an explicit ``data_dir`` or ``$MECHSEL_DATA_DIR`` does not exist, or no place
            has the task; the message names every place looked at and how to fix it.
        ConfigError: ``source="hub"`` for a task without a hub id.
    """
    cfg = get_task(task)
    if source == "hub":
        return _hub_location(cfg)
    if cfg.files and all(Path(p).is_absolute() for p in cfg.files.values()):
        return TaskLocation("directory", "", "the task's own files")
    if data_dir is not None or os.environ.get("MECHSEL_DATA_DIR"):
        why = "the data_dir argument" if data_dir is not None else "$MECHSEL_DATA_DIR"
        return TaskLocation("directory", str(resolve_data_dir(data_dir)), why)
    looked = []
    for root in paths.default_data_dirs():
        if root.is_dir() and _directory_has(root, cfg):
            return TaskLocation("directory", str(root.resolve()), "the default data directory")
        missing = "does not exist" if not root.is_dir() else f"has no {cfg.folder}/ folder" if not cfg.files else "lacks the task's files"
        looked.append(f"the default data directory {root.resolve()} ({missing})")
    if not cfg.files and packaged_splits(cfg.folder):
        return TaskLocation("packaged", str(PACKAGED_DIR / cfg.folder), "the packaged subset")
    looked.append(f"the data packaged with mechsel in {PACKAGED_DIR} (holds {', '.join(packaged_tasks()) or 'nothing'})")
    if cfg.hub_id and hub_online():
        return _hub_location(cfg)
    if not cfg.hub_id:
        looked.append("the Hugging Face hub (the task has no hub_id)")
    else:
        offline = [v for v in _OFFLINE_VARIABLES if os.environ.get(v)]
        looked.append(f"the Hugging Face hub ({cfg.hub_id}: skipped, {' and '.join(offline)} set)")
    folder = f"<DIR>/{cfg.folder}/<split>.jsonl" if not cfg.files else "its TaskConfig.files"
    raise DataError(
        f"Task {cfg.name!r} was found nowhere. Looked at: {'; '.join(looked)}; no data_dir argument and no "
        f"$MECHSEL_DATA_DIR were given. Fix: put the task's JSON-lines files at {folder} and set "
        f"MECHSEL_DATA_DIR=<DIR> (or pass data_dir=<DIR>)"
        + (", or go online (unset HF_DATASETS_OFFLINE / HF_HUB_OFFLINE) to read it from the hub." if cfg.hub_id else ".")
    )


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
            f"that has them, or drop data_dir / unset MECHSEL_DATA_DIR to use the packaged subset "
            f"({', '.join(packaged_tasks()) or 'none'}) or, online, the hub (see `mechsel data`)."
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
            f"({type(err).__name__}: {err}). Offline, use source='local' with a data directory "
            f"(MECHSEL_DATA_DIR) or the packaged subset (see `mechsel data`)."
        ) from err
    return ds.to_list()


def _directory_file(cfg: TaskConfig, split: str, location: TaskLocation) -> Path:
    files = local_split_files(cfg, location.where or None)
    if split not in files:
        raise DataError(f"Task {cfg.name!r} has no local split {split!r}.{did_you_mean(split, list(files))} Available: {sorted(files)}.")
    path = files[split]
    if not path.is_file():
        raise DataError(f"Split {split!r} of task {cfg.name!r} should be at {path}, which does not exist.")
    return path


def _read_file(path: Path, reader: Reader) -> list[dict[str, Any]]:
    return _read_json_lines(path) if reader == "json" else _read_with_datasets(path)


def check_choices(source: str, reader: str) -> None:
    """Raise a teaching error unless ``source`` and ``reader`` are valid choices."""
    if source not in get_args(Source):
        raise ConfigError(f"source must be one of {get_args(Source)}, got {source!r}.")
    if reader not in get_args(Reader):
        raise ConfigError(f"reader must be one of {get_args(Reader)}, got {reader!r}.")


def _packaged(cfg: TaskConfig, split: str) -> PackagedSplit:
    splits = packaged_splits(cfg.folder)
    if split not in splits:
        raise DataError(
            f"The packaged subset of task {cfg.name!r} has no split {split!r}.{did_you_mean(split, list(splits))} "
            f"Available: {sorted(splits)}; for other splits set MECHSEL_DATA_DIR to a full copy of the data."
        )
    return read_packaged_split(cfg.folder, split)


@dataclass(frozen=True)
class SplitExamples:
    """One split's examples as :func:`read_split` loaded them, and what a seeded draw needs.

    A packaged partial split holds only some rows of the full split; ``positions``, ``labels``
    and ``words`` describe the full split so draws on it match draws on the full file."""

    examples: list[Example]
    """The loaded examples (for a partial split, the shipped ones, in the full split's order)."""
    n_rows: int
    """Rows of the full split."""
    location: TaskLocation
    """Where they were read from."""
    positions: tuple[int, ...] | None = None
    """Each example's row index in the full split; ``None`` when ``examples`` is the whole split."""
    labels: tuple[int, ...] | None = None
    """Partial splits: the label index of every row of the full split."""
    words: tuple[int, ...] | None = None
    """Partial splits: the word count of every row of the full split."""


def read_split(task: str | TaskConfig, split: str, location: TaskLocation, *, reader: Reader = "json") -> SplitExamples:
    """Read one split of ``task`` from ``location`` (from :func:`locate_task`)."""
    cfg = get_task(task)
    if location.kind == "hub":
        examples = rows_to_examples(cfg, _read_hub(cfg, split), split)
        return SplitExamples(examples, len(examples), location)
    if location.kind == "directory":
        path = _directory_file(cfg, split, location)
        rows = _read_file(path, reader)
        index = path.with_name(f"{split}.index.json.gz")  # a partial split exported by `mechsel data export`
        if not index.is_file():
            examples = rows_to_examples(cfg, rows, split)
            return SplitExamples(examples, len(examples), location)
        packed = parse_index(index.read_bytes(), rows, str(index))
    else:
        packed = _packaged(cfg, split)
    examples = rows_to_examples(cfg, packed.rows, split, positions=packed.positions)
    if packed.partial:
        logger.info(
            "Task %r, split %r: %s holds %d of the split's %d rows (those the covered draws use); "
            "set MECHSEL_DATA_DIR to a full copy for the rest.",
            cfg.name,
            split,
            location.describe(),
            len(examples),
            packed.n_rows,
        )
    return SplitExamples(examples, packed.n_rows, location, packed.positions, packed.labels, packed.words)


def load_rows(
    task: str | TaskConfig,
    split: str,
    *,
    source: Source = "local",
    data_dir: str | os.PathLike[str] | None = None,
    reader: Reader = "json",
) -> list[dict[str, Any]]:
    """The raw rows (dicts) of one split of ``task`` (a packaged partial split: its shipped rows)."""
    cfg = get_task(task)
    check_choices(source, reader)
    location = locate_task(cfg, data_dir, source=source)
    if location.kind == "hub":
        return _read_hub(cfg, split)
    if location.kind == "packaged":
        return list(_packaged(cfg, split).rows)
    return _read_file(_directory_file(cfg, split, location), reader)


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


def rows_to_examples(
    task: str | TaskConfig, rows: list[dict[str, Any]], split: str, *, positions: Sequence[int] | None = None
) -> list[Example]:
    """Validate raw rows and turn them into examples.

    Classification: one example per row. Generation: rows with identical inputs (e.g. the same
    E2E meaning representation) become one example whose references are those rows' outputs, in
    file order; its id is the group's index in order of first appearance.

    ``positions``: each row's index in the full split, when ``rows`` are some of its rows (a
    packaged partial split); ids taken from row numbers are then the full split's.
    """
    cfg = get_task(task)
    if not rows:
        raise DataError(f"Split {split!r} of task {cfg.name!r} is empty.")
    if positions is not None and (len(positions) != len(rows) or cfg.kind == "generation"):
        raise DataError(f"Task {cfg.name!r}, split {split!r}: positions must give one row index per row of a classification split.")
    number = (lambda i: i) if positions is None else (lambda i: int(positions[i]))  # noqa: E731
    where = lambda i: f"Task {cfg.name!r}, split {split!r}, row {number(i)}"  # noqa: E731
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
        ex_id = _field(row, cfg.id_field, cfg, where(i), "id_field") if cfg.id_field else number(i)
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
        source: ``"local"`` (the first place that has the task: data directory, packaged subset,
            hub; see the module docstring) or ``"hub"`` (Hugging Face only, needs network).
        data_dir: data directory override (default: ``$MECHSEL_DATA_DIR``, else ``../shared/data``).
        reader: how local files are parsed; both readers give identical examples.

    A packaged partial split gives its shipped rows only (logged); :func:`mechsel.tasks.make_splits`
    draws from it exactly as from the full split.
    """
    cfg = get_task(task)
    check_choices(source, reader)
    return read_split(cfg, split, locate_task(cfg, data_dir, source=source), reader=reader).examples
