"""The compact task data that ships inside the package (``mechsel/data``).

``mechsel/data/MANIFEST.json`` lists, for every packaged task split, its gzip'd JSON-lines file
(each line is the source row, byte for byte), the file's sha256 and its row counts, plus each
dataset's source, provenance and terms. ``scripts/build_packaged_data.py`` regenerates it
deterministically from the full copies (``../shared/data``).

A split is packaged either whole, or as a *partial* split: the rows that the subset draws of
:func:`mechsel.tasks.make_splits` reach for the covered configurations (listed in the manifest's
``coverage``), plus the split's first rows. A partial split also ships an index file with each
shipped row's position in the full split and the label and word count of *every* row of the full
split, so a draw on the packaged rows walks the same seeded label queues as a draw on the full
file and gives identical examples. A draw that reaches a row that was not shipped raises
:class:`~mechsel.errors.DataError` instead of drawing something else.

Every read checks the files' sha256 against the manifest.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mechsel.errors import DataError

__all__ = ["PACKAGED_DIR", "PackagedSplit", "manifest", "packaged_tasks", "packaged_splits", "parse_index", "read_packaged_split"]

PACKAGED_DIR = Path(__file__).resolve().parent.parent / "data"
"""The folder of the packaged data (``mechsel/data`` inside the installed package)."""

_REBUILD = "reinstall mechsel, or rebuild the folder with `python scripts/build_packaged_data.py` from a full data copy"


@dataclass(frozen=True)
class PackagedSplit:
    """The shipped rows of one split, and what a draw needs to know about the rows left out."""

    rows: list[dict[str, Any]]
    """The shipped rows, in the order of the full split."""
    n_rows: int
    """Rows of the full split."""
    positions: tuple[int, ...] | None
    """Each shipped row's index in the full split; ``None`` when the whole split is shipped."""
    labels: tuple[int, ...] | None
    """Label index of every row of the full split (partial classification splits), else ``None``."""
    words: tuple[int, ...] | None
    """Word count (:func:`mechsel.tasks.splits.word_count`) of every row of the full split (partial splits)."""

    @property
    def partial(self) -> bool:
        """Whether rows of the full split were left out."""
        return self.positions is not None


@functools.cache
def manifest() -> dict[str, Any]:
    """The parsed ``MANIFEST.json`` (empty ``tasks`` when the package carries no data)."""
    path = PACKAGED_DIR / "MANIFEST.json"
    if not path.is_file():
        return {"tasks": {}}
    return json.loads(path.read_text(encoding="utf-8"))


def packaged_tasks() -> list[str]:
    """Names (data folders) of the packaged tasks."""
    return sorted(manifest()["tasks"])


def packaged_splits(folder: str) -> dict[str, dict[str, Any]]:
    """Split name → its manifest entry, for the packaged task in ``folder`` (empty if none)."""
    entry = manifest()["tasks"].get(folder)
    return dict(entry["splits"]) if entry else {}


def _verified_bytes(relative: str, sha256: str) -> bytes:
    path = PACKAGED_DIR / relative
    if not path.is_file():
        raise DataError(f"The packaged data file {path} listed in MANIFEST.json is missing; {_REBUILD}.")
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise DataError(f"The packaged data file {path} is corrupt: sha256 {digest}, MANIFEST.json says {sha256}; {_REBUILD}.")
    return data


def _json_lines(data: bytes, where: str) -> list[dict[str, Any]]:
    rows = []
    for lineno, line in enumerate(gzip.decompress(data).decode("utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            if not isinstance(row, dict):
                raise DataError(f"{where}:{lineno} is not a JSON object; {_REBUILD}.")
            rows.append(row)
    return rows


@functools.lru_cache(maxsize=32)
def read_packaged_split(folder: str, split: str) -> PackagedSplit:
    """The packaged rows of ``split`` of the task in ``folder``, checksums verified.

    Raises:
        DataError: the split is not packaged, a file is missing, or a checksum does not match.
    """
    splits = packaged_splits(folder)
    if split not in splits:
        raise DataError(f"The packaged data has no split {split!r} of {folder!r}; it has {sorted(splits)}.")
    entry = splits[split]
    rows = _json_lines(_verified_bytes(entry["file"], entry["sha256"]), entry["file"])
    if len(rows) != entry["rows"]:
        raise DataError(f"The packaged {entry['file']} holds {len(rows)} rows, MANIFEST.json says {entry['rows']}; {_REBUILD}.")
    index = entry.get("index")
    if index is None:
        return PackagedSplit(rows=rows, n_rows=len(rows), positions=None, labels=None, words=None)
    return parse_index(_verified_bytes(index["file"], index["sha256"]), rows, index["file"])


def parse_index(data: bytes, rows: list[dict[str, Any]], where: str) -> PackagedSplit:
    """A partial split from its shipped ``rows`` and its gzip'd index file's bytes ``data``."""
    meta = json.loads(gzip.decompress(data).decode("utf-8"))
    positions = tuple(meta["positions"])
    labels = tuple(meta["labels"]) if meta.get("labels") is not None else None
    n = int(meta["split_rows"])
    if len(positions) != len(rows) or len(meta["words"]) != n or (labels is not None and len(labels) != n):
        raise DataError(
            f"The index file {where} does not match its rows ({len(rows)} rows, {len(positions)} positions); rebuild or re-export them together."
        )
    return PackagedSplit(rows=rows, n_rows=n, positions=positions, labels=labels, words=tuple(meta["words"]))
