"""Streaming collection of per-example activation statistics.

:func:`collect` (also ``mechsel.collect``) runs a model over texts or segmented prompts and
reduces each example's block-hook activations inside the hooks; :class:`CollectConfig` holds
every choice that determines its numbers (:class:`SummaryConfig`: the part an experiment's
``collect`` section shares).
"""

from mechsel.collection.config import POSITIONS, CollectConfig, PositionsName, SummaryConfig
from mechsel.collection.run import collect, run_collect
from mechsel.collection.shards import load_activations, read_shard_index

__all__ = [
    "collect",
    "run_collect",
    "CollectConfig",
    "SummaryConfig",
    "PositionsName",
    "POSITIONS",
    "load_activations",
    "read_shard_index",
]
