"""Reading and writing stage outputs and checkpoints, by value type, atomically.

=====================  ===========  ==========================================
value                  file         notes
=====================  ===========  ==========================================
``pandas.DataFrame``   ``.parquet`` index dropped; object columns must be parquet-able
``numpy.ndarray``      ``.npy``     no pickles
``dict`` of arrays     ``.npz``     every value an ``ndarray``
JSON-able value        ``.json``    dicts, lists, strings, numbers, ``None``
=====================  ===========  ==========================================

:func:`file_digest` (size and SHA-256) is what done-markers record, and :func:`check_file`
compares a file against one, so a truncated or damaged file is found before it is read.
:func:`load_value` raises :class:`~mechsel.errors.DataError` naming the file when it cannot be
decoded.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechsel.errors import DataError
from mechsel.paths import atomic_write_bytes, atomic_write_text

__all__ = ["save_value", "load_value", "find_value", "file_digest", "check_file", "EXTENSIONS"]

EXTENSIONS = (".parquet", ".npy", ".npz", ".json")


def _encode(value: Any) -> tuple[str, bytes]:
    if isinstance(value, pd.DataFrame):
        buf = io.BytesIO()
        value.reset_index(drop=True).to_parquet(buf, index=False)
        return ".parquet", buf.getvalue()
    if isinstance(value, np.ndarray):
        buf = io.BytesIO()
        np.save(buf, value, allow_pickle=False)
        return ".npy", buf.getvalue()
    if isinstance(value, dict) and value and all(isinstance(v, np.ndarray) for v in value.values()):
        buf = io.BytesIO()
        np.savez(buf, **value)
        return ".npz", buf.getvalue()
    try:
        return ".json", json.dumps(value, indent=1, allow_nan=True, default=_json_default).encode("utf-8")
    except TypeError as err:
        raise DataError(f"Cannot store a {type(value).__name__} ({err}); return DataFrames, arrays or JSON-able values.") from None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def save_value(stem: Path, value: Any) -> Path:
    """Write ``value`` to ``stem`` + the extension of its type, atomically; return the path."""
    ext, data = _encode(value)
    path = stem.with_name(stem.name + ext)
    atomic_write_bytes(path, data)
    return path


def find_value(stem: Path) -> Path | None:
    """The stored file of ``stem`` (any known extension), or ``None``."""
    for ext in EXTENSIONS:
        path = stem.with_name(stem.name + ext)
        if path.is_file():
            return path
    return None


def load_value(path: Path) -> Any:
    """Read a file written by :func:`save_value`.

    Raises:
        DataError: unknown extension, or a file that cannot be decoded (truncated or damaged).
    """
    ext = path.suffix
    if ext not in EXTENSIONS:
        raise DataError(f"Unknown stored value type {path}; expected one of {EXTENSIONS}.")
    try:
        return _decode(path, ext)
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise DataError(
            f"{path} is damaged or truncated and cannot be read ({type(err).__name__}: {err}). Delete it "
            f"(or move it aside) so that it is computed again."
        ) from err


def _decode(path: Path, ext: str) -> Any:
    if ext == ".parquet":
        return pd.read_parquet(path)
    if ext in (".npy", ".npz"):
        with open(path, "rb") as fh:  # our own handle: np.load leaves its own open when a file is damaged
            if ext == ".npy":
                return np.load(fh, allow_pickle=False)
            with np.load(fh, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
    return json.loads(path.read_text(encoding="utf-8"))


def file_digest(path: Path) -> dict[str, Any]:
    """``{"size": bytes, "sha256": hex digest}`` of a file, as recorded in done-markers."""
    sha = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
            size += len(block)
    return {"size": size, "sha256": sha.hexdigest()}


def check_file(path: Path, expected: Mapping[str, Any]) -> str | None:
    """Why ``path`` does not match the digest ``expected`` (see :func:`file_digest`), or ``None`` if it does."""
    if not path.is_file():
        return "the file is missing"
    size = path.stat().st_size
    if size != expected.get("size"):
        return f"size {size} bytes, recorded {expected.get('size')}"
    if file_digest(path)["sha256"] != expected.get("sha256"):
        return "its SHA-256 differs from the recorded one"
    return None


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default, allow_nan=True))
