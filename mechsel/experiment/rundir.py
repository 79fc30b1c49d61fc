"""The run directory: its manifest, its lock, its log file, and refusing foreign runs.

``manifest.json`` records what produced the directory: the config and the hash of the part of
it that determines numbers (its *identity*), library versions, the model's weight fingerprint,
data hashes, every stage's cache key and timing, the result tables, and the status
(``running`` / ``complete``). Opening a directory whose manifest has another identity or other
library versions raises :class:`~mechsel.errors.ProvenanceMismatchError` naming the differences,
unless ``overwrite=True``, which removes the previous run's results, figures, report and manifest (stage
caches are content-addressed and stay valid; unused ones are pruned when the run completes).

**The lock.** ``.lock`` is held with ``fcntl.flock`` for the whole run and records the holder's
host, pid, start time and command. Nothing in the directory is read for provenance, replaced or
removed (``overwrite`` included) before the lock is taken, so a second run on a directory in use
stops with an error naming the holder and changes nothing. The kernel releases the lock when its
process dies; a leftover ``.lock`` of a dead process on this host is taken over with a warning,
one recorded by another host is refused (this host cannot tell whether that run still lives).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import logging
import os
import platform
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mechsel.errors import ConfigError, ProvenanceMismatchError
from mechsel.experiment.store import write_json
from mechsel.provenance import hash_json, library_versions

__all__ = ["RunDirectory", "RunDirectoryBusyError", "MANIFEST", "read_manifest"]

logger = logging.getLogger(__name__)
MANIFEST = "manifest.json"
_LOCK = ".lock"
_OURS = {MANIFEST, "run.log", "config.yaml", "results", "figures", "report.html", "stages", _LOCK}
_FORMAT = "mechsel.run"

try:
    import fcntl
except ImportError:  # Windows: the lock file is created with O_EXCL instead (see RunDirectory._acquire)
    fcntl = None


class RunDirectoryBusyError(ConfigError):
    """Another live mechsel process holds the output directory."""


def read_manifest(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a run directory (raises if there is none)."""
    file = Path(path) / MANIFEST
    if not file.is_file():
        raise ConfigError(f"{path} holds no {MANIFEST}; pass the output directory of a mechsel run.")
    return json.loads(file.read_text())


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


_ABSENT = "<absent>"


def _short(value: Any, width: int = 60) -> str:
    text = value if value is _ABSENT else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _entries(value: Any) -> dict[str, Any] | None:
    """A list of settings entries (tasks, selector runs) keyed by their ``label`` / ``name``, or
    ``None`` when it is not one (then it is compared whole, e.g. ``selection.seeds``)."""
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(x, Mapping) for x in value):
        return None
    names = [str(x.get("label") or x.get("name") or i) for i, x in enumerate(value)]
    return dict(zip(names, value)) if len(set(names)) == len(names) else {str(i): x for i, x in enumerate(value)}


def _diff(old: Any, new: Any, path: str, out: list[str]) -> None:
    """Append one ``path: old → new`` line per setting that changed, descending into sections and
    entry lists, so that a change names its key (``selection.runs[kate].params.k``) and a list of
    values is shown whole (``selection.seeds: [0, 1] → [0, 1, 2]``)."""
    if old == new:
        return
    if isinstance(old, Mapping) and isinstance(new, Mapping):
        for key in list(old) + [k for k in new if k not in old]:
            _diff(old.get(key, _ABSENT), new.get(key, _ABSENT), f"{path}.{key}" if path else str(key), out)
        return
    a, b = _entries(old), _entries(new)
    if a is not None and b is not None:
        for key in list(a) + [k for k in b if k not in a]:
            _diff(a.get(key, _ABSENT), b.get(key, _ABSENT), f"{path}[{key}]", out)
        if set(a) == set(b) and list(a) != list(b):
            out.append(f"{path}: order {list(a)} → {list(b)}")
        return
    out.append(f"{path or 'value'}: {_short(old)} → {_short(new)}")


