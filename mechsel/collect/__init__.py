"""Streaming collection of per-example activation statistics (:func:`collect`)."""

from mechsel.collect.config import POSITIONS, CollectConfig, PositionsName
from mechsel.collect.run import collect, run_collect
from mechsel.collect.shards import load_activations, read_shard_index

__all__ = ["collect", "run_collect", "CollectConfig", "PositionsName", "POSITIONS", "load_activations", "read_shard_index"]
