"""Where mechsel keeps its cache and finds its data, and atomic writes.

Cache directory: ``$MECHSEL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/mechsel``, else
``~/.cache/mechsel``. Data directory (full local copies of the task datasets): an explicit
argument, else ``$MECHSEL_DATA_DIR``, else ``../shared/data`` relative to the working directory
or to the repository that holds this package (:func:`default_data_dirs`). Nothing is guessed
beyond that list; a missing directory raises and says where it looked. Task loading goes on past
the default directories to the packaged subset and the hub (:func:`mechsel.tasks.locate_task`).

Names that become paths (stage, output and checkpoint names; task names) go through
:func:`safe_name`, and anything that deletes or writes by pattern checks with :func:`within` that
the path it resolves to stays inside the folder it was meant for.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from mechsel.errors import ConfigError, DataError

__all__ = ["cache_dir", "data_dir", "default_data_dirs", "atomic_dir", "atomic_write_bytes", "atomic_write_text", "safe_name", "within"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def safe_name(kind: str, name: str) -> str:
    """Return ``name`` if it can be used as one file or folder name, else raise a teaching error.

    Safe names hold letters, digits and ``_ . -`` only, do not start with a dot (hidden files and
    mechsel's temporary ``.*.tmp-*`` files do) and contain no ``..``, so joined to a folder they
    stay inside it. ``kind`` (``"stage"``, ``"checkpoint"``, ``"task"`` ...) names the thing in the
    error message.
    """
    if isinstance(name, str) and _SAFE_NAME.fullmatch(name) and not name.startswith(".") and ".." not in name:
        return name
    if not isinstance(name, str) or not name:
        problem = "it is empty" if name == "" else f"it is a {type(name).__name__}, not a string"
    elif name.startswith("."):
        problem = "it starts with a dot (reserved for hidden and temporary files)"
    elif ".." in name:
        problem = "it contains '..' (which leads out of the folder)"
    else:
        bad = sorted(set(re.sub(r"[A-Za-z0-9_.-]", "", name)))
        problem = f"it contains {', '.join(repr(c) for c in bad)}"
    suggestion = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name))).strip("._-") or "name"
    raise ConfigError(
        f"The {kind} name {name!r} cannot be used as a file name: {problem}. {kind.capitalize()} names become "
        f"file and folder names, so they may hold letters, digits and _ . - only, must not start with a dot and "
        f"must not contain '..'; e.g. {suggestion!r}."
    )


def within(base: str | os.PathLike[str], path: str | os.PathLike[str]) -> bool:
    """Whether ``path``, with symbolic links and ``..`` resolved, lies inside ``base`` (or is it)."""
    return Path(path).resolve().is_relative_to(Path(base).resolve())


def cache_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Return (and create) mechsel's cache directory."""
    if override is not None:
        path = Path(override)
    elif os.environ.get("MECHSEL_CACHE_DIR"):
        path = Path(os.environ["MECHSEL_CACHE_DIR"])
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        path = Path(base) / "mechsel"
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_data_dirs() -> list[Path]:
    """The data directories used when neither an argument nor ``$MECHSEL_DATA_DIR`` names one, in order."""
    here = Path(__file__).resolve().parent.parent
    out: list[Path] = []
    for path in (Path.cwd() / ".." / "shared" / "data", here / ".." / "shared" / "data"):
        if all(path.resolve() != p.resolve() for p in out):
            out.append(path)
    return out


def data_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """Return the local data directory, or raise saying where it looked and how to point elsewhere."""
    if override is not None:
        candidates = [Path(override)]
    elif os.environ.get("MECHSEL_DATA_DIR"):
        candidates = [Path(os.environ["MECHSEL_DATA_DIR"])]
    else:
        candidates = default_data_dirs()
    for path in candidates:
        if path.is_dir():
            return path.resolve()
    looked = ", ".join(str(p) for p in candidates)
    chosen = "drop data_dir=..." if override is not None else "unset MECHSEL_DATA_DIR" if os.environ.get("MECHSEL_DATA_DIR") else ""
    fallback = f"; or {chosen} so that task loading" if chosen else "; task loading (load_examples, make_splits)"
    raise DataError(
        f"No mechsel data directory found (looked in: {looked}). Set MECHSEL_DATA_DIR to a folder holding one "
        f"sub-folder per task (e.g. sst2/train.jsonl) or pass data_dir=...{fallback} uses the subset packaged with "
        f"mechsel or, online, the Hugging Face hub (see `mechsel data`)."
    )


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary directory beside ``target`` that is renamed onto it on success.

    A crash or exception inside the block leaves no partial ``target``: the temporary directory
    is removed and ``target`` is untouched.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` through a temporary file and an atomic rename."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(target: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    atomic_write_bytes(target, text.encode("utf-8"))