def _differences(old: Any, new: Any, limit: int = 4) -> list[str]:
    """The settings that differ between ``old`` and ``new``, one short line each (at most ``limit``)."""
    diffs: list[str] = []
    _diff(old, new, "", diffs)
    return diffs[:limit] + ([f"... and {len(diffs) - limit} more"] if len(diffs) > limit else [])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(lock: Path) -> dict[str, Any]:
    """What a lock file records: ``{"host", "pid", ...}``; a bare pid (older mechsel) means this host."""
    try:
        text = lock.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return {}
    if not text:
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        holder: Any = {"pid": text}
    if not isinstance(holder, dict):
        holder = {"pid": holder}
    try:
        holder["pid"] = int(holder.get("pid") or 0)
    except (TypeError, ValueError):
        holder["pid"] = 0
    holder.setdefault("host", socket.gethostname())
    return holder


def _describe(holder: Mapping[str, Any]) -> str:
    if not holder.get("pid"):
        return "a process that has not recorded itself yet"
    out = f"host {holder['host']}, pid {holder['pid']}"
    if holder.get("started"):
        out += f", started {holder['started']}"
    if holder.get("command"):
        out += f", command {holder['command']!r}"
    return out


def _unwritable(path: Path, err: OSError) -> ConfigError:
    where = Path(err.filename) if err.filename else path
    return ConfigError(
        f"Cannot write to the output directory {path}: {err.strerror or err} ({where}). A run creates its manifest, "
        f"lock, log and stage caches there, so the directory (or, if it does not exist yet, its parent) must be "
        f"writable. Make it writable (e.g. chmod u+w {where}) or choose another output directory (CLI: -o/--output)."
    )


