"""The ``execution:`` section of an experiment config (:class:`ExecutionSettings`): where the
run's independent units are computed.

It lives apart from :mod:`mechsel.experiment.execution` (the executors, which reach the Ray
executor and the run's resources) so that :mod:`mechsel.experiment.config` can hold it without
importing those; :mod:`mechsel.experiment.execution` re-exports every name defined here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from mechsel.errors import ConfigError
from mechsel.experiment.checks import choice, positive

__all__ = ["Engine", "ExecutionSettings", "import_ray"]

Engine = Literal["local", "ray"]
"""Where units are computed (:attr:`ExecutionSettings.engine`)."""


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`ConfigError` naming the extra that installs it.

    Ray is an optional dependency (``pip install 'mechsel[ray]'``); ``engine: ray`` checks for it
    when the config is read, before any model is loaded."""
    try:
        import ray
    except ImportError as err:
        raise ConfigError(
            f"execution.engine: ray needs Ray, which is not importable ({err}); install it with pip install 'mechsel[ray]' "
            f"(or, in a checkout, pip install -e '.[ray]'), or set execution.engine: local."
        ) from None
    return ray


@dataclass(frozen=True)
class ExecutionSettings:
    """Where the run's independent units (collection chunks, quality blocks, evaluations) are
    computed. It never changes what is computed, so it is left out of the run's identity: a stage
    finished under one engine is a cache hit under the other, and a run folder accepts either."""

    engine: Engine = "local"
    """``local``: in this process, one unit after another (Ray is not imported). ``ray``: on a pool
    of Ray actors, each loading the model once and keeping it for many units (see the README's
    "Scaling out")."""
    address: str = ""
    """The Ray cluster (``engine: ray``): empty starts a Ray instance on this machine for the run
    and stops it at the end; ``auto`` joins the cluster this machine is part of (``ray start``);
    ``HOST:6379`` joins the cluster whose head node is there; ``ray://HOST:10001`` joins a remote
    one through Ray Client."""
    workers: int | None = None
    """Ray actors, each with its own model: ``null`` as many as the cluster's CPUs (and GPUs) hold
    at ``threads_per_worker`` (and ``gpus_per_worker``) each. More than the cluster holds are
    reduced to what it holds, with a warning."""
    threads_per_worker: int = 1
    """CPU threads each actor's torch uses (``torch.set_num_threads``), and the CPUs it reserves.
    Workers × threads should not exceed the cores: on a 16-core node, e.g. 4 workers × 4 threads."""
    gpus_per_worker: float = 0.0
    """GPUs each actor reserves: ``0`` CPU workers, ``1`` a GPU each, ``0.5`` two actors per GPU
    (the model must fit twice). ``model.device: null`` then runs on the actor's GPU."""
    retries: int = 3
    """Times a worker that dies (killed, out of memory, node lost) is restarted and its unit
    retried. A unit that raises is never retried: the run stops with its error."""

    def __post_init__(self) -> None:
        choice("execution.engine", self.engine, get_args(Engine))
        if self.engine == "ray":
            import_ray()
        address = self.address
        if not isinstance(address, str) or not (
            address in ("", "auto") or address.startswith("ray://") or re.fullmatch(r"[\w.\-]+:\d+", address)
        ):
            raise ConfigError(
                f"execution.address must be empty (start Ray on this machine), 'auto' (join this machine's cluster), "
                f"'HOST:PORT' (the head node's address, as `ray start --head` prints it) or 'ray://HOST:10001' (Ray Client), "
                f"got {address!r}."
            )
        positive("execution.workers", self.workers, allow_none=True)
        positive("execution.threads_per_worker", self.threads_per_worker)
        gpus = self.gpus_per_worker
        if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not gpus >= 0:
            raise ConfigError(f"execution.gpus_per_worker must be a number ≥ 0 (e.g. 0, 1 or 0.5), got {gpus!r}.")
        object.__setattr__(self, "gpus_per_worker", float(gpus))
        positive("execution.retries", self.retries, minimum=0)
