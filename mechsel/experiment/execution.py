"""Where a run's independent units of work are computed: in this process, or on Ray workers.

A stage with independent steps hands them to :meth:`~mechsel.experiment.engine.StageContext.map_units`
as *units*: a checkpoint name and a small picklable descriptor, computed by a module-level function
``fn(resources, shared, unit)``. The stages that do: ``collect`` (one unit per kind × mask × chunk of
prompts, SAE statistics included, plus each kind × mask's provenance), ``quality`` (one per block of
candidates) and ``evaluate`` (one per distinct evaluation, and the 0-shot baseline).

The executor is chosen by the run's ``execution:`` section (:class:`ExecutionSettings`):

* :class:`LocalExecutor` (``engine: local``, the default) computes the units here, one after the
  other, each through ``ctx.checkpoint``: exactly the loops the stages ran before executors
  existed. Ray is never imported.
* :class:`~mechsel.experiment.ray_executor.RayExecutor` (``engine: ray``) sends the units that are
  not stored yet to a pool of Ray actors, each holding its own model, and stores each result here,
  through the same atomic checkpoint code, as it arrives.

**What does not depend on the engine.** The units are the same (same prompts, same batches, same
seeds) and each result is stored and read back in the same form, so selections and accuracies are
identical and every stage finished under one engine is a cache hit under the other (``execution``
is left out of the run's identity). **What may differ, and why.** A worker runs torch with
``threads_per_worker`` threads, the local engine with ``model.n_threads`` (by default one per
core). The thread count may change how a kernel splits float32 reductions, hence their rounding:
activation statistics and qualities are then equal to float32 rounding (relative ~1e-7) rather
than bit for bit, which in principle can flip a near-tie (two label log-probabilities within
1e-6). With the same thread count on the same kind of machine the numbers are identical; on this
project's 2-core CPU even the quick demo with 2 threads locally and Ray workers of 1 thread gave
byte-identical tables (``benchmarks/results/scale.txt``). Workers on other hardware (another CPU,
a GPU) compute with that hardware's kernels, again within float32 rounding (each checks the matmul
precision on its own device, see :mod:`mechsel.models.precision`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm.auto import tqdm

from mechsel.experiment.execution_settings import Engine, ExecutionSettings, import_ray

if TYPE_CHECKING:
    from mechsel.experiment.config import ExperimentConfig
    from mechsel.experiment.engine import StageContext

__all__ = ["Engine", "ExecutionSettings", "Executor", "LocalExecutor", "UnitFn", "MISSING", "make_executor", "import_ray"]

logger = logging.getLogger(__name__)

S = TypeVar("S")
U = TypeVar("U")
T = TypeVar("T")
UnitFn = Callable[[Any, S, U], T]
"""``fn(resources, shared, unit)``: computes one unit from the run's
:class:`~mechsel.experiment.resources.Resources`, the inputs shared by all units of the call, and
the unit's descriptor. A module-level function (workers import it by name)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What :meth:`~mechsel.experiment.engine.StageContext.stored` returns for a step not (validly) stored."""


class Executor:
    """Computes the units of a :meth:`~mechsel.experiment.engine.StageContext.map_units` call.

    Use as a context manager (or call :meth:`close`): an executor may hold workers.
    """

    remote: bool = False
    """Whether units run in other processes (then nothing they do to this process's objects persists)."""

    def map(self, ctx: StageContext[Any], fn: UnitFn[Any, Any, T], units: Sequence[tuple[str, Any]], shared: Any, *, desc: str) -> list[T]:
        """``fn(ctx.resources, shared, unit)`` of every ``(name, unit)``, stored as checkpoint
        ``name`` of ``ctx``; the stored values in the order of ``units``."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the workers (nothing to do for the local executor)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every unit in this process, in order, each through ``ctx.checkpoint`` (the default)."""

    def map(self, ctx: StageContext[Any], fn: UnitFn[Any, Any, T], units: Sequence[tuple[str, Any]], shared: Any, *, desc: str) -> list[T]:
        bar = tqdm(units, desc=desc, unit="unit", disable=not ctx.progress)
        return [ctx.checkpoint(name, functools.partial(fn, ctx.resources, shared, unit)) for name, unit in bar]


def make_executor(config: ExperimentConfig, *, model: Any = None) -> Executor:
    """The executor of ``config.execution``.

    Args:
        config: the run (Ray workers build their resources from it).
        model: the already loaded model the run was given, if any: Ray workers receive it through
            the object store instead of loading ``config.model`` themselves.
    """
    if config.execution.engine == "local":
        return LocalExecutor()
    from mechsel.experiment.ray_executor import RayExecutor

    return RayExecutor(config, model=model)
