"""Output-uncertainty selectors: ``least_confidence``, ``margin``, ``entropy``.

``margin`` and ``entropy`` read the model's label distributions from ``pool.label_probs``
(``[n, n_labels]``, e.g. a softmax over the label words' logits, zero-shot or with fixed
demonstrations) and pick the ``k`` most uncertain examples.

``least_confidence`` follows the vote-k reference code by default (``iterative=True``): start
from a random batch of ``max(1, k // batch_ratio)`` examples, then repeatedly ask
``confidence_fn(selected)`` for the model's confidence on every example when prompted with
demonstrations retrieved from the selected set, and add the next batch of least-confident
unselected examples, until ``k``. With ``iterative=False`` it ranks once by
``1 − max_y p(y)`` from ``pool.label_probs``.

The confidence is whatever ``confidence_fn`` returns; the experiment pipeline's
(:func:`mechsel.icl.make_confidence_fn`) is the top label probability renormalised over the
label words, whereas the reference code ranks by MetaICL's mean full-vocabulary negative
log-likelihood of the predicted option (see :mod:`mechsel.selectors.votek`).

Ties are broken towards the lowest pool position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mechsel.errors import ConfigError
from mechsel.selectors.base import Pool, SelectionResult, Selector, SelectorConfig, register_selector
from mechsel.selectors.votek import ConfidenceFn, check_confidence

__all__ = [
    "LeastConfidenceConfig",
    "LeastConfidenceSelector",
    "MarginSelector",
    "EntropySelector",
    "uncertainty_scores",
]


def uncertainty_scores(label_probs: np.ndarray, kind: str) -> np.ndarray:
    """Per-example uncertainty (higher = more uncertain) from ``[n, n_labels]`` distributions.

    ``least_confidence``: 1 − max p; ``margin``: −(p₁ − p₂) (top two); ``entropy``: −Σ p log p (nats).
    """
    p = np.asarray(label_probs, dtype=np.float64)
    if kind == "least_confidence":
        return 1.0 - p.max(axis=1)
    if kind == "margin":
        if p.shape[1] < 2:
            raise ConfigError("margin needs at least two labels.")
        top2 = -np.sort(-p, axis=1)[:, :2]
        return -(top2[:, 0] - top2[:, 1])
    if kind == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            return -np.where(p > 0, p * np.log(p), 0.0).sum(axis=1)
    raise ConfigError(f"Unknown uncertainty kind {kind!r}; choose least_confidence, margin or entropy.")


def _top_uncertain(u: np.ndarray, k: int, exclude: np.ndarray | None = None) -> np.ndarray:
    idx = np.arange(u.size)
    if exclude is not None:
        idx = idx[~exclude]
    order = idx[np.lexsort((idx, -u[idx]))]
    return order[:k]


@dataclass(frozen=True)
class _NoConfig(SelectorConfig):
    """No parameters."""


class _StaticUncertainty(Selector[_NoConfig]):
    Config = _NoConfig
    needs = ("label_probs",)
    family = "uncertainty"
    kind = ""

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        u = uncertainty_scores(pool.require("label_probs", self.name), self.kind)
        picked = _top_uncertain(u, k)
        return picked, u[picked], {}


@register_selector("margin")
class MarginSelector(_StaticUncertainty):
    """The k examples with the smallest gap between the two most probable labels. Score: −gap."""

    kind = "margin"


@register_selector("entropy")
class EntropySelector(_StaticUncertainty):
    """The k examples whose label distribution has the highest entropy. Score: entropy (nats)."""

    kind = "entropy"


@dataclass(frozen=True)
class LeastConfidenceConfig(SelectorConfig):
    """Least confidence; iterative by default as in the vote-k reference code."""

    iterative: bool = True
    """``True``: batches driven by ``confidence_fn`` (reference). ``False``: one ranking by ``pool.label_probs``."""
    batch_ratio: int = 10
    """Iterative only: batch size ``max(1, k // batch_ratio)`` (reference: k/10, its ``batch_size``)."""

    def __post_init__(self) -> None:
        if self.batch_ratio < 1:
            raise ConfigError(f"batch_ratio must be >= 1, got {self.batch_ratio}.")


@register_selector("least_confidence")
class LeastConfidenceSelector(Selector[LeastConfidenceConfig]):
    """Least-confident examples. Score: 1 − max p (static) or the confidence returned by
    ``confidence_fn`` when picked (iterative; ``nan`` for the random first batch)."""

    Config = LeastConfidenceConfig
    needs = ("confidence_fn",)
    family = "uncertainty"

    @classmethod
    def needs_for(cls, params: Mapping[str, Any]) -> frozenset[str]:
        """Iterative: ``confidence_fn``; static: ``pool.label_probs``."""
        return frozenset({"confidence_fn"} if LeastConfidenceConfig(**params).iterative else {"label_probs"})

    def __init__(self, config: LeastConfidenceConfig | None = None, *, confidence_fn: ConfidenceFn | None = None, **params: object) -> None:
        super().__init__(config, **params)
        self.confidence_fn = confidence_fn

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        cfg = self.config
        if not cfg.iterative:
            u = uncertainty_scores(pool.require("label_probs", self.name), "least_confidence")
            picked = _top_uncertain(u, k)
            return picked, u[picked], {}
        if self.confidence_fn is None:
            raise ConfigError(
                "least_confidence (iterative=True, as in the vote-k code) needs confidence_fn=<callable(selected) -> "
                "[n] confidences>; or set iterative=False to rank once by pool.label_probs."
            )
        n = len(pool)
        batch = max(1, k // cfg.batch_ratio)
        picked = [int(i) for i in rng.choice(n, size=batch, replace=False)]
        scores = [float("nan")] * batch
        rounds = 0
        while len(picked) < k:
            rounds += 1
            conf = check_confidence(self.confidence_fn(list(picked)), n, picked, "least_confidence")
            taken = np.zeros(n, dtype=bool)
            taken[picked] = True
            new = _top_uncertain(-conf, min(batch, k - len(picked)), exclude=taken)
            picked += [int(i) for i in new]
            scores += [float(conf[i]) for i in new]
        return picked, scores, {"batch_size": batch, "model_rounds": rounds}
