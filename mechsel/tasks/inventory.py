"""Which places hold a task's data, and writing a task's files to a folder (``mechsel data``).

:func:`task_sources` lists every place of :func:`~mechsel.tasks.loading.locate_task`'s order
with what it holds; :func:`export_task` writes the rows of the place a task is read from as
``<folder>/<task folder>/<split>.jsonl``, so ``MECHSEL_DATA_DIR=<folder>`` reads them back. A
packaged partial split is written with its index file beside it (``<split>.index.json.gz``), so
draws from the exported folder stay those of the full split.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mechsel import paths
from mechsel.errors import DataError
from mechsel.tasks.base import TaskConfig, get_task
from mechsel.tasks.loading import hub_online, load_rows, local_split_files, locate_task
from mechsel.tasks.packaged import PACKAGED_DIR, packaged_splits

__all__ = ["SplitInfo", "SourceInfo", "task_sources", "export_task", "ExportedSplit"]


@dataclass(frozen=True)
class SplitInfo:
    """One split at one place."""

    name: str
    rows: int | None
    """Rows held (``None``: not counted, e.g. on the hub)."""
    bytes: int | None
    """Bytes on disk (compressed for the packaged subset)."""
    split_rows: int | None = None
    """Rows of the full split, when the place holds only some of them."""


@dataclass(frozen=True)
class SourceInfo:
    """One place of the resolution order and what it holds of a task."""

    place: str
    """E.g. ``"$MECHSEL_DATA_DIR /data"`` or ``"packaged"``."""
    has: bool
    """Whether the task can be read from there."""
    splits: tuple[SplitInfo, ...] = field(default_factory=tuple)
    note: str = ""


def _count_rows(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def _directory_source(label: str, root: Path, cfg: TaskConfig) -> SourceInfo:
    place = f"{label} {root}"
    if not root.is_dir():
        return SourceInfo(place, False, note="does not exist")
    try:
        files = local_split_files(cfg, root)
    except DataError:
        return SourceInfo(place, False, note=f"no {cfg.folder}/ folder")
    splits = tuple(SplitInfo(s, _count_rows(p), p.stat().st_size) for s, p in sorted(files.items()) if p.is_file())
    return SourceInfo(place, bool(splits), splits)


def task_sources(task: str | TaskConfig) -> list[SourceInfo]:
    """Every place :func:`~mechsel.tasks.loading.locate_task` may read ``task`` from, in its order."""
    cfg = get_task(task)
    out = []
    if os.environ.get("MECHSEL_DATA_DIR"):
        out.append(_directory_source("$MECHSEL_DATA_DIR", Path(os.environ["MECHSEL_DATA_DIR"]), cfg))
    for root in paths.default_data_dirs():
        out.append(_directory_source("default directory", root.resolve(), cfg))
    entries = packaged_splits(cfg.folder) if not cfg.files else {}
    splits = tuple(
        SplitInfo(s, e["rows"], e["bytes"] + e.get("index", {}).get("bytes", 0), e["split_rows"] if e.get("index") else None)
        for s, e in sorted(entries.items())
    )
    out.append(SourceInfo(f"packaged {PACKAGED_DIR / cfg.folder}", bool(entries), splits, "" if entries else "not packaged"))
    if cfg.hub_id:
        hub = cfg.hub_id + (f" ({cfg.hub_config})" if cfg.hub_config else "")
        out.append(SourceInfo(f"hub {hub}", hub_online(), note="online: not queried" if hub_online() else "offline (HF_*_OFFLINE set)"))
    else:
        out.append(SourceInfo("hub", False, note="no hub_id"))
    return out


@dataclass(frozen=True)
class ExportedSplit:
    """One split written by :func:`export_task`."""

    name: str
    path: Path
    rows: int
    split_rows: int | None
    """Rows of the full split when only some were written (a packaged partial split)."""


def export_task(
    task: str | TaskConfig, folder: str | os.PathLike[str], *, data_dir: str | os.PathLike[str] | None = None
) -> list[ExportedSplit]:
    """Write ``task``'s splits, read from the place :func:`locate_task` picks, to ``folder/<task folder>``.

    Files of a data directory are copied byte for byte; packaged splits are decompressed (a
    partial one with its index file); hub splits (those the task's draws read) are written as
    JSON lines.
    """
    cfg = get_task(task)
    location = locate_task(cfg, data_dir)
    target = Path(folder) / paths.safe_name("task", cfg.folder)
    target.mkdir(parents=True, exist_ok=True)
    out = []
    if location.kind == "directory":
        for split, path in sorted(local_split_files(cfg, location.where or None).items()):
            dest = target / f"{paths.safe_name('split', split)}.jsonl"
            shutil.copyfile(path, dest)
            out.append(ExportedSplit(split, dest, _count_rows(dest), None))
    elif location.kind == "packaged":
        for split, entry in sorted(packaged_splits(cfg.folder).items()):
            rows = load_rows(cfg, split)  # checksums verified
            dest = target / f"{split}.jsonl"
            paths.atomic_write_bytes(dest, gzip.decompress((PACKAGED_DIR / entry["file"]).read_bytes()))
            if entry.get("index"):
                shutil.copyfile(PACKAGED_DIR / entry["index"]["file"], target / f"{split}.index.json.gz")
            out.append(ExportedSplit(split, dest, len(rows), entry["split_rows"] if entry.get("index") else None))
    else:
        for split in sorted(set(cfg.subset_splits("hub").values())):
            rows = load_rows(cfg, split, source="hub")
            dest = target / f"{split}.jsonl"
            paths.atomic_write_text(dest, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
            out.append(ExportedSplit(split, dest, len(rows), None))
    return out