def _upgraded(identity: Any) -> Any:
    """A recorded identity with the config keys renamed since (an older run's manifest) under their new names."""
    if not isinstance(identity, Mapping):
        return identity
    from mechsel.experiment.loading import upgrade_renamed_keys

    return upgrade_renamed_keys(identity, warn=False)


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

    def __init__(
        self, path: str | os.PathLike[str], identity: Any, *, config: Any = None, overwrite: bool = False, log_level: str = "INFO"
    ) -> None:
        self.path = Path(path)
        self.identity = identity
        self.config = config
        self.overwrite = overwrite
        self.log_level = log_level
        self.manifest: dict[str, Any] = {}
        self._handler: logging.Handler | None = None
        self._lock_fd: int | None = None

    # ------------------------------------------------------------------ opening
    def _check_foreign(self) -> None:
        """Refuse, before anything is written, a path that is not a directory or holds files that are not a run's."""
        if not self.path.exists():
            return
        if not self.path.is_dir():
            raise ConfigError(f"Output path {self.path} exists and is not a directory; choose another --output.")
        if (self.path / MANIFEST).is_file():
            return
        foreign = sorted({p.name for p in self.path.iterdir()} - _OURS)
        if foreign:
            raise ConfigError(
                f"Output directory {self.path} already holds files that are not a mechsel run ({foreign[:5]}); "
                f"choose a new or empty directory."
            )

    def _check_existing(self) -> dict[str, Any] | None:
        """The previous manifest to resume, or ``None``; removes a run of other provenance if ``overwrite``.

        Called only while holding the lock.
        """
        manifest_file = self.path / MANIFEST
        if not manifest_file.is_file():
            return None
        try:
            old = json.loads(manifest_file.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ConfigError(
                f"{manifest_file} is not readable JSON ({err}); it is damaged. Move the directory aside or choose another output directory."
            ) from None
        if not isinstance(old, dict) or old.get("format") != _FORMAT:
            raise ConfigError(f"{manifest_file} is not a mechsel run manifest; choose another output directory.")
        diffs = _differences(_upgraded(old.get("identity")), self.identity)
        versions = _differences(old.get("versions"), library_versions())
        if not diffs and not versions:
            return old
        if not self.overwrite:
            lines = "; ".join(diffs + [f"library {v}" for v in versions])
            raise ProvenanceMismatchError(
                f"Output directory {self.path} holds a run of other provenance: {lines}. Pass overwrite=True "
                f"(CLI: --overwrite) to replace it, or choose another output directory."
            )
        logger.warning("Overwriting the run in %s (other provenance: %s)", self.path, "; ".join(diffs + versions))
        for name in (MANIFEST, "results", "figures", "report.html", "config.yaml"):
            target = self.path / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        return None

    # ------------------------------------------------------------------ the lock
    def _acquire(self) -> None:
        """Take ``.lock`` atomically or raise :class:`RunDirectoryBusyError` naming its holder.

        With ``fcntl``: open the file, ``flock`` it without waiting, and check it is still the file at
        ``.lock`` (a holder unlinks it while holding it, on exit). Without (Windows): create it with
        ``O_EXCL``; a stale one is removed first, which two processes racing for the same stale lock
        could both do.
        """
        lock = self.path / _LOCK
        while True:
            if fcntl is None:
                try:
                    fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                except FileExistsError:
                    holder = self._wait_for_holder(lock)
                    if not holder:
                        raise self._busy(holder) from None
                    self._refuse_unless_stale(holder)
                    lock.unlink(missing_ok=True)
                    continue
                break
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                holder = self._wait_for_holder(lock)
                if not holder and not lock.exists():  # released just now
                    continue
                raise self._busy(holder) from None
            try:
                same = os.fstat(fd).st_ino == os.stat(lock).st_ino
            except FileNotFoundError:
                same = False
            if same:  # not a file that its previous holder unlinked while we opened it
                break
            os.close(fd)
        try:
            self._refuse_unless_stale(_read_holder(lock))
            record = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now(), "command": " ".join(sys.argv)}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(record).encode("utf-8"), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    @staticmethod
    def _wait_for_holder(lock: Path) -> dict[str, Any]:
        """The holder's record; it writes it just after taking the lock, so give it a moment."""
        for _ in range(20):
            holder = _read_holder(lock)
            if holder.get("pid"):
                return holder
            time.sleep(0.05)
        return {}

    def _busy(self, holder: Mapping[str, Any]) -> RunDirectoryBusyError:
        return RunDirectoryBusyError(
            f"Output directory {self.path} is in use by another mechsel run ({_describe(holder)}). Nothing in it "
            f"was changed. Wait for that run to finish, stop it, or choose another output directory (CLI: -o)."
        )

    def _refuse_unless_stale(self, holder: Mapping[str, Any]) -> None:
        """Raise if the recorded ``holder`` of a lock we could take may still run; log taking over a dead one."""
        if not holder:
            return
        lock = self.path / _LOCK
        if holder["host"] != socket.gethostname():
            raise RunDirectoryBusyError(
                f"Output directory {self.path} is locked by a mechsel run on another machine ({_describe(holder)}), "
                f"which this host ({socket.gethostname()}) cannot check. If that run is no longer running, delete "
                f"{lock} and start again; otherwise choose another output directory."
            )
        if holder["pid"] and holder["pid"] != os.getpid() and _pid_alive(holder["pid"]):
            raise RunDirectoryBusyError(
                f"Output directory {self.path} is locked by {_describe(holder)}, which is still alive (an older "
                f"mechsel?). Wait for it or stop it; if pid {holder['pid']} is not a mechsel run, delete {lock}."
            )
        logger.warning("Taking over the stale lock of %s: %s no longer runs.", self.path, _describe(holder))

    def _release(self) -> None:
        fd = self._lock_fd
        if fd is None:
            return
        self._lock_fd = None
        try:
            with contextlib.suppress(FileNotFoundError):
                (self.path / _LOCK).unlink()  # while still holding it, so no one locks a file about to vanish
        finally:
            os.close(fd)

    def __enter__(self) -> RunDirectory:
        try:
            self._check_foreign()
            self.path.mkdir(parents=True, exist_ok=True)
            self._acquire()
        except OSError as err:
            if isinstance(err, PermissionError) or err.errno == errno.EROFS:
                raise _unwritable(self.path, err) from None
            raise
        try:
            old = self._check_existing()
            now = _now()
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
                status="running",
                updated=now,
                config=self.config,
                python=sys.version.split()[0],
                platform=platform.platform(),
                command=" ".join(sys.argv),
            )
            try:
                self.save()
                self._start_log()
            except PermissionError as err:
                raise _unwritable(self.path, err) from None
        except BaseException:
            self._release()
            raise
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
            self._release()

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
        self.manifest["updated"] = _now()
        write_json(self.path / MANIFEST, self.manifest)
