"""A small cached pipeline: stages keyed by a hash of their settings and inputs.

Each :class:`Stage` is a function of a :class:`StageContext` returning named outputs
(DataFrames, arrays, JSON-able values). Its settings are one frozen, documented parameter
dataclass (``Stage[P]``, ``StageContext[P].params``); its *key* hashes the stage's name, version,
the canonical dict of those settings (:func:`mechsel.serialize.to_dict`) and the keys of the
stages it reads, so a change anywhere upstream changes every key below it.

Layout under the run directory::

    stages/<stage>/<key>/            finished outputs (renamed into place atomically), _done.json
    stages/<stage>/<key>.partial/    checkpoints of an unfinished stage (ctx.checkpoint)

A rerun loads finished stages instead of running them. An interrupted stage (Ctrl-C, kill -9)
keeps its finished checkpoints, each written atomically, and resumes from them. For resumed
results to equal uninterrupted ones, every checkpointed step must be a pure function of its
inputs (seed it from its own identity, not from a shared random stream).

Independent steps go through :meth:`StageContext.map_units`: each is a *unit* (a checkpoint name
and a small picklable descriptor) computed by a module-level function, here in order or on Ray
workers (:mod:`mechsel.experiment.execution`); either way this process stores each result as the
checkpoint of that name, so the files and values do not depend on where they were computed.

Integrity: a finished stage's ``_done.json`` and each checkpoint's done-marker
(``<file>.done``) record the size and SHA-256 of what they vouch for. A file that no longer
matches (truncated, damaged) is logged, moved aside to ``stages/<stage>/.corrupt/<time>/``
(never deleted) and computed again. Stage, output and checkpoint names must be safe file names
(:func:`mechsel.paths.safe_name`), and clean-ups delete nothing outside the stage's folder.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from tqdm.auto import tqdm

from mechsel.errors import ConfigError, DataError
from mechsel.experiment.execution import MISSING, Executor, LocalExecutor, UnitFn
from mechsel.experiment.store import check_file, file_digest, find_value, load_value, save_value, write_json
from mechsel.paths import atomic_dir, safe_name, within
from mechsel.provenance import hash_json
from mechsel.serialize import to_dict

__all__ = ["Stage", "StageContext", "StageRecord", "run_stages", "stage_key", "prune_stale", "MISSING"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
P = TypeVar("P")
_DONE = "_done.json"
_MARK = ".done"
"""Suffix of a checkpoint's done-marker: ``<file>.done`` holds the file's size and SHA-256."""
_ASIDE = ".corrupt"
"""Folder (inside each stage's folder) that damaged files are moved to."""
_DEBRIS = ".*.tmp-*"
"""Temporary files and folders of atomic writes (see :mod:`mechsel.paths`)."""


@dataclass(frozen=True)
class Stage(Generic[P]):
    """One step of a pipeline."""

    name: str
    """Unique name, e.g. ``"collect/sst2"`` (``/`` makes sub-folders)."""
    run: Callable[[StageContext[P]], Mapping[str, Any]]
    """Computes the outputs from the context."""
    inputs: tuple[str, ...] = ()
    """Names of the stages whose outputs it reads (they must come earlier)."""
    params: P = None  # type: ignore[assignment]  (a stage without settings)
    """The settings that determine the outputs: a frozen parameter dataclass (or JSON-able data),
    hashed into the key through its canonical dict."""
    version: int = 1
    """Bump when the stage's code changes its numbers, so old caches are not reused."""
    source: bool = False
    """A source stage (reading external data) runs every time, cheaply, and its key also hashes
    its output named ``fingerprint``: when the data change, every stage below is recomputed."""


@dataclass
class StageContext(Generic[P]):
    """What a running stage sees."""

    stage: Stage[P]
    """The stage itself (``ctx.params`` holds its settings)."""
    key: str
    """Its cache key."""
    work_dir: Path
    """Folder of its checkpoints; survives interruptions, removed when the stage finishes."""
    inputs: dict[str, dict[str, Any]]
    """Outputs of the stages in ``stage.inputs``, by stage name."""
    resources: Any = None
    """Shared lazy resources (e.g. the model), passed to :func:`run_stages`."""
    progress: bool = True
    """Whether to show progress bars."""
    executor: Executor = field(default_factory=LocalExecutor)
    """Where :meth:`map_units` computes units (this process unless the run says otherwise)."""

    @property
    def params(self) -> P:
        """The stage's parameter dataclass."""
        return self.stage.params

    def stored(self, name: str) -> Any:
        """The stored value of step ``name`` if a previous attempt finished it and it matches its
        done-marker, else :data:`MISSING` (a damaged file is moved aside, as :meth:`checkpoint` does)."""
        found = find_value(self.work_dir / safe_name("checkpoint", name))
        return MISSING if found is None else _load_checkpoint(found, self.work_dir.parent)

    def checkpoint(self, name: str, compute: Callable[[], T]) -> T:
        """Return the stored value of step ``name`` if a previous attempt finished it; otherwise
        ``compute()`` it, store it atomically, and return it."""
        value = self.stored(name)
        if value is not MISSING:
            return value
        stem = self.work_dir / safe_name("checkpoint", name)
        path = save_value(stem, compute())
        write_json(_marker(path), file_digest(path))  # written after the data: a file without one is unfinished
        return load_value(path)  # the stored form, as a resume would see it

    def map_units(
        self, fn: UnitFn[Any, Any, T], units: Sequence[tuple[str, Any]], shared: Any = None, *, desc: str | None = None
    ) -> list[T]:
        """``fn(resources, shared, unit)`` for every ``(checkpoint name, unit)`` of ``units``, each
        result stored as the checkpoint of that name (finished ones are loaded, not recomputed).

        ``fn`` must be a module-level function (workers find it by name) and ``unit`` and
        ``shared`` small picklable values: ``shared`` goes to each worker once. Units with the same
        name are computed once. Returns the stored values, in the order of ``units``.
        """
        return self.executor.map(self, fn, units, shared, desc=desc or self.stage.name)


@dataclass(frozen=True)
class StageRecord:
    """How a stage went in this run."""

    name: str
    key: str
    cached: bool
    seconds: float
    path: str


def stage_key(stage: Stage[Any], input_keys: Mapping[str, str], fingerprint: Any = None) -> str:
    """The cache key of ``stage`` given its inputs' keys (and a source stage's fingerprint)."""
    return hash_json(
        {
            "name": stage.name,
            "version": stage.version,
            "params": to_dict(stage.params),
            "inputs": {name: input_keys[name] for name in stage.inputs},
            "fingerprint": fingerprint,
        }
    )


def _stage_folder(root: Path, name: str) -> Path:
    """``root/stages/<name>``, refusing names and links that would lead outside ``root/stages``."""
    stages = root / "stages"
    folder = stages.joinpath(*(safe_name("stage", part) for part in name.split("/")))
    if not within(stages, folder):
        raise ConfigError(
            f"The folder of stage {name!r}, {folder}, resolves to {folder.resolve()}, outside the run's stage folder "
            f"{stages.resolve()} (a symbolic link?). Remove the link so that the stage writes inside the run folder."
        )
    return folder


def _clean_debris(folder: Path) -> None:
    """Remove temporary files and folders left by an interrupted atomic write, inside ``folder`` only.

    Symbolic links are not followed (a link that matches is removed, not its target) and moved-aside
    files are left alone.
    """
    if not folder.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        if not within(folder, here):
            continue
        dirnames[:] = [d for d in dirnames if d != _ASIDE]
        for name in [d for d in dirnames if fnmatch.fnmatchcase(d, _DEBRIS)] + [f for f in filenames if fnmatch.fnmatchcase(f, _DEBRIS)]:
            tmp = here / name
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)
        dirnames[:] = [d for d in dirnames if not fnmatch.fnmatchcase(d, _DEBRIS)]


