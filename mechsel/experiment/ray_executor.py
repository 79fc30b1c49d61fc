"""The Ray engine (``execution.engine: ray``): a stage's units of work on a pool of Ray actors.

**Workers.** Each actor (:class:`_Worker`) builds its own
:class:`~mechsel.experiment.resources.Resources` from the run's config once: the model loads once
per actor (the embedded model converts once per node, into that node's cache folder; others load
by name) and is kept, with each task's splits, runner and packed prompts, for every unit of every
stage of the run. It imports the config's plug-ins, runs torch with ``threads_per_worker`` threads
and enters the run's matmul precision, checked on its own device. A model handed to
:func:`~mechsel.experiment.run_experiment` (tests, notebooks) goes to the actors once through the
object store instead of being loaded by name.

**Units.** For each :meth:`~mechsel.experiment.engine.StageContext.map_units` call the driver (this
process) loads the units already stored, puts ``shared`` in the object store once, and sends the
others to the actors, at most :data:`IN_FLIGHT` per actor at a time (the next one waits on the
actor while it computes). Each result is stored by the driver, through the engine's atomic
checkpoint code, as soon as it arrives: a driver killed with ``kill -9`` loses no finished unit,
and the rerun sends only the rest. Results are returned in unit order, in their stored form.

**Faults.** An actor that dies (killed, out of memory, node lost) is restarted and its pending
units retried, up to ``execution.retries`` times (Ray's ``max_restarts`` / ``max_task_retries``);
beyond that the run stops with a :class:`~mechsel.errors.WorkerError`. A unit that raises is not
retried: the units that had already finished are stored, and the run stops with the unit's own
exception (Ray's wrapper removed; the worker's traceback is logged), as the local engine would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import socket
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm.auto import tqdm

from mechsel.errors import ConfigError, MechselError, WorkerError
from mechsel.experiment.execution import MISSING, Executor, UnitFn

if TYPE_CHECKING:
    from mechsel.experiment.config import ExperimentConfig
    from mechsel.experiment.engine import StageContext

__all__ = ["RayExecutor", "IN_FLIGHT"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
IN_FLIGHT = 2
"""Units sent to an actor before its first one returns, so that it never waits on the driver."""


def _import_ray() -> Any:
    from mechsel.experiment.execution import import_ray

    return import_ray()


class _Worker:
    """One Ray actor: the run's resources, built once, and the units sent to it.

    Args:
        config: the run's config, with ``model.n_threads`` set to the worker's threads.
        model: the model the run was given, or ``None`` to load ``config.model`` by name.
    """

    def __init__(self, config: ExperimentConfig, model: Any) -> None:
        import torch

        from mechsel.experiment.resources import Resources
        from mechsel.models.loading import resolve_device
        from mechsel.models.precision import matmul_precision
        from mechsel.plugins import load_plugins

        if config.model.n_threads is not None:
            torch.set_num_threads(config.model.n_threads)
        load_plugins(config.plugins, Path.cwd())  # stored absolute (files) or dotted (modules)
        self._stack = contextlib.ExitStack()
        self.precision = self._stack.enter_context(matmul_precision(config.model.matmul_precision, resolve_device(config.model.device)))
        self.resources = Resources(config, model=model)

    def describe(self) -> dict[str, Any]:
        """Where this actor runs and how: host, pid, torch threads, matmul precision."""
        import torch

        return {"host": socket.gethostname(), "pid": os.getpid(), "threads": torch.get_num_threads(), **self.precision.as_dict()}

    def run(self, fn: UnitFn[Any, Any, T], shared: Any, unit: Any) -> T:
        """``fn(resources, shared, unit)``."""
        return fn(self.resources, shared, unit)


class RayExecutor(Executor):
    """Units on Ray actors, results stored by this process (see the module docstring).

    Ray starts (or is joined) and the actors are created on the first unit that is not stored
    yet, so a run whose stages are all cached never touches Ray. :meth:`close` removes the actors
    and stops a Ray instance this executor started.

    Args:
        config: the run; its ``execution`` section says where and how many workers.
        model: an already loaded model to send to the workers instead of loading ``config.model``.
    """

    remote = True

    def __init__(self, config: ExperimentConfig, *, model: Any = None) -> None:
        self.settings = config.execution
        threads = self.settings.threads_per_worker
        self._config = dataclasses.replace(config, model=dataclasses.replace(config.model, n_threads=threads))
        self._model = model
        self._ray: Any = None
        self._started_ray = False
        self._actors: list[Any] = []
        self._model_ref: Any = None

    # ------------------------------------------------------------------ workers
    def _workers(self) -> list[Any]:
        if self._actors:
            return self._actors
        ray = self._ray = _import_ray()
        s = self.settings
        if not ray.is_initialized():
            if s.address:
                logger.info("Joining the Ray cluster at %s", s.address)
                ray.init(address=s.address, logging_level=logging.WARNING)
            else:
                cpus = s.workers * s.threads_per_worker if s.workers else os.cpu_count() or 1
                logger.info("Starting a Ray instance on this machine (%d CPUs)", cpus)
                ray.init(num_cpus=cpus, include_dashboard=False, logging_level=logging.WARNING)
            self._started_ray = True
        n = self._fitting_workers(ray.cluster_resources())
        # Held for the executor's life: a restarted actor is built again from the same arguments.
        self._model_ref = ray.put(self._model) if self._model is not None else None
        options = {
            "num_cpus": s.threads_per_worker,
            "num_gpus": s.gpus_per_worker,
            "max_restarts": s.retries,
            "max_task_retries": s.retries,
        }
        worker = ray.remote(_Worker).options(**options)
        self._actors = [worker.remote(self._config, self._model_ref) for _ in range(n)]
        try:
            infos = ray.get([a.describe.remote() for a in self._actors])
        except ray.exceptions.RayError as err:
            raise WorkerError(
                f"The Ray workers could not start ({_brief(_cause(ray, err))}). Every node needs mechsel installed (the same "
                f"version), and the config's plug-ins and data at the same paths; see the README's 'Scaling out'."
            ) from None
        hosts = sorted({i["host"] for i in infos})
        logger.info(
            "%d Ray workers on %s (%d threads each, matmul precision %s)", n, ", ".join(hosts), s.threads_per_worker, infos[0]["effective"]
        )
        return self._actors

    def _fitting_workers(self, resources: dict[str, float]) -> int:
        """The number of actors to start: ``execution.workers`` (or all that fit), at most what the cluster holds."""
        s = self.settings
        fit = int(resources.get("CPU", 0) // s.threads_per_worker)
        if s.gpus_per_worker:
            fit = min(fit, int(math.floor(resources.get("GPU", 0) / s.gpus_per_worker + 1e-9)))
        if fit < 1:
            raise ConfigError(
                f"The Ray cluster has {resources.get('CPU', 0):g} CPUs and {resources.get('GPU', 0):g} GPUs: not enough for one "
                f"worker of execution.threads_per_worker={s.threads_per_worker} and execution.gpus_per_worker={s.gpus_per_worker:g}. "
                f"Lower them, or add nodes to the cluster."
            )
        if s.workers is not None and s.workers > fit:
            logger.warning(
                "execution.workers=%d, but the Ray cluster holds %d workers of %d thread(s) and %g GPU(s) each; starting %d.",
                s.workers,
                fit,
                s.threads_per_worker,
                s.gpus_per_worker,
                fit,
            )
        return min(s.workers or fit, fit)

    def close(self) -> None:
        ray = self._ray
        if ray is None:
            return
        for actor in self._actors:
            with contextlib.suppress(Exception):
                ray.kill(actor, no_restart=True)
        self._actors = []
        self._model_ref = None
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # ------------------------------------------------------------------ units
    def map(self, ctx: StageContext[Any], fn: UnitFn[Any, Any, T], units: Sequence[tuple[str, Any]], shared: Any, *, desc: str) -> list[T]:
        results: dict[str, Any] = {}
        todo: list[tuple[str, Any]] = []
        seen: set[str] = set()
        for name, unit in units:
            if name in seen:  # the same checkpoint twice (e.g. identical evaluations): computed once
                continue
            seen.add(name)
            value = ctx.stored(name)
            if value is MISSING:
                todo.append((name, unit))
            else:
                results[name] = value
        if todo:
            start = time.perf_counter()
            total = len(results) + len(todo)
            with tqdm(total=total, initial=len(results), desc=desc, unit="unit", disable=not ctx.progress) as bar:
                self._run(ctx, fn, todo, shared, results, bar)
            seconds = time.perf_counter() - start
            logger.info(
                "%s: %d units on %d Ray workers in %.1f s (%.2f units/s)", desc, len(todo), len(self._actors), seconds, len(todo) / seconds
            )
        return [results[name] for name, _ in units]

    def _run(
        self, ctx: StageContext[Any], fn: UnitFn[Any, Any, T], todo: list[tuple[str, Any]], shared: Any, results: dict, bar: Any
    ) -> None:
        actors = self._workers()
        ray = self._ray
        shared_ref = ray.put(shared)
        queue = deque(todo)
        pending: dict[Any, tuple[str, Any]] = {}  # object ref -> (unit name, actor)
        load = {id(a): 0 for a in actors}
        while queue or pending:
            for actor in actors:
                while queue and load[id(actor)] < IN_FLIGHT:
                    name, unit = queue.popleft()
                    pending[actor.run.remote(fn, shared_ref, unit)] = (name, actor)
                    load[id(actor)] += 1
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                name, actor = pending.pop(ref)
                load[id(actor)] -= 1
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as err:
                    self._store_finished(ctx, pending, results)
                    raise self._unit_error(ray, err, name, ctx.stage.name) from None
                results[name] = ctx.checkpoint(name, lambda value=value: value)
                bar.update(1)

    def _store_finished(self, ctx: StageContext[Any], pending: dict[Any, tuple[str, Any]], results: dict) -> None:
        """Store the units that finished while another one failed (nothing is waited for)."""
        ray = self._ray
        if not pending:
            return
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0)
        for ref in ready:
            name, _ = pending.pop(ref)
            with contextlib.suppress(ray.exceptions.RayError):
                value = ray.get(ref)
                results[name] = ctx.checkpoint(name, lambda value=value: value)

    def _unit_error(self, ray: Any, err: Exception, name: str, stage: str) -> BaseException:
        """The exception to raise for unit ``name`` that failed with Ray error ``err``: the unit's own
        when it raised one, else a :class:`WorkerError` (its worker died, beyond the retries, or was
        killed by Ray's memory monitor)."""
        if isinstance(err, ray.exceptions.RayTaskError):
            cause = _cause(ray, err)
            # mechsel's errors say what to fix; anything else is a bug, whose worker traceback matters
            log = logger.debug if isinstance(cause, MechselError) else logger.error
            log("Stage %r: unit %r failed on a Ray worker:\n%s", stage, name, err)
            return cause
        logger.debug("Stage %r: unit %r was lost with its Ray worker:\n%s", stage, name, err)
        return WorkerError(
            f"Stage {stage!r}: unit {name!r} was lost with its Ray worker ({_brief(err)}); a worker that dies is restarted and "
            f"its units retried up to execution.retries={self.settings.retries} times. The finished units are stored: run the "
            f"same command again to resume. If it happens every time (out of memory?), lower execution.workers or the batch "
            f"sizes, or give each worker more memory."
        )


def _cause(ray: Any, err: BaseException) -> BaseException:
    """The exception a unit (or an actor's constructor) raised, without Ray's wrapper."""
    cause = getattr(err, "cause", None)
    if isinstance(err, ray.exceptions.RayTaskError) and isinstance(cause, BaseException):
        return cause
    if isinstance(cause, BaseException) and cause is not err:
        return _cause(ray, cause)
    return err


def _brief(err: BaseException, width: int = 300) -> str:
    """``Type: message`` on one line, cut to ``width`` characters (Ray's messages run to pages)."""
    text = f"{type(err).__name__}: {' '.join(str(err).split())}"
    return text if len(text) <= width else text[: width - 1] + "…"
