"""A toy selector added by this one file (``plugins: [path/to/shortest_first.py]`` in a config).

It picks the k candidates the model reads in the fewest tokens, breaking ties by the model's
0-shot confidence (least confident first). Everything the pipeline needs to know is declared on
the class: its family, what it needs (the model itself and the 0-shot label distribution), and
its protocol (``annotate``: a fixed set). ``tests/unit/test_selector_plugin.py`` runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mechsel.errors import ConfigError
from mechsel.selectors import Pool, Selector, SelectorConfig, register_selector


@dataclass(frozen=True)
class ShortestFirstConfig(SelectorConfig):
    """Settings of ``shortest_first``."""

    longest: bool = False
    """Pick the longest candidates instead."""


@register_selector("shortest_first")
class ShortestFirstSelector(Selector):
    """The k candidates with the fewest model tokens. Score: minus the token count."""

    Config = ShortestFirstConfig
    family = "coverage"
    needs = ("model", "label_probs")
    modes = frozenset({"annotate"})

    def __init__(self, config: SelectorConfig | None = None, *, model: Any = None, **params: Any) -> None:
        super().__init__(config, **params)
        self.model = model

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> tuple[Any, Any, dict[str, Any]]:
        if self.model is None:
            raise ConfigError("shortest_first needs model=<HookedTransformer>; the experiment pipeline passes it.")
        cfg: ShortestFirstConfig = self.config  # type: ignore[assignment]
        n = np.array([len(self.model.tokenizer.encode(t, add_special_tokens=False)) for t in pool.texts], dtype=np.float64)
        confidence = pool.require("label_probs", self.name).max(axis=1)
        order = np.lexsort((confidence, -n if cfg.longest else n))
        picked = order[:k]
        return picked, -n[picked], {"n_tokens": n[picked].tolist()}
