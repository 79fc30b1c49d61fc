"""Streaming collection of per-example activation statistics (:func:`collect`).

``mechsel.collect`` names both this package and the function (``mechsel.collect(model, texts)``);
once the package is imported Python binds the name to the package, so the package is made
callable: calling it calls :func:`mechsel.collect.run.collect`.
"""

import sys
import types
from typing import Any

from mechsel.collect.config import POSITIONS, CollectConfig, PositionsName
from mechsel.collect.run import collect, run_collect
from mechsel.collect.shards import load_activations, read_shard_index

__all__ = ["collect", "run_collect", "CollectConfig", "PositionsName", "POSITIONS", "load_activations", "read_shard_index"]


class _CallablePackage(types.ModuleType):
    """The package type of ``mechsel.collect``: calling it is calling :func:`collect`."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return collect(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
