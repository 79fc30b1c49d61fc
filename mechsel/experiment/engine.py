"""A small cached pipeline: stages keyed by a hash of their settings and inputs.

Each :class:`Stage` is a function of a :class:`StageContext` returning named outputs
(DataFrames, arrays, JSON-able values). Its *key* hashes the stage's name, version, settings and
the keys of the stages it reads, so a change anywhere upstream changes every key below it.

Layout under the run directory::

    stages/<stage>/<key>/            finished outputs (renamed into place atomically), _done.json
    stages/<stage>/<key>.partial/    checkpoints of an unfinished stage (ctx.checkpoint)

A rerun loads finished stages instead of running them. An interrupted stage (Ctrl-C, kill -9)
keeps its finished checkpoints, each written atomically, and resumes from them. For resumed
results to equal uninterrupted ones, every checkpointed step must be a pure function of its
inputs (seed it from its own identity, not from a shared random stream).
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from mechsel.errors import ConfigError, DataError
from mechsel.experiment.store import find_value, load_value, save_value, write_json
from mechsel.paths import atomic_dir
from mechsel.provenance import hash_json

__all__ = ["Stage", "StageContext", "StageRecord", "run_stages", "stage_key", "prune_stale"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
_DONE = "_done.json"


@dataclass(frozen=True)
class Stage:
    """One step of a pipeline."""

    name: str
    """Unique name, e.g. ``"collect/sst2"`` (``/`` makes sub-folders)."""
    run: Callable[[StageContext], Mapping[str, Any]]
    """Computes the outputs from the context."""
    inputs: tuple[str, ...] = ()
    """Names of the stages whose outputs it reads (they must come earlier)."""
    params: Any = None
    """JSON-able settings that determine the outputs (hashed into the key)."""
    version: int = 1
    """Bump when the stage's code changes its numbers, so old caches are not reused."""
    source: bool = False
    """A source stage (reading external data) runs every time, cheaply, and its key also hashes
    its output named ``fingerprint``: when the data change, every stage below is recomputed."""


@dataclass
class StageContext:
    """What a running stage sees."""

    stage: Stage
    """The stage itself (``ctx.stage.params`` holds its settings)."""
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

    @property
    def params(self) -> Any:
        return self.stage.params

    def checkpoint(self, name: str, compute: Callable[[], T]) -> T:
        """Return the stored value of step ``name`` if a previous attempt finished it; otherwise
        ``compute()`` it, store it atomically, and return it."""
        if not re.fullmatch(r"[A-Za-z0-9_.=-]+", name):
            raise ConfigError(f"Checkpoint names may hold letters, digits and _.=- only, got {name!r}.")
        stem = self.work_dir / name
        found = find_value(stem)
        if found is not None:
            return load_value(found)
        value = compute()
        save_value(stem, value)
        return load_value(find_value(stem))  # type: ignore[arg-type]  # the stored form, as a resume would see it


@dataclass(frozen=True)
class StageRecord:
    """How a stage went in this run."""

    name: str
    key: str
    cached: bool
    seconds: float
    path: str


def stage_key(stage: Stage, input_keys: Mapping[str, str], fingerprint: Any = None) -> str:
    """The cache key of ``stage`` given its inputs' keys (and a source stage's fingerprint)."""
    return hash_json({"name": stage.name, "version": stage.version, "params": stage.params,
                      "inputs": {name: input_keys[name] for name in stage.inputs}, "fingerprint": fingerprint})


def _clean_debris(folder: Path) -> None:
    """Remove temporary files and folders left by an interrupted atomic write."""
    if not folder.is_dir():
        return
    for tmp in folder.rglob(".*.tmp-*"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _load_outputs(folder: Path) -> dict[str, Any]:
    outputs = {}
    for path in sorted(folder.iterdir()):
        if path.name == _DONE or path.name.startswith("."):
            continue
        outputs[path.name[: -len(path.suffix)]] = load_value(path)
    return outputs


def _run(
    stage: Stage, key: str, folder: Path, keys: Mapping[str, str], outputs: Mapping[str, dict[str, Any]], resources: Any, progress: bool
) -> Mapping[str, Any]:
    work = folder / f"{key}.partial"
    work.mkdir(parents=True, exist_ok=True)
    ctx = StageContext(stage, key, work, {i: outputs[i] for i in stage.inputs}, resources, progress)
    produced = stage.run(ctx)
    if not isinstance(produced, Mapping):
        raise DataError(f"Stage {stage.name!r} must return a mapping of named outputs, got {type(produced).__name__}.")
    return produced


def run_stages(
    stages: Sequence[Stage],
    root: str | Path,
    *,
    resources: Any = None,
    progress: bool = True,
    on_stage_done: Callable[[StageRecord], None] | None = None,
) -> tuple[dict[str, dict[str, Any]], list[StageRecord]]:
    """Run ``stages`` in order under ``root``, loading finished ones from the cache.

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
    bar = tqdm(stages, desc="stages", unit="stage", disable=not progress)
    for stage in bar:
        missing = [i for i in stage.inputs if i not in keys]
        if missing:
            raise ConfigError(f"Stage {stage.name!r} reads {missing}, which do not run before it.")
        folder = root / "stages" / stage.name
        _clean_debris(folder)
        bar.set_postfix_str(stage.name)
        start = time.perf_counter()
        produced = None
        if stage.source:
            produced = _run(stage, "pending", folder, keys, outputs, resources, progress)
            if "fingerprint" not in produced:
                raise DataError(f"Source stage {stage.name!r} must return an output named 'fingerprint'.")
            key = stage_key(stage, keys, produced["fingerprint"])
            shutil.rmtree(folder / "pending.partial", ignore_errors=True)
        else:
            key = stage_key(stage, keys)
        keys[stage.name] = key
        final, work = folder / key, folder / f"{key}.partial"
        if (final / _DONE).is_file():
            outputs[stage.name] = _load_outputs(final)
            cached = True
            logger.info("stage %s: cached (%s)", stage.name, key)
        else:
            resumed = work.is_dir() and any(work.iterdir())
            if produced is None:
                logger.info("stage %s: %s (%s)", stage.name, "resuming" if resumed else "running", key)
                produced = _run(stage, key, folder, keys, outputs, resources, progress)
            with atomic_dir(final) as tmp:
                for name, value in produced.items():
                    save_value(tmp / name, value)
                write_json(tmp / _DONE, {"stage": stage.name, "key": key, "params": stage.params, "inputs": {i: keys[i] for i in stage.inputs},
                                         "seconds": time.perf_counter() - start, "resumed": resumed})
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
    """Delete cached stage folders of ``root`` that the finished run in ``records`` did not use."""
    root = Path(root)
    keep = {(root / r.path).resolve() for r in records}
    removed = []
    stages_dir = root / "stages"
    if not stages_dir.is_dir():
        return removed
    for done in list(stages_dir.rglob(_DONE)):
        folder = done.parent
        if folder.resolve() not in keep:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    for partial in list(stages_dir.rglob("*.partial")):
        if partial.is_dir():
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed

