"""Demonstration selectors on SAE latents, registered in :data:`mechsel.selectors.SELECTORS`.

All read ``pool.statistics`` (one row per example, ``(layer, statistic)`` columns, e.g.
``collect_sae(...).to_wide()``): the per-example SAE statistics of :class:`SAEStatistics` and the
top-latent columns ``sae_top{i}_latent`` / ``sae_top{i}_act`` of :class:`SAETopLatents`. An
example's *latent profile* is the sparse vector holding its top latents' activations (zero
elsewhere).

==================  =====================================================================
name                what
==================  =====================================================================
sae_coverage        greedy coverage of task-relevant latents: latents whose mean activation
                    differs most between labels on a labelled seed set
sae_topk            top/bottom-k by an SAE statistic (``sae_l0``, ``sae_entropy``, ...) or by
                    one latent's activation
sae_diversity       greedy farthest-first in latent-profile space (cosine)
==================  =====================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mechsel.errors import ConfigError, DataError
from mechsel.selectors.activation import ActivationSelector, statistic_columns
from mechsel.selectors.base import Pool, SelectionResult, Selector, SelectorConfig, register_selector
from mechsel.selectors.coverage import DiversitySelector

__all__ = [
    "latent_profiles",
    "SAECoverageConfig",
    "SAECoverageSelector",
    "SAETopKConfig",
    "SAETopKSelector",
    "SAEDiversityConfig",
    "SAEDiversitySelector",
]


def _top_layers(table: pd.DataFrame) -> list[Any]:
    return sorted({c[0] for c in statistic_columns(table) if c[1] == "sae_top1_latent"}, key=str)


def latent_profiles(table: pd.DataFrame, layer: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(profiles [n, m], latent_ids [m])``: each example's top-latent activations over the ``m``
    latents that appear in any example's top list at ``layer`` (the only one present when ``None``)."""
    layers = _top_layers(table)
    if not layers:
        raise DataError(
            "pool.statistics holds no SAE top-latent columns ('sae_top1_latent', ...). Collect them with "
            "mechsel.sae.collect_sae(model, texts, saes, top_k=16) and pass result.to_wide() as Pool(statistics=...)."
        )
    if layer is None:
        if len(layers) > 1:
            raise ConfigError(f"pool.statistics has top latents at layers {layers}; choose one with layer=...")
        layer = layers[0]
    elif layer not in layers:
        raise ConfigError(f"No top-latent columns at layer {layer}; they exist at layers {layers}.")
    cols = {c[1]: c for c in statistic_columns(table) if c[0] == layer}
    k = sum(1 for name in cols if name.startswith("sae_top") and name.endswith("_latent"))
    flat = table.copy()
    flat.columns = pd.MultiIndex.from_tuples(statistic_columns(table))
    lat = np.stack([flat[cols[f"sae_top{i}_latent"]].to_numpy(np.float64) for i in range(1, k + 1)], axis=1)
    act = np.stack([flat[cols[f"sae_top{i}_act"]].to_numpy(np.float64) for i in range(1, k + 1)], axis=1)
    if not (np.isfinite(lat).all() and np.isfinite(act).all()):
        raise DataError("Top-latent columns hold NaN; recompute them with collect_sae (empty slots are latent -1, activation 0).")
    live = lat >= 0
    ids = np.unique(lat[live]).astype(np.int64)
    profiles = np.zeros((len(table), ids.size))
    rows, slots = np.nonzero(live)
    profiles[rows, np.searchsorted(ids, lat[rows, slots].astype(np.int64))] = act[rows, slots]
    return profiles, ids


