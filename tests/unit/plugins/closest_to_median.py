"""A plug-in that reads one (layer, statistic, mask) cell of the moments table, like ``activation``.

It picks the k candidates whose value of one statistic at one layer lies closest to the pool's
median. Its config names the cell with fields of its own choosing (``at_layer``, ``stat``); the
class says which fields those are (``layer_field``, ``statistic_field``) and which table it reads
(``reads``), and that is all the pipeline needs to give it the checks the built-in activation
selector gets: a collected mask, collected statistics, collected layers, layer indices counted
from the end normalised against the model's depth, and its cell recorded beside its results.
``tests/unit/test_selector_cells.py`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mechsel.errors import ConfigError
from mechsel.selectors import Pool, Selector, SelectorConfig, register_selector


@dataclass(frozen=True)
class ClosestToMedianConfig(SelectorConfig):
    """Settings of ``closest_to_median``."""

    stat: str = "mean"
    """The statistic whose median it aims at."""
    at_layer: int = 0
    """The layer of that statistic."""

    def __post_init__(self) -> None:
        if isinstance(self.at_layer, bool) or not isinstance(self.at_layer, int):
            raise ConfigError(f"closest_to_median: at_layer must be one layer index, got {self.at_layer!r}.")


@register_selector("closest_to_median")
class ClosestToMedianSelector(Selector[ClosestToMedianConfig]):
    """The k candidates nearest the pool median of one cell. Score: minus the distance."""

    Config = ClosestToMedianConfig
    family = "activation"
    needs = ("statistics",)
    reads = "moments"
    layer_field = "at_layer"
    statistic_field = "stat"

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[Any, Any, dict[str, Any]]:
        cfg = self.config
        table = pool.require("statistics", self.name)
        x = table[(cfg.at_layer, cfg.stat)].to_numpy(dtype=np.float64)
        distance = np.abs(x - np.median(x))
        picked = np.lexsort((np.arange(len(x)), distance))[:k]
        return picked, -distance[picked], {"cell": [cfg.at_layer, cfg.stat]}
