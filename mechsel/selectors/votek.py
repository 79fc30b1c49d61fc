"""Vote-k and fast vote-k (Su et al., ICLR 2023, "Selective Annotation Makes Language Models
Better Few-Shot Learners"), checked against the reference code (HKUNLP/icl-selective-annotation,
``two_steps.py``).

Graph: every example ``v`` links to its ``K`` most cosine-similar other examples (embeddings
mean-centred first) and *votes* for each of them. With ``S`` the examples picked so far and
``c(v)`` the discount count of voter ``v`` (the number of picked examples ``v`` votes for),

    score(u) = Σ_{v votes for u, v ∉ S} ρ^(−c(v)),      ρ = 10,

so a voter already "represented" by picked neighbours counts for little.

Neighbours: the reference code uses ``K = 150`` on pools of about 3,000 (5%). On a pool of
``n <= 151`` that setting makes every example vote for every other one, all scores tie and the
tie-break alone decides the picks. By default ``K = min(n_neighbors, max(min_neighbors,
round(neighbor_fraction · n)))`` = ``min(150, max(5, round(0.05 n)))`` (rounded half up), clipped
to ``n − 1``; the configured 150 is reached at ``n >= 2,990``. ``neighbor_fraction=None`` keeps
``n_neighbors`` (clipped to ``n − 1``), as the reference code does. A warning is logged when the
pool is too small for the configured ``n_neighbors`` (``n_neighbors >= n − 1``).

**Fast vote-k** picks argmax score greedily ``k`` times (the reference's ``fast_votek``).

**Vote-k**, stage 1: fast vote-k picks ``min(stage1_size, k)`` examples, ``stage1_size = 10``,
because the reference code passes its ``batch_size`` (10) as stage 1's size; at ``k <= 10`` vote-k
is therefore fast vote-k alone (the reference code would still return 10 picks at ``k < 10``). ``stage1="paper"`` uses the paper's description instead:
``max(1, k // stage1_ratio)`` (k/10). Stage 2: ``confidence_fn(stage-1 picks)`` gives one
confidence per example; the unpicked examples are sorted from least to most confident, the
least-confident ``1 − excluded_confident_fraction`` (0.9) of the pool is cut into as many
buckets of ``int(0.9 n / remaining)`` examples as picks remain, and each bucket adds its
highest-scoring example; when buckets run out the rest is filled at random, as in the reference code.

Stage-2 discount: after each stage-2 pick mechsel raises ``c(v)`` of the pick's voters, as the
paper describes. The reference code never does (it tests an ``int`` key against the ``str`` keys
of its JSON vote cache), so its stage 2 keeps stage 1's discounts (picked examples still stop
voting); its published numbers come from that behaviour. ``reference_compat=True`` reproduces it.

Confidence: mechsel uses whatever ``confidence_fn`` returns (higher = more confident). The
experiment pipeline passes :func:`mechsel.icl.make_confidence_fn`: the largest label probability
after renormalising over the label words, each example prompted with its most similar picked
examples. The reference code ranks by MetaICL's loss of the *predicted* option: the mean, over
the option's tokens, of the negative log-likelihood under the full-vocabulary softmax (highest
first). The two rank examples differently in general: the renormalised probability ignores the
probability mass the model puts outside the label words.

Ties: scores within 1e-9 (relative) of the float maximum are compared exactly (as rationals), and
exact ties go to the example ranked first in a random order of the pool, ``rng.permutation(n)``,
the first draw from the selection's generator ``np.random.default_rng(seed)``. The reference
code breaks ties by dict order (in fast vote-k, the order in which examples first received a
vote; in stage 2, least confident first). Breaking them by pool position instead returned
positions ``0..k−1`` on small pools, where every score ties.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

import numpy as np
import scipy.sparse as sp

from mechsel.errors import ConfigError, DataError
from mechsel.selectors.base import Pool, SelectionResult, Selector, SelectorConfig, register_selector
from mechsel.selectors.graphs import knn, unit_rows

__all__ = [
    "FastVoteKConfig",
    "FastVoteKSelector",
    "VoteKConfig",
    "VoteKSelector",
    "VoteGraph",
    "ConfidenceFn",
    "n_neighbors_for",
]

logger = logging.getLogger(__name__)

ConfidenceFn = Callable[[list[int]], np.ndarray]
"""``confidence_fn(selected_indices) -> [n]`` model confidence for every pool example when
prompted with demonstrations retrieved from ``selected_indices`` (higher = more confident).
The pipeline's is the top label probability renormalised over the label words, not the
reference code's MetaICL option loss (see the module docstring)."""