# ------------------------------------------------------------------------------------ coverage
@dataclass(frozen=True)
class SAECoverageConfig(SelectorConfig):
    """Which latents count as task-relevant, and how they are found."""

    layer: int | None = None
    """Layer whose top latents are used (``None``: the only layer present)."""
    n_seed: int = 32
    """Size of the labelled seed set, drawn at random (seeded) from the pool when ``seed_indices`` is not given."""
    seed_indices: tuple[int, ...] | None = None
    """Pool positions of the labelled seed set (their ``pool.labels`` are read)."""
    n_relevant: int = 64
    """Number of task-relevant latents to cover."""
    min_examples: int = 2
    """A latent must be among the top latents of at least this many seed examples to be relevant."""

    def __post_init__(self) -> None:
        for name in ("n_seed", "n_relevant", "min_examples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"sae_coverage: {name} must be a positive integer, got {value!r}.")
        if self.seed_indices is not None:
            object.__setattr__(self, "seed_indices", tuple(int(i) for i in self.seed_indices))


def task_relevance(profiles: np.ndarray, labels: np.ndarray, min_examples: int) -> np.ndarray:
    """Per latent: the spread (max − min) of its mean activation across labels; 0 for latents
    active in fewer than ``min_examples`` seed examples."""
    classes = np.unique(labels)
    means = np.stack([profiles[labels == c].mean(axis=0) for c in classes])
    spread = means.max(axis=0) - means.min(axis=0)
    spread[(profiles > 0).sum(axis=0) < min_examples] = 0.0
    return spread


@register_selector("sae_coverage")
class SAECoverageSelector(Selector[SAECoverageConfig]):
    """Greedy coverage of task-relevant SAE latents.

    Relevance of a latent is :func:`task_relevance` on the labelled seed set. Each pick is the
    example whose top latents cover the largest relevance-weighted sum of not-yet-covered
    relevant latents (ties: larger relevant activation, then lowest position); once every
    relevant latent is covered, coverage restarts. Score: the covered relevance of the pick.
    """

    Config = SAECoverageConfig
    needs = ("statistics", "labels")
    family = "sae"
    reads = "sae"
    layer_field = "layer"

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        cfg = self.config
        profiles, ids = latent_profiles(pool.require("statistics", self.name), cfg.layer)
        seed = self._seed_set(cfg, len(pool), rng)
        labels = np.asarray(pool.labels)[seed]
        if np.unique(labels).size < 2:
            raise DataError(
                f"sae_coverage: the seed set's labels are all {labels[0]!r}; relevance needs at least two labels. Use a larger or stratified seed set."
            )
        relevance = task_relevance(profiles[seed], labels, cfg.min_examples)
        order = np.argsort(-relevance, kind="stable")[: cfg.n_relevant]
        order = order[relevance[order] > 0]
        if order.size == 0:
            raise DataError("sae_coverage: no latent's activation differs by label on the seed set; use more seed examples or top latents.")
        weights = relevance[order]
        active = profiles[:, order] > 0
        strength = (profiles[:, order] * weights).sum(axis=1)
        covered = np.zeros(order.size, dtype=bool)
        taken = np.zeros(len(pool), dtype=bool)
        picked, scores = [], []
        for _ in range(k):
            if covered.all():
                covered[:] = False
            gain = active[:, ~covered].astype(np.float64) @ weights[~covered]
            gain[taken] = -np.inf
            best = np.lexsort((np.arange(len(pool)), -strength, -gain))[0]
            picked.append(int(best))
            scores.append(float(gain[best]))
            taken[best] = True
            covered |= active[best]
        extra = {"relevant_latents": ids[order].tolist(), "relevance": weights.tolist(), "seed_indices": seed.tolist()}
        return picked, scores, extra

    @staticmethod
    def _seed_set(cfg: SAECoverageConfig, n: int, rng: np.random.Generator) -> np.ndarray:
        if cfg.seed_indices is not None:
            seed = np.asarray(cfg.seed_indices, dtype=np.int64)
            if seed.size == 0 or seed.min() < 0 or seed.max() >= n or np.unique(seed).size != seed.size:
                raise ConfigError(f"sae_coverage: seed_indices must be distinct pool positions in [0, {n}).")
            return seed
        if cfg.n_seed > n:
            raise ConfigError(f"sae_coverage: n_seed={cfg.n_seed} exceeds the pool size {n}.")
        return np.sort(rng.choice(n, size=cfg.n_seed, replace=False))


# ------------------------------------------------------------------------------------ top-k
@dataclass(frozen=True)
class SAETopKConfig(SelectorConfig):
    """Rank by one SAE statistic or by one latent's activation."""

    statistic: str | None = None
    """An SAE statistic column (``sae_l0``, ``sae_entropy``, ``sae_explained_variance``, ...)."""
    latent: int | None = None
    """Rank by this latent's activation instead (0 where it is not among an example's top latents)."""
    layer: int | None = None
    """Layer to read (``None``: the only layer with the statistic / top latents)."""
    direction: Literal["top", "bottom"] = "top"
    """``"top"``: largest first; ``"bottom"``: smallest first."""
    nan_policy: Literal["raise", "exclude"] = "raise"
    """NaN statistics (e.g. explained variance of a one-token example): raise, or never pick them."""

    def __post_init__(self) -> None:
        if (self.statistic is None) == (self.latent is None):
            raise ConfigError("sae_topk: pass exactly one of statistic='sae_l0' (or another SAE statistic) or latent=<index>.")
        if self.statistic is not None and not self.statistic.startswith("sae_"):
            raise ConfigError(
                f"sae_topk ranks by SAE statistics (names starting with 'sae_'); for {self.statistic!r} use the 'activation' selector."
            )
        if self.latent is not None and (isinstance(self.latent, bool) or not isinstance(self.latent, int) or self.latent < 0):
            raise ConfigError(f"sae_topk: latent must be a non-negative latent index, got {self.latent!r}.")
        if self.direction not in ("top", "bottom"):
            raise ConfigError(f"direction must be 'top' or 'bottom', got {self.direction!r}.")
        if self.nan_policy not in ("raise", "exclude"):
            raise ConfigError(f"nan_policy must be 'raise' or 'exclude', got {self.nan_policy!r}.")


@register_selector("sae_topk")
class SAETopKSelector(Selector[SAETopKConfig]):
    """Top/bottom-k by an SAE statistic (as the ``activation`` selector) or by one latent's activation.

    Score: the statistic's value, or the latent's activation. Ties go to the lowest position.
    """

    Config = SAETopKConfig
    needs = ("statistics",)
    family = "sae"
    reads = "sae"
    layer_field = "layer"
    statistic_field = "statistic"

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        cfg = self.config
        if cfg.statistic is not None:
            layer = cfg.layer if cfg.layer is not None else self._only_layer(pool.require("statistics", self.name), cfg.statistic)
            inner = ActivationSelector(statistic=cfg.statistic, layer=layer, direction=cfg.direction, nan_policy=cfg.nan_policy)
            return inner._select(pool, k, rng)
        profiles, ids = latent_profiles(pool.require("statistics", self.name), cfg.layer)
        assert cfg.latent is not None  # the config holds a statistic or a latent
        where = np.searchsorted(ids, cfg.latent)
        present = where < ids.size and ids[min(where, ids.size - 1)] == cfg.latent
        score = profiles[:, where] if present else np.zeros(len(pool))
        key = -score if cfg.direction == "top" else score
        picked = np.lexsort((np.arange(len(pool)), key))[:k]
        return picked, score[picked], {"latent": cfg.latent, "n_examples_with_latent": int((score > 0).sum())}

    @staticmethod
    def _only_layer(table: pd.DataFrame, statistic: str) -> Any:
        layers = sorted({c[0] for c in statistic_columns(table) if c[1] == statistic}, key=str)
        if len(layers) != 1:
            raise ConfigError(f"sae_topk: statistic {statistic!r} is at layers {layers}; choose one with layer=...")
        return layers[0]


# ------------------------------------------------------------------------------------ diversity
@dataclass(frozen=True)
class SAEDiversityConfig(SelectorConfig):
    """Farthest-first in latent-profile space."""

    layer: int | None = None
    """Layer whose top latents form the profiles (``None``: the only layer present)."""
    center: bool = False
    """Mean-centre the profiles before cosine (off: cosine then measures shared latents)."""


@register_selector("sae_diversity")
class SAEDiversitySelector(Selector[SAEDiversityConfig]):
    """Greedy farthest-first (the ``diversity`` selector) on latent profiles instead of sentence
    embeddings: the first pick is random (seeded); each next pick minimises the summed cosine
    similarity of its latent profile to the picks so far. Score: that summed similarity."""

    Config = SAEDiversityConfig
    needs = ("statistics",)
    family = "sae"
    reads = "sae"
    layer_field = "layer"

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        cfg = self.config
        profiles, ids = latent_profiles(pool.require("statistics", self.name), cfg.layer)
        latent_pool = Pool(ids=pool.ids, texts=pool.texts, embeddings=profiles.astype(np.float32))
        picked, scores, _ = DiversitySelector(center=cfg.center)._select(latent_pool, k, rng)
        return picked, scores, {"n_latents": int(ids.size)}
