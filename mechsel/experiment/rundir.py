"""The run directory: its manifest, its lock, its log file, and refusing foreign runs.

``manifest.json`` records what produced the directory: the config and the hash of the part of
it that determines numbers (its *identity*), library versions, the model's weight fingerprint,
data hashes, every stage's cache key and timing, the result tables, and the status
(``running`` / ``complete``). Opening a directory whose manifest has another identity or other
library versions raises :class:`~mechsel.errors.ProvenanceMismatchError` naming the differences,
unless ``overwrite=True``, which removes the previous run's results, figures and manifest (stage
caches are content-addressed and stay valid; unused ones are pruned when the run completes).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import os
import platform
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from mechsel.errors import ConfigError, ProvenanceMismatchError
from mechsel.experiment.store import write_json
from mechsel.provenance import hash_json, library_versions

__all__ = ["RunDirectory", "MANIFEST", "read_manifest"]

logger = logging.getLogger(__name__)
MANIFEST = "manifest.json"
_OURS = {MANIFEST, "run.log", "config.yaml", "results", "figures", "stages", ".lock"}
_FORMAT = "mechsel.run"


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a run directory (raises if there is none)."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ConfigError(f"{path} holds no {MANIFEST}; pass the output directory of a mechsel run.")
    return json.loads(file.read_text())


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


def _differences(old: Any, new: Any, limit: int = 6) -> list[str]:
    a, b = _flatten(old), _flatten(new)
    diffs = [f"{k}: {a.get(k, '<absent>')!r} → {b.get(k, '<absent>')!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    return diffs[:limit] + ([f"... and {len(diffs) - limit} more"] if len(diffs) > limit else [])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunDirectory:
    """Owns one output directory for the duration of a run (use as a context manager).

    Args:
        path: the output directory.
        identity: JSON-able settings that determine the numbers (see
            :meth:`~mechsel.experiment.config.ExperimentConfig.identity`).
        config: the full config as a dict (recorded, not compared).
        overwrite: replace a previous run of other provenance instead of refusing.
        log_level: level of ``run.log``.
    """

    def __init__(self, path: str | os.PathLike[str], identity: Any, *, config: Any = None, overwrite: bool = False, log_level: str = "INFO") -> None:
        self.path = Path(path)
        self.identity = identity
        self.config = config
        self.overwrite = overwrite
        self.log_level = log_level
        self.manifest: dict[str, Any] = {}
        self._handler: logging.Handler | None = None

    # ------------------------------------------------------------------ opening
    def _check_existing(self) -> dict[str, Any] | None:
        if not self.path.exists():
            return None
        if not self.path.is_dir():
            raise ConfigError(f"Output path {self.path} exists and is not a directory; choose another --output.")
        entries = {p.name for p in self.path.iterdir()}
        manifest_file = self.path / MANIFEST
        if not manifest_file.is_file():
            foreign = sorted(entries - _OURS)
            if foreign:
                raise ConfigError(
                    f"Output directory {self.path} already holds files that are not a mechsel run ({foreign[:5]}); "
                    f"choose a new or empty directory."
                )
            return None
        old = json.loads(manifest_file.read_text())
        if old.get("format") != _FORMAT:
            raise ConfigError(f"{manifest_file} is not a mechsel run manifest; choose another output directory.")
        diffs = _differences(old.get("identity"), self.identity)
        versions = _differences(old.get("versions"), library_versions())
        if not diffs and not versions:
            return old
        if not self.overwrite:
            lines = "; ".join(diffs + [f"library {v}" for v in versions])
            raise ProvenanceMismatchError(
                f"Output directory {self.path} holds a run with other provenance ({lines}). Pass overwrite=True "
                f"(CLI: --overwrite) to replace it, or choose another output directory."
            )
        logger.warning("Overwriting the run in %s (other provenance: %s)", self.path, "; ".join(diffs + versions))
        for name in (MANIFEST, "results", "figures", "config.yaml"):
            target = self.path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
        return None

    def _lock(self) -> None:
        lock = self.path / ".lock"
        if lock.is_file():
            try:
                pid = int(lock.read_text().strip() or 0)
            except ValueError:
                pid = 0
            if pid and pid != os.getpid() and _pid_alive(pid):
                raise ConfigError(f"Another mechsel process (pid {pid}) is running in {self.path}; wait for it or stop it.")
        lock.write_text(str(os.getpid()))

    def __enter__(self) -> RunDirectory:
        old = self._check_existing()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        self.manifest = old or {
            "format": _FORMAT,
            "version": 1,
            "created": now,
            "identity": self.identity,
            "identity_hash": hash_json(self.identity),
            "versions": library_versions(),
            "stages": {},
        }
        self.manifest.update(
            status="running", updated=now, config=self.config, python=sys.version.split()[0],
            platform=platform.platform(), command=" ".join(sys.argv),
        )
        self.save()
        self._start_log()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is not None:
                self.manifest["status"] = "interrupted" if exc_type is KeyboardInterrupt else "failed"
                self.manifest["error"] = f"{exc_type.__name__}: {exc}"
                logger.error("Run %s: %s", self.manifest["status"], self.manifest["error"])
            self.save()
        finally:
            self._stop_log()
            with contextlib.suppress(FileNotFoundError):
                (self.path / ".lock").unlink()

    # ------------------------------------------------------------------ logging
    def _start_log(self) -> None:
        handler = logging.FileHandler(self.path / "run.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.setLevel(self.log_level)
        pkg = logging.getLogger("mechsel")
        self._old_level = pkg.level
        if pkg.level == logging.NOTSET or pkg.level > logging.getLevelName(self.log_level):
            pkg.setLevel(self.log_level)
        pkg.addHandler(handler)
        self._handler = handler

    def _stop_log(self) -> None:
        if self._handler is not None:
            pkg = logging.getLogger("mechsel")
            pkg.removeHandler(self._handler)
            pkg.setLevel(self._old_level)
            self._handler.close()
            self._handler = None

    # ------------------------------------------------------------------ recording
    def record(self, section: str, key: str, value: Any) -> None:
        """Set ``manifest[section][key] = value`` and save."""
        self.manifest.setdefault(section, {})[key] = value
        self.save()

    def save(self) -> None:
        """Write the manifest atomically."""
        self.manifest["updated"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        write_json(self.path / MANIFEST, self.manifest)