_WARNED: set[tuple[int, int, int]] = set()
"""(pool size, configured, used) neighbour settings already warned about in this process."""

_NEAR_TIE_RTOL = 1e-9
"""Scores this close (relative) to the float maximum are re-compared exactly."""


class VoteGraph:
    """The vote-k graph and the greedy score recursion (exposed for tests and analyses).

    Args:
        neighbours: ``[n, K]`` array, row ``v`` = the examples ``v`` votes for (no repeats).
        rho: the discount base ρ.
        tie_rank: ``[n]`` distinct ranks; among exactly tied scores the lowest rank wins.
            Default: the pool position (the selectors pass a seeded random permutation).
    """

    def __init__(self, neighbours: np.ndarray, rho: float, tie_rank: np.ndarray | None = None) -> None:
        n, kk = neighbours.shape
        voters = np.repeat(np.arange(n, dtype=np.int64), kk)
        # votes_t[u, v] = 1 when v votes for u (u is one of v's neighbours)
        self.votes_t = sp.csr_matrix((np.ones(n * kk), (neighbours.reshape(-1), voters)), shape=(n, n))
        self.rho = float(rho)
        self.n = n
        self.tie_rank = np.arange(n) if tie_rank is None else np.asarray(tie_rank)
        if self.tie_rank.shape != (n,) or len(np.unique(self.tie_rank)) != n:
            raise DataError(
                f"tie_rank must hold {n} distinct ranks (e.g. rng.permutation({n})), got {self.tie_rank.shape} "
                f"with {len(np.unique(self.tie_rank))} distinct values."
            )
        self.selected = np.zeros(n, dtype=bool)
        self.covered = np.zeros(n, dtype=np.int64)  # c(v)

    def voters(self, u: int) -> np.ndarray:
        """The examples that vote for ``u``."""
        return self.votes_t.indices[self.votes_t.indptr[u] : self.votes_t.indptr[u + 1]]

    def scores(self) -> np.ndarray:
        """score(u) for every example (``-inf`` for picked ones), in float64."""
        w = np.power(self.rho, -self.covered.astype(np.float64))
        w[self.selected] = 0.0
        s = self.votes_t @ w
        s[self.selected] = -np.inf
        return s

    def exact_score(self, u: int) -> Fraction:
        """score(u) as an exact rational."""
        v = self.voters(u)
        levels, counts = np.unique(self.covered[v[~self.selected[v]]], return_counts=True)
        rho = Fraction(self.rho)
        return sum((Fraction(int(c)) / rho ** int(lv) for lv, c in zip(levels, counts)), Fraction(0))

    def add(self, u: int, *, update_discount: bool = True) -> None:
        """Mark ``u`` picked: it stops voting and, with ``update_discount``, every voter of ``u``
        has one more picked neighbour (``c(v) += 1``)."""
        self.selected[u] = True
        if update_discount:
            self.covered[self.voters(u)] += 1

    def best(self, candidates: np.ndarray | None = None) -> tuple[int, float]:
        """The highest-scoring unpicked example (among ``candidates`` if given), ties by ``tie_rank``."""
        s = self.scores()
        if candidates is not None:
            masked = np.full(self.n, -np.inf)
            masked[candidates] = s[candidates]
            s = masked
        top = float(s.max())
        if top == -np.inf:
            raise AssertionError("VoteGraph.best: no unpicked candidate left")  # a caller bug, not bad input
        near = np.flatnonzero(s >= top - _NEAR_TIE_RTOL * abs(top))
        if near.size > 1:
            exact = [self.exact_score(int(u)) for u in near]
            high = max(exact)
            near = near[[e == high for e in exact]]
        j = int(near[np.argmin(self.tie_rank[near])])
        return j, float(s[j])

    def greedy(self, m: int, candidates: np.ndarray | None = None, *, update_discount: bool = True) -> tuple[list[int], list[float]]:
        """Pick ``m`` examples by argmax score (restricted to ``candidates`` if given)."""
        picked, scores = [], []
        for _ in range(m):
            j, s = self.best(candidates)
            picked.append(j)
            scores.append(s)
            self.add(j, update_discount=update_discount)
        return picked, scores


