"""Reading and writing stage outputs and checkpoints, by value type, atomically.

=====================  ===========  ==========================================
value                  file         notes
=====================  ===========  ==========================================
``pandas.DataFrame``   ``.parquet`` index dropped; object columns must be parquet-able
``numpy.ndarray``      ``.npy``     no pickles
``dict`` of arrays     ``.npz``     every value an ``ndarray``
JSON-able value        ``.json``    dicts, lists, strings, numbers, ``None``
=====================  ===========  ==========================================
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mechsel.errors import DataError
from mechsel.paths import atomic_write_bytes, atomic_write_text

__all__ = ["save_value", "load_value", "find_value", "EXTENSIONS"]

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
    """Read a file written by :func:`save_value`."""
    ext = path.suffix
    if ext == ".parquet":
        return pd.read_parquet(path)
    if ext == ".npy":
        return np.load(path, allow_pickle=False)
    if ext == ".npz":
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    if ext == ".json":
        return json.loads(path.read_text(encoding="utf-8"))
    raise DataError(f"Unknown stored value type {path}; expected one of {EXTENSIONS}.")


def write_json(path: Path, obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=_json_default, allow_nan=True))
