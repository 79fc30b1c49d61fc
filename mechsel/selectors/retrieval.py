"""Per-query retrieval from the annotated set: KATE-style kNN (``knn``) and ``bm25``.

Both walk the annotated examples from most to least relevant, skip exact duplicates of the
query text, skip examples longer than ``max_example_tokens``, stop at ``k`` demonstrations or
when the next one would push the prompt past ``max_tokens`` (the vote-k reference code stops
there rather than looking for a shorter one), and return the chosen demonstrations with the
most relevant one **last**, next to the query (Liu et al. 2022, "What Makes Good In-Context
Examples for GPT-3?").

Token counts come from ``length_fn(text) -> int``, a constructor argument (e.g. a tokenizer's
``len(tok.encode(text))``, or a function that also counts the demonstration's template and label).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from mechsel.errors import ConfigError, DataError
from mechsel.selectors.base import Pool, Queries, SelectionResult, Selector, SelectorConfig, register_selector
from mechsel.selectors.graphs import unit_rows

__all__ = ["KnnConfig", "KnnRetriever", "BM25Config", "BM25Retriever", "bm25_tokenize"]

LengthFn = Callable[[str], int]


@dataclass(frozen=True)
class _BudgetConfig(SelectorConfig):
    skip_duplicates: bool = True
    """Never return an annotated example whose text equals the query text."""
    max_tokens: int | None = None
    """Prompt budget: query tokens plus demonstration tokens (``None``: no budget). Needs ``length_fn``."""
    max_example_tokens: int | None = None
    """Skip any demonstration longer than this (``None``: no limit). Needs ``length_fn``."""

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_example_tokens"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v <= 0):
                raise ConfigError(f"{name} must be a positive integer or None, got {v!r}.")


def _fill(
    ranked: np.ndarray,
    relevance: np.ndarray,
    pool: Pool,
    query_text: str | None,
    k: int,
    config: _BudgetConfig,
    length_fn: LengthFn | None,
) -> SelectionResult:
    """Walk ``ranked`` (pool positions, most relevant first) applying the rules above."""
    picked: list[int] = []
    scores: list[float] = []
    used = length_fn(query_text) if (config.max_tokens is not None and length_fn is not None and query_text is not None) else 0
    skipped_dup = 0
    for pos, rel in zip(ranked.tolist(), relevance.tolist()):
        if len(picked) == k:
            break
        if config.skip_duplicates and query_text is not None and pool.texts[pos] == query_text:
            skipped_dup += 1
            continue
        if length_fn is not None and (config.max_tokens is not None or config.max_example_tokens is not None):
            n_tok = int(length_fn(pool.texts[int(pos)]))
            if config.max_example_tokens is not None and n_tok > config.max_example_tokens:
                continue
            if config.max_tokens is not None:
                if used + n_tok > config.max_tokens:
                    break
                used += n_tok
        picked.append(pos)
        scores.append(rel)
    return picked[::-1], scores[::-1], {"skipped_duplicates": skipped_dup}


BC = TypeVar("BC", bound=_BudgetConfig)
"""The config of a retriever with the shared budget rules (``_BudgetRetriever[KnnConfig]``)."""


class _BudgetRetriever(Selector[BC]):
    modes = frozenset({"retrieve"})
    family = "similarity"

    def __init__(self, config: BC | None = None, *, length_fn: LengthFn | None = None, **params: object) -> None:
        super().__init__(config, **params)
        cfg = self.config
        if (cfg.max_tokens is not None or cfg.max_example_tokens is not None) and length_fn is None:
            raise ConfigError(
                f"{self.name!r}: a token budget (max_tokens / max_example_tokens) needs length_fn=<callable text -> "
                f"token count>, e.g. lambda t: len(tokenizer.encode(t))."
            )
        self.length_fn = length_fn

    def _query_texts(self, queries: Queries) -> list[str | None]:
        if queries.texts is None and self.config.max_tokens is not None:
            raise DataError(
                f"{self.name!r} with max_tokens needs the query texts to count their tokens; pass Queries(texts=..., embeddings=...)."
            )
        return list(queries.texts) if queries.texts is not None else [None] * len(queries)


@dataclass(frozen=True)
class KnnConfig(_BudgetConfig):
    """KATE kNN: cosine similarity of sentence embeddings (Liu et al. 2022)."""

    center: bool = False
    """Subtract the *pool* mean from pool and query embeddings before cosine (vote-k's code does; KATE does not)."""
    block: int = 1024
    """Queries scored at once (memory ``block × n_annotated`` floats)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block <= 0:
            raise ConfigError(f"block must be positive, got {self.block}.")


@register_selector("knn")
class KnnRetriever(_BudgetRetriever[KnnConfig]):
    """KATE-style nearest neighbours of each query among the annotated examples.

    Score: cosine similarity to the query. Needs ``pool.embeddings`` and query embeddings from
    the same embedder.
    """

    Config = KnnConfig
    needs = ("embeddings",)

    def _retrieve(self, pool: Pool, annotated: np.ndarray, queries: Queries, k: int, seed: int) -> list[SelectionResult]:
        if queries.embeddings is None:
            raise DataError("knn needs query embeddings: embed the query texts with the embedder used for pool.embeddings.")
        pool_emb = pool.require("embeddings", self.name)
        if queries.embeddings.shape[1] != pool_emb.shape[1]:
            raise DataError(
                f"Query embeddings have dimension {queries.embeddings.shape[1]} but pool embeddings {pool_emb.shape[1]}; "
                f"embed both with the same model."
            )
        cfg = self.config
        mean = pool_emb.mean(axis=0, keepdims=True) if cfg.center else 0.0
        ann = unit_rows(pool_emb[annotated] - mean, center=False)
        qry = unit_rows(queries.embeddings - mean, center=False)
        texts = self._query_texts(queries)
        out = []
        for start in range(0, len(queries), cfg.block):
            sims = qry[start : start + cfg.block] @ ann.T
            for row, s in enumerate(sims):
                order = np.lexsort((annotated, -s))
                out.append(_fill(annotated[order], s[order], pool, texts[start + row], k, cfg, self.length_fn))
        return out


_WORD = re.compile(r"\w+")


def bm25_tokenize(text: str, *, lowercase: bool = True) -> list[str]:
    """BM25 tokens: runs of word characters (``\\w+``), lower-cased by default."""
    return _WORD.findall(text.lower() if lowercase else text)


@dataclass(frozen=True)
class BM25Config(_BudgetConfig):
    """Okapi BM25 over the annotated texts (``rank_bm25.BM25Okapi``; defaults are its defaults)."""

    k1: float = 1.5
    """Term-frequency saturation."""
    b: float = 0.75
    """Length normalisation."""
    epsilon: float = 0.25
    """Floor for negative idf values, as a fraction of the mean idf."""
    lowercase: bool = True
    """Lower-case texts before tokenising (see :func:`bm25_tokenize`)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.k1 < 0 or not 0 <= self.b <= 1:
            raise ConfigError(f"BM25 needs k1 >= 0 and 0 <= b <= 1, got k1={self.k1}, b={self.b}.")


@register_selector("bm25")
class BM25Retriever(_BudgetRetriever[BM25Config]):
    """Lexical retrieval: the annotated examples with the highest BM25 score for each query.

    Score: the BM25 score. Needs query texts.
    """

    Config = BM25Config

    def _retrieve(self, pool: Pool, annotated: np.ndarray, queries: Queries, k: int, seed: int) -> list[SelectionResult]:
        from rank_bm25 import BM25Okapi

        if queries.texts is None:
            raise DataError("bm25 needs query texts; pass them as a list of strings or Queries(texts=...).")
        cfg = self.config
        corpus = [bm25_tokenize(pool.texts[int(i)], lowercase=cfg.lowercase) or [""] for i in annotated]
        index = BM25Okapi(corpus, k1=cfg.k1, b=cfg.b, epsilon=cfg.epsilon)
        out = []
        for text in queries.texts:
            s = np.asarray(index.get_scores(bm25_tokenize(text, lowercase=cfg.lowercase)), dtype=np.float64)
            order = np.lexsort((annotated, -s))
            out.append(_fill(annotated[order], s[order], pool, text, k, cfg, self.length_fn))
        return out