@dataclass(frozen=True)
class FastVoteKConfig(SelectorConfig):
    """Fast vote-k; ``n_neighbors`` and ``rho`` from the reference code, neighbours scaled to the pool."""

    n_neighbors: int = 150
    """Neighbours each example votes for: the reference code's 150, and the cap of the scaled count."""
    neighbor_fraction: float | None = 0.05
    """Scale the neighbour count to ``min(n_neighbors, max(min_neighbors, round(neighbor_fraction·n)))``
    (reference: 150 of ~3,000 = 5%). ``None``: use ``n_neighbors`` as the reference code does.
    Either way the count is clipped to ``n − 1``; the count used is in the provenance."""
    min_neighbors: int = 5
    """Floor of the scaled neighbour count (small pools would otherwise get 1–2 neighbours); the
    cap ``n_neighbors`` wins when it is lower."""
    rho: float = 10.0
    """Discount base ρ in ρ^(−c(v))."""
    center: bool = True
    """Mean-centre embeddings before cosine (the reference code does)."""

    def __post_init__(self) -> None:
        if self.n_neighbors < 1:
            raise ConfigError(f"n_neighbors must be >= 1, got {self.n_neighbors}.")
        if self.neighbor_fraction is not None and not 0 < self.neighbor_fraction <= 1:
            raise ConfigError(
                f"neighbor_fraction must be in (0, 1] (the reference ratio is 0.05) or None to use "
                f"n_neighbors unscaled, got {self.neighbor_fraction}."
            )
        if self.min_neighbors < 1:
            raise ConfigError(
                f"min_neighbors must be >= 1, got {self.min_neighbors}; it is the floor of the scaled neighbour "
                f"count (n_neighbors is its cap)."
            )
        if not self.rho > 1:
            raise ConfigError(f"rho must be > 1 (the reference uses 10), got {self.rho}.")


def n_neighbors_for(n: int, cfg: FastVoteKConfig) -> int:
    """The neighbour count vote-k uses on a pool of ``n`` examples (see the module docstring)."""
    if n < 2:
        raise DataError("vote-k needs at least 2 pool examples to build its neighbour graph.")
    wanted = cfg.n_neighbors
    if cfg.neighbor_fraction is not None:
        wanted = min(cfg.n_neighbors, max(cfg.min_neighbors, int(np.floor(cfg.neighbor_fraction * n + 0.5))))
    kk = min(wanted, n - 1)
    if cfg.n_neighbors >= n - 1:
        why = (
            f"scaled to {kk} ({cfg.neighbor_fraction:g} of the pool, at least {cfg.min_neighbors})"
            if cfg.neighbor_fraction is not None
            else f"using {kk}: every example votes for every other one, so scores tie and the seeded "
            f"tie-break decides the picks; set neighbor_fraction=0.05 to scale the count to the pool"
        )
        if (n, cfg.n_neighbors, kk) not in _WARNED:  # once per process and setting, not once per seed
            _WARNED.add((n, cfg.n_neighbors, kk))
            logger.warning(
                "vote-k: a pool of %d examples is too small for n_neighbors=%d (the reference code uses 150 on ~3,000 examples); %s.",
                n,
                cfg.n_neighbors,
                why,
            )
    elif kk < cfg.n_neighbors:
        logger.info("vote-k: pool of %d examples, using %d neighbours instead of %d", n, kk, cfg.n_neighbors)
    return kk


