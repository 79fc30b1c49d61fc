"""Vote-k and fast vote-k (Su et al., ICLR 2023, "Selective Annotation Makes Language Models
Better Few-Shot Learners"), with the reference code's defaults.

Graph: every example ``v`` links to its ``n_neighbors`` (150) most cosine-similar other examples
(embeddings mean-centred first); ``v`` *votes* for each of its neighbours. With ``S`` the
examples picked so far and ``c(v)`` the number of picked examples among ``v``'s neighbours,

    score(u) = Σ_{v votes for u, v ∉ S} ρ^(−c(v)),      ρ = 10,

so a voter already "represented" by picked neighbours counts for little. **Fast vote-k** picks
argmax score greedily ``k`` times. **Vote-k** picks ``k // stage1_ratio`` examples that way
(stage 1), then asks the model for its confidence on every example when prompted with
demonstrations retrieved from the picked set, sorts the rest from least to most confident,
cuts the least-confident ``1 − excluded_confident_fraction`` of the pool into as many equal
buckets as picks remain, and adds the highest-scoring example of each bucket (stage 2).

Ties are broken towards the lowest pool position (the reference code breaks them by dict order).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from mechsel.errors import ConfigError, DataError
from mechsel.selectors.base import Pool, SelectionResult, Selector, SelectorConfig, register_selector
from mechsel.selectors.graphs import knn, unit_rows

__all__ = ["FastVoteKConfig", "FastVoteKSelector", "VoteKConfig", "VoteKSelector", "VoteGraph", "ConfidenceFn"]

logger = logging.getLogger(__name__)

ConfidenceFn = Callable[[list[int]], np.ndarray]
"""``confidence_fn(selected_indices) -> [n]`` model confidence for every pool example when
prompted with demonstrations retrieved from ``selected_indices`` (higher = more confident)."""


class VoteGraph:
    """The vote-k graph and the greedy score recursion (exposed for tests and analyses).

    Args:
        neighbours: ``[n, K]`` array, row ``v`` = the examples ``v`` votes for.
        rho: the discount base ρ.
    """

    def __init__(self, neighbours: np.ndarray, rho: float) -> None:
        n, kk = neighbours.shape
        voters = np.repeat(np.arange(n, dtype=np.int32), kk)
        # votes_t[u, v] = 1 when v votes for u (u is one of v's neighbours)
        self.votes_t = sp.csr_matrix((np.ones(n * kk), (neighbours.reshape(-1), voters)), shape=(n, n))
        self.rho = float(rho)
        self.n = n
        self.selected = np.zeros(n, dtype=bool)
        self.covered = np.zeros(n)  # c(v)

    def scores(self) -> np.ndarray:
        """score(u) for every example (``-inf`` for picked ones)."""
        w = np.power(self.rho, -self.covered)
        w[self.selected] = 0.0
        s = self.votes_t @ w
        s[self.selected] = -np.inf
        return s

    def add(self, u: int) -> None:
        """Mark ``u`` picked: it stops voting and every voter of ``u`` has one more picked neighbour."""
        self.selected[u] = True
        self.covered += self.votes_t[u].toarray().ravel()

    def greedy(self, m: int, candidates: np.ndarray | None = None) -> tuple[list[int], list[float]]:
        """Pick ``m`` examples by argmax score (restricted to ``candidates`` if given)."""
        picked, scores = [], []
        for _ in range(m):
            s = self.scores()
            if candidates is not None:
                masked = np.full(self.n, -np.inf)
                masked[candidates] = s[candidates]
                s = masked
            j = int(np.argmax(s))
            picked.append(j)
            scores.append(float(s[j]))
            self.add(j)
        return picked, scores


@dataclass(frozen=True)
class FastVoteKConfig(SelectorConfig):
    """Fast vote-k; defaults from the reference code (``fast_votek(..., k=150)``)."""

    n_neighbors: int = 150
    """Neighbours each example votes for (clipped to n−1 on small pools, recorded in provenance)."""
    rho: float = 10.0
    """Discount base ρ in ρ^(−c(v))."""
    center: bool = True
    """Mean-centre embeddings before cosine (the reference code does)."""

    def __post_init__(self) -> None:
        if self.n_neighbors < 1:
            raise ConfigError(f"n_neighbors must be >= 1, got {self.n_neighbors}.")
        if not self.rho > 1:
            raise ConfigError(f"rho must be > 1 (the reference uses 10), got {self.rho}.")


def _graph(pool: Pool, cfg: FastVoteKConfig) -> tuple[VoteGraph, int]:
    n = len(pool)
    if n < 2:
        raise DataError("vote-k needs at least 2 pool examples to build its neighbour graph.")
    kk = min(cfg.n_neighbors, n - 1)
    if kk < cfg.n_neighbors:
        logger.info("vote-k: pool of %d examples, using %d neighbours instead of %d", n, kk, cfg.n_neighbors)
    nbrs, _ = knn(unit_rows(pool.embeddings, center=cfg.center), kk)  # type: ignore[arg-type]
    return VoteGraph(nbrs, cfg.rho), kk


@register_selector("fast_votek")
class FastVoteKSelector(Selector):
    """Fast vote-k: ``k`` greedy picks by vote-k score. Score: the vote-k score at pick time."""

    Config = FastVoteKConfig
    needs = ("embeddings",)

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        graph, kk = _graph(pool, self.config)  # type: ignore[arg-type]
        picked, scores = graph.greedy(k)
        return picked, scores, {"n_neighbors_used": kk}


@dataclass(frozen=True)
class VoteKConfig(FastVoteKConfig):
    """Two-stage vote-k; ``stage1_ratio=10`` is the reference code's hard-wired k/10."""

    stage1_ratio: int = 10
    """Stage 1 picks ``max(1, k // stage1_ratio)`` examples (ignored when ``stage1_size`` is set)."""
    stage1_size: int | None = None
    """Explicit stage-1 size (1 <= stage1_size <= k)."""
    excluded_confident_fraction: float = 0.1
    """Fraction of the pool (the most confident) never eligible in stage 2 (reference: 0.1)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage1_ratio < 1:
            raise ConfigError(f"stage1_ratio must be >= 1, got {self.stage1_ratio}.")
        if self.stage1_size is not None and self.stage1_size < 1:
            raise ConfigError(f"stage1_size must be >= 1 or None, got {self.stage1_size}.")
        if not 0 <= self.excluded_confident_fraction < 1:
            raise ConfigError(f"excluded_confident_fraction must be in [0, 1), got {self.excluded_confident_fraction}.")


def check_confidence(conf: object, n: int, selected: Sequence[int], who: str) -> np.ndarray:
    """Validate a ``confidence_fn`` result: ``[n]`` floats, finite outside ``selected``."""
    arr = np.asarray(conf, dtype=np.float64)
    if arr.shape != (n,):
        raise DataError(f"{who}: confidence_fn must return one confidence per pool example (shape ({n},)), got {arr.shape}.")
    mask = np.ones(n, dtype=bool)
    mask[list(selected)] = False
    if not np.isfinite(arr[mask]).all():
        raise DataError(f"{who}: confidence_fn returned NaN/inf for {int((~np.isfinite(arr[mask])).sum())} unselected examples.")
    return arr


@register_selector("votek")
class VoteKSelector(Selector):
    """Two-stage vote-k. Needs ``confidence_fn`` (see :data:`ConfidenceFn`).

    Score: the vote-k score at pick time (stage 2: within the pick's bucket; ``nan`` for the
    random fill used only when buckets run out, as in the reference code).
    """

    Config = VoteKConfig
    needs = ("embeddings",)

    def __init__(self, config: SelectorConfig | None = None, *, confidence_fn: ConfidenceFn | None = None, **params: object) -> None:
        super().__init__(config, **params)
        self.confidence_fn = confidence_fn

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        if self.confidence_fn is None:
            raise ConfigError(
                "votek needs confidence_fn=<callable(selected_indices) -> [n] confidences>, e.g. from the ICL "
                "engine; or use 'fast_votek', which needs no model."
            )
        cfg: VoteKConfig = self.config  # type: ignore[assignment]
        n = len(pool)
        m1 = cfg.stage1_size if cfg.stage1_size is not None else max(1, k // cfg.stage1_ratio)
        if m1 > k:
            raise ConfigError(f"stage1_size={m1} exceeds k={k}; choose stage1_size <= k.")
        graph, kk = _graph(pool, cfg)
        picked, scores = graph.greedy(m1)
        extra: dict[str, object] = {"n_neighbors_used": kk, "stage1": list(picked)}
        remaining = k - m1
        if remaining == 0:
            return picked, scores, extra
        conf = check_confidence(self.confidence_fn(list(picked)), n, picked, "votek")
        rest = np.setdiff1d(np.arange(n), picked)
        order = rest[np.lexsort((rest, conf[rest]))]  # least confident first
        width = max(1, int(n * (1 - cfg.excluded_confident_fraction) / remaining))
        extra["bucket_width"] = width
        for t in range(remaining):
            bucket = order[t * width : (t + 1) * width]
            if bucket.size == 0:
                break
            p, s = graph.greedy(1, candidates=bucket)
            picked += p
            scores += s
        n_fill = k - len(picked)
        if n_fill:
            left = np.setdiff1d(np.arange(n), picked)
            fill = rng.choice(left, size=n_fill, replace=False)
            picked += [int(i) for i in fill]
            scores += [float("nan")] * n_fill
            logger.info("votek: buckets ran out; %d examples filled at random (as the reference code does)", n_fill)
        extra["random_fill"] = n_fill
        return picked, scores, extra
