"""``random``: uniform sampling without replacement, for annotation and for retrieval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mechsel.selectors.base import Pool, Queries, SelectionResult, Selector, SelectorConfig, register_selector

__all__ = ["RandomConfig", "RandomSelector"]


@dataclass(frozen=True)
class RandomConfig(SelectorConfig):
    """Config of ``random``; which examples are drawn is decided by the seed alone."""

    skip_duplicates: bool = True
    """Retrieval only: never return an annotated example whose text equals the query text."""


@register_selector("random")
class RandomSelector(Selector[RandomConfig]):
    """Uniformly random examples (numpy ``default_rng(seed)``; per query ``default_rng([seed, q])``).

    Scores are all 0. In retrieval the order of the sampled demonstrations is itself random.
    """

    Config = RandomConfig
    modes = frozenset({"annotate", "retrieve"})
    family = "baseline"

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        idx = rng.choice(len(pool), size=k, replace=False)
        return idx, np.zeros(k), {}

    def _retrieve(self, pool: Pool, annotated: np.ndarray, queries: Queries, k: int, seed: int) -> list[SelectionResult]:
        out = []
        for q in range(len(queries)):
            cand = annotated
            if self.config.skip_duplicates and queries.texts is not None:
                cand = np.array([i for i in annotated if pool.texts[i] != queries.texts[q]], dtype=np.int64)
            rng = np.random.default_rng([seed, q])
            m = min(k, cand.size)
            picked = rng.choice(cand, size=m, replace=False) if m else np.empty(0, dtype=np.int64)
            out.append((picked, np.zeros(m), {}))
        return out