def _graph(pool: Pool, cfg: FastVoteKConfig, rng: np.random.Generator) -> tuple[VoteGraph, int]:
    kk = n_neighbors_for(len(pool), cfg)
    embeddings = pool.embeddings
    assert embeddings is not None  # a need of both vote-k selectors, checked by Selector.select
    nbrs, _ = knn(unit_rows(embeddings, center=cfg.center), kk)
    return VoteGraph(nbrs, cfg.rho, tie_rank=rng.permutation(len(pool))), kk


@register_selector("fast_votek")
class FastVoteKSelector(Selector[FastVoteKConfig]):
    """Fast vote-k: ``k`` greedy picks by vote-k score. Score: the vote-k score at pick time."""

    Config = FastVoteKConfig
    needs = ("embeddings",)

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        graph, kk = _graph(pool, self.config, rng)
        picked, scores = graph.greedy(k)
        return picked, scores, {"n_neighbors_used": kk}


@dataclass(frozen=True)
class VoteKConfig(FastVoteKConfig):
    """Two-stage vote-k; stage 1 as the reference code runs it unless ``stage1="paper"``."""

    stage1: Literal["reference_code", "paper"] = "reference_code"
    """Stage-1 size rule. ``"reference_code"``: ``min(stage1_size, k)`` (the code passes its batch
    size, 10; at ``k <= stage1_size`` vote-k is fast vote-k). ``"paper"``: ``max(1, k // stage1_ratio)``."""
    stage1_size: int = 10
    """Stage-1 size under ``stage1="reference_code"`` (the reference's ``batch_size``)."""
    stage1_ratio: int = 10
    """Under ``stage1="paper"``, stage 1 picks ``max(1, k // stage1_ratio)`` (the paper's k/10)."""
    excluded_confident_fraction: float = 0.1
    """Fraction of the pool (the most confident) never eligible in stage 2 (reference: 0.1)."""
    reference_compat: bool = False
    """Reproduce the reference code's stage 2, which never updates the discount ``c(v)`` after a
    stage-2 pick (picks still stop voting). ``False``: update it, as the paper describes."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.stage1 not in ("reference_code", "paper"):
            raise ConfigError(
                f"stage1 must be 'reference_code' (stage1_size picks, 10 as the code runs) or 'paper' "
                f"(k // stage1_ratio, the paper's k/10), got {self.stage1!r}."
            )
        if self.stage1_size < 1:
            raise ConfigError(f"stage1_size must be >= 1 (the reference code uses 10), got {self.stage1_size}.")
        if self.stage1_ratio < 1:
            raise ConfigError(f"stage1_ratio must be >= 1 (the paper uses 10), got {self.stage1_ratio}.")
        if not 0 <= self.excluded_confident_fraction < 1:
            raise ConfigError(f"excluded_confident_fraction must be in [0, 1), got {self.excluded_confident_fraction}.")

    def stage1_picks(self, k: int) -> int:
        """How many of ``k`` picks stage 1 makes."""
        return min(self.stage1_size, k) if self.stage1 == "reference_code" else max(1, k // self.stage1_ratio)


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
class VoteKSelector(Selector[VoteKConfig]):
    """Two-stage vote-k. Needs ``confidence_fn`` (see :data:`ConfidenceFn`).

    Score: the vote-k score at pick time (stage 2: within the pick's bucket; ``nan`` for the
    random fill used only when buckets run out, as in the reference code).
    """

    Config = VoteKConfig
    needs = ("embeddings", "confidence_fn")

    def __init__(self, config: VoteKConfig | None = None, *, confidence_fn: ConfidenceFn | None = None, **params: object) -> None:
        super().__init__(config, **params)
        self.confidence_fn = confidence_fn

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        if self.confidence_fn is None:
            raise ConfigError(
                "votek needs confidence_fn=<callable(selected_indices) -> [n] confidences>, e.g. from the ICL "
                "engine; or use 'fast_votek', which needs no model."
            )
        cfg = self.config
        n = len(pool)
        m1 = cfg.stage1_picks(k)
        graph, kk = _graph(pool, cfg, rng)
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
            p, s = graph.greedy(1, candidates=bucket, update_discount=not cfg.reference_compat)
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
