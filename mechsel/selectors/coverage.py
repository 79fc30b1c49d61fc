"""Embedding-coverage selectors: ``diversity``, ``kmeans``, ``facility_location``, ``sub_sa``.

All work in cosine geometry on (by default mean-centred) sentence embeddings, as the vote-k
reference code prepares them, and never build an ``n × n`` matrix: each uses the fact that a
sum of cosines to a set is one dot product with the sum of the set's unit vectors, or (facility
location) evaluates one column at a time under lazy greedy.

Ties are broken towards the lowest pool position.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from typing import cast

import numpy as np

from mechsel.errors import ConfigError
from mechsel.selectors.base import Pool, SelectionResult, Selector, SelectorConfig, register_selector
from mechsel.selectors.graphs import unit_rows

__all__ = [
    "DiversityConfig",
    "DiversitySelector",
    "KMeansConfig",
    "KMeansSelector",
    "FacilityLocationConfig",
    "FacilityLocationSelector",
    "SubSAConfig",
    "SubSASelector",
]


@dataclass(frozen=True)
class CenteredConfig(SelectorConfig):
    center: bool = True
    """Subtract the pool mean from the embeddings before cosine (vote-k reference code: yes)."""


@register_selector("diversity")
class DiversitySelector(Selector[CenteredConfig]):
    """Greedy farthest-first (vote-k paper's "diversity" baseline).

    The first pick is uniformly random (seeded); each next pick minimises the summed cosine
    similarity to the examples picked so far. Score: that summed similarity (0 for the first).
    """

    Config = CenteredConfig
    needs = ("embeddings",)

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        u = unit_rows(pool.require("embeddings", self.name), center=self.config.center)
        first = int(rng.integers(len(pool)))
        picked, scores = [first], [0.0]
        total = u[first].astype(np.float64)
        taken = np.zeros(len(pool), dtype=bool)
        taken[first] = True
        for _ in range(k - 1):
            s = (u @ total.astype(np.float32)).astype(np.float64)
            s[taken] = np.inf
            j = int(np.argmin(s))
            picked.append(j)
            scores.append(float(s[j]))
            taken[j] = True
            total += u[j]
        return picked, scores, {}


DiversityConfig = CenteredConfig


@dataclass(frozen=True)
class KMeansConfig(CenteredConfig):
    """k-means with k clusters on unit-norm embeddings; one example per cluster."""

    n_init: int = 1
    """k-means++ restarts (scikit-learn's ``n_init="auto"`` means 1 for k-means++)."""
    max_iter: int = 300
    """Lloyd iterations per run (scikit-learn default)."""

    def __post_init__(self) -> None:
        if self.n_init < 1 or self.max_iter < 1:
            raise ConfigError(f"n_init and max_iter must be >= 1, got {self.n_init}, {self.max_iter}.")


@register_selector("kmeans")
class KMeansSelector(Selector[KMeansConfig]):
    """k-means (scikit-learn, seeded) into k clusters; from each cluster, the member nearest to
    its centroid. Score: minus that Euclidean distance. Picks come in cluster order."""

    Config = KMeansConfig
    needs = ("embeddings",)

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        from sklearn.cluster import KMeans

        cfg = self.config
        u = unit_rows(pool.require("embeddings", self.name), center=cfg.center)
        km = KMeans(
            n_clusters=k,
            n_init=cfg.n_init,  # pyright: ignore[reportArgumentType]  (scikit-learn's stub says "auto" only)
            max_iter=cfg.max_iter,
            random_state=int(rng.integers(2**31 - 1)),
        )
        labels = km.fit_predict(u)
        dist = np.linalg.norm(u - km.cluster_centers_[labels], axis=1)
        picked, scores = [], []
        taken = np.zeros(len(pool), dtype=bool)
        for c in range(k):
            members = np.flatnonzero(labels == c)
            if members.size == 0:  # scikit-learn relocates empty clusters; guard anyway
                d_all = np.linalg.norm(u - km.cluster_centers_[c], axis=1)
                d_all[taken] = np.inf
                j = int(np.argmin(d_all))
                d = float(d_all[j])
            else:
                j = int(members[np.argmin(dist[members])])
                d = float(dist[j])
            picked.append(j)
            scores.append(-d)
            taken[j] = True
        return picked, scores, {"inertia": float(cast(float, km.inertia_))}


@dataclass(frozen=True)
class FacilityLocationConfig(CenteredConfig):
    """Maximum facility location f(S) = Σ_i max(-1, max_{j∈S} cos(i, j)) (vote-k's "MFL")."""

    block: int = 4096
    """Rows processed at once when re-evaluating gains (memory ``block × 1024`` floats at most)."""

    def __post_init__(self) -> None:
        if self.block < 1:
            raise ConfigError(f"block must be >= 1, got {self.block}.")


@register_selector("facility_location")
class FacilityLocationSelector(Selector[FacilityLocationConfig]):
    """Greedy maximum facility location, computed exactly with lazy greedy (Minoux 1978).

    The objective is submodular, so a stale gain is an upper bound and lazy greedy returns
    the same picks as plain greedy (same lowest-index tie-break, up to float rounding) while
    re-evaluating only candidates whose stale gain could still win, in batches of columns.
    Score: the marginal gain of each pick.
    """

    Config = FacilityLocationConfig
    needs = ("embeddings",)

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        u = unit_rows(pool.require("embeddings", self.name), center=self.config.center)
        n, blk = len(pool), self.config.block
        best = np.full(n, -1.0)  # max similarity of each point to the selection so far
        # With best = -1 everywhere the gain of j is Σ_i (cos(i, j) + 1): one dot product.
        initial = n + u.astype(np.float64) @ u.sum(axis=0, dtype=np.float64)
        heap = [(-(g + 1e-6 * n), j, -1) for j, g in enumerate(initial.tolist())]  # slack absorbs float32 rounding
        heapq.heapify(heap)
        picked, scores, evaluations = [], [], 0
        for step in range(k):
            batch = 8  # stale candidates re-evaluated together; doubles while the round needs more
            while heap[0][2] != step:
                stale = []
                while heap and heap[0][2] != step and len(stale) < batch:
                    stale.append(heapq.heappop(heap)[1])
                cols = np.asarray(stale)
                gains = np.zeros(cols.size)
                for rows in (slice(s, s + blk) for s in range(0, n, blk)):
                    gains += np.maximum(u[rows] @ u[cols].T - best[rows, None], 0.0).sum(axis=0)
                evaluations += cols.size
                for j, g in zip(stale, gains.tolist()):
                    heapq.heappush(heap, (-g, j, step))
                batch = min(2 * batch, 1024)
            neg, j, _ = heapq.heappop(heap)
            picked.append(j)
            scores.append(-neg)
            best = np.maximum(best, u @ u[j])
        return picked, scores, {"gain_evaluations": evaluations}


@dataclass(frozen=True)
class SubSAConfig(CenteredConfig):
    """Sub-SA graph cut (Qian et al. 2024): gain(j|S) = λ Σ_i s(i,j) − 2 Σ_{s∈S} s(s,j)."""

    lam: float = 1.0
    """λ, the reward (representativeness) weight; the penalty weight is 2 (reference code: λ = 1)."""

    def __post_init__(self) -> None:
        if not np.isfinite(self.lam):
            raise ConfigError(f"lam must be finite, got {self.lam}.")


@register_selector("sub_sa")
class SubSASelector(Selector[SubSAConfig]):
    """Submodular selective annotation with the reward-and-penalty graph-cut gain, greedy.

    s is cosine similarity, so both sums are dot products with summed unit vectors (O(k·n·d)).
    Score: the gain of each pick. Picks come in greedy order (the reference code returns them
    sorted by position).
    """

    Config = SubSAConfig
    needs = ("embeddings",)

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        cfg = self.config
        u = unit_rows(pool.require("embeddings", self.name), center=cfg.center).astype(np.float64)
        reward = cfg.lam * (u @ u.sum(axis=0))
        chosen = np.zeros(u.shape[1])
        taken = np.zeros(len(pool), dtype=bool)
        picked, scores = [], []
        for _ in range(k):
            gain = reward - 2.0 * (u @ chosen)
            gain[taken] = -np.inf
            j = int(np.argmax(gain))
            picked.append(j)
            scores.append(float(gain[j]))
            taken[j] = True
            chosen += u[j]
        return picked, scores, {}