def _read_record(path: Path) -> dict[str, Any] | None:
    """A JSON object written by mechsel (done-marker, ``_done.json``), or ``None`` if damaged."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _marker(path: Path) -> Path:
    return path.with_name(path.name + _MARK)


def _move_aside(paths: Sequence[Path], stage_folder: Path, reason: str) -> None:
    """Move a damaged file or folder (and its done-marker) to ``<stage_folder>/.corrupt/<time>/``, and say so."""
    stamp = f"{_dt.datetime.now(_dt.timezone.utc).strftime('%Y%m%dT%H%M%SZ')}-{os.getpid()}-{time.monotonic_ns()}"
    moved = []
    for path in paths:
        dest = stage_folder / _ASIDE / stamp / path.relative_to(stage_folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, dest)
        moved.append(dest)
    logger.warning("%s is damaged (%s); moved it aside to %s and computing it again.", paths[0], reason, moved[0])


def _load_checkpoint(path: Path, stage_folder: Path) -> Any:
    """The value stored at ``path`` if it matches its done-marker, else :data:`MISSING` (moved aside)."""
    marker = _marker(path)
    reason = None
    if marker.is_file():
        expected = _read_record(marker)
        reason = f"its done-marker {marker.name} is unreadable" if expected is None else check_file(path, expected)
    if reason is None:
        try:
            value = load_value(path)
        except DataError as err:
            reason = f"{type(err.__cause__).__name__}: {err.__cause__}" if err.__cause__ else str(err)
        else:
            if not marker.is_file():  # stored before done-markers existed, or interrupted before its marker
                write_json(marker, file_digest(path))
            return value
    _move_aside([path, marker] if marker.is_file() else [path], stage_folder, reason)
    return MISSING


def _load_outputs(folder: Path) -> dict[str, Any]:
    outputs = {}
    for path in sorted(folder.iterdir()):
        if path.name == _DONE or path.name.startswith("."):
            continue
        outputs[path.name[: -len(path.suffix)]] = load_value(path)
    return outputs


def _load_finished(final: Path, stage_folder: Path) -> dict[str, Any] | None:
    """The outputs of a finished stage if its files match ``_done.json``; else ``None`` (folder moved aside)."""
    done = _read_record(final / _DONE)
    if done is None or not isinstance(done.get("files", {}), dict):
        reason = f"its {_DONE} is unreadable"
    else:
        files = done.get("files", {})  # absent in stages finished before digests were recorded
        reason = "; ".join(f"{name}: {why}" for name, digest in files.items() if (why := check_file(final / name, digest))) or None
        if reason is None:
            try:
                return _load_outputs(final)
            except DataError as err:
                reason = f"{type(err.__cause__).__name__}: {err.__cause__}" if err.__cause__ else str(err)
    _move_aside([final], stage_folder, reason)
    return None


def _run(
    stage: Stage[Any],
    key: str,
    folder: Path,
    keys: Mapping[str, str],
    outputs: Mapping[str, dict[str, Any]],
    resources: Any,
    progress: bool,
    executor: Executor,
) -> Mapping[str, Any]:
    work = folder / f"{key}.partial"
    work.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(stage, key, work, {i: outputs[i] for i in stage.inputs}, resources, progress, executor)
    produced = stage.run(ctx)
    if not isinstance(produced, Mapping):
        raise DataError(f"Stage {stage.name!r} must return a mapping of named outputs, got {type(produced).__name__}.")
    return produced


def run_stages(
    stages: Sequence[Stage[Any]],
    root: str | Path,
    *,
    resources: Any = None,
    progress: bool = True,
    on_stage_done: Callable[[StageRecord], None] | None = None,
    executor: Executor | None = None,
) -> tuple[dict[str, dict[str, Any]], list[StageRecord]]:
    """Run ``stages`` in order under ``root``, loading finished ones from the cache.

    ``executor`` computes the stages' units (:meth:`StageContext.map_units`); default: in this
    process, in order (:class:`~mechsel.experiment.execution.LocalExecutor`).

    Returns:
        ``(outputs by stage name, one record per stage)``.
    """
    root = Path(root)
    names = [s.name for s in stages]
    if len(set(names)) != len(names):
        raise ConfigError(f"Stage names must be unique, got {names}.")
    keys: dict[str, str] = {}
    outputs: dict[str, dict[str, Any]] = {}
    records: list[StageRecord] = []
    executor = executor if executor is not None else LocalExecutor()
    bar = tqdm(stages, desc="stages", unit="stage", disable=not progress)
    for stage in bar:
        missing = [i for i in stage.inputs if i not in keys]
        if missing:
            raise ConfigError(f"Stage {stage.name!r} reads {missing}, which do not run before it.")
        folder = _stage_folder(root, stage.name)
        _clean_debris(folder)
        bar.set_postfix_str(stage.name)
        start = time.perf_counter()
        produced = None
        if stage.source:
            produced = _run(stage, "pending", folder, keys, outputs, resources, progress, executor)
            if "fingerprint" not in produced:
                raise DataError(f"Source stage {stage.name!r} must return an output named 'fingerprint'.")
            key = stage_key(stage, keys, produced["fingerprint"])
            shutil.rmtree(folder / "pending.partial", ignore_errors=True)
        else:
            key = stage_key(stage, keys)
        keys[stage.name] = key
        final, work = folder / key, folder / f"{key}.partial"
        finished = _load_finished(final, folder) if (final / _DONE).is_file() else None
        if finished is not None:
            outputs[stage.name] = finished
            cached = True
            logger.info("stage %s: cached (%s)", stage.name, key)
        else:
            resumed = work.is_dir() and any(work.iterdir())
            if produced is None:
                logger.info("stage %s: %s (%s)", stage.name, "resuming" if resumed else "running", key)
                produced = _run(stage, key, folder, keys, outputs, resources, progress, executor)
            with atomic_dir(final) as tmp:
                files = {}
                for name, value in produced.items():
                    path = save_value(tmp / safe_name("output", name), value)
                    files[path.name] = file_digest(path)
                write_json(
                    tmp / _DONE,
                    {
                        "stage": stage.name,
                        "key": key,
                        "params": to_dict(stage.params),
                        "inputs": {i: keys[i] for i in stage.inputs},
                        "seconds": time.perf_counter() - start,
                        "resumed": resumed,
                        "files": files,
                    },
                )
            shutil.rmtree(work, ignore_errors=True)
            outputs[stage.name] = _load_outputs(final)
            cached = False
            logger.info("stage %s: done in %.1f s", stage.name, time.perf_counter() - start)
        record = StageRecord(stage.name, key, cached, time.perf_counter() - start, str(final.relative_to(root)))
        records.append(record)
        if on_stage_done is not None:
            on_stage_done(record)
    return outputs, records


def prune_stale(root: str | Path, records: Sequence[StageRecord]) -> list[Path]:
    """Delete cached stage folders of ``root`` that the finished run in ``records`` did not use.

    Moved-aside damaged files (``.corrupt``) are kept, and nothing outside ``root/stages`` is touched.
    """
    root = Path(root)
    keep = {(root / r.path).resolve() for r in records}
    removed: list[Path] = []
    stages_dir = root / "stages"
    if not stages_dir.is_dir():
        return removed

    def removable(folder: Path) -> bool:
        return folder.is_dir() and _ASIDE not in folder.relative_to(stages_dir).parts and within(stages_dir, folder)

    for done in list(stages_dir.rglob(_DONE)):
        folder = done.parent
        if removable(folder) and folder.resolve() not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for partial in list(stages_dir.rglob("*.partial")):
        if removable(partial) and not partial.is_symlink():
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed
