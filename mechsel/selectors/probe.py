"""``probe``: pick the candidates a ridge probe of the model's representation predicts to help most.

The probe is trained on *other* candidates — their representation (e.g. the mean
``hook_mlp_out`` at one layer, ``collect(..., mean_vectors=True)``) and their measured quality —
passed to the constructor as :class:`ProbeTraining`. It then scores the pool's candidates from
``pool.representations`` and picks the ``k`` with the highest predicted quality (``per_label``:
the best of each label in turn). It never receives the quality of a candidate it can pick: a
training id that is also in the pool is refused.

The fit is :mod:`mechsel.analysis.decodability`'s: features z-scored on the training
candidates, ridge with an unpenalised intercept, penalty chosen by exact leave-one-out error on
the training candidates (or fixed with ``alpha``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from jaxtyping import Float

from mechsel.errors import ConfigError, DataError
from mechsel.selectors.base import Pool, SelectionResult, Selector, SelectorConfig, register_selector

__all__ = ["ProbeConfig", "ProbeTraining", "ProbeSelector"]


@dataclass(frozen=True, eq=False)
class ProbeTraining:
    """The candidates a probe learns from: ids, representations and measured quality."""

    ids: Sequence[Any]
    """Their ids (compared with the pool's: none may be in the pool)."""
    features: Float[np.ndarray, "m d"]
    """Their representations, the same kind and layer as ``pool.representations``."""
    quality: Float[np.ndarray, " m"]
    """Their measured quality (e.g. 1-shot dev accuracy)."""

    def __post_init__(self) -> None:
        x, y = np.asarray(self.features, dtype=np.float64), np.asarray(self.quality, dtype=np.float64)
        if x.ndim != 2 or y.shape != (x.shape[0],) or len(self.ids) != x.shape[0]:
            raise DataError(f"ProbeTraining needs ids [m], features [m, d] and quality [m]; got {len(self.ids)}, {x.shape}, {y.shape}.")
        if x.shape[0] < 3 or not (np.isfinite(x).all() and np.isfinite(y).all()):
            raise DataError("ProbeTraining needs at least 3 candidates with finite features and quality.")


@dataclass(frozen=True)
class ProbeConfig(SelectorConfig):
    """Settings of ``probe``."""

    alpha: float | None = None
    """Ridge penalty on z-scored features (``None``: chosen by leave-one-out on the training candidates)."""
    per_label: bool = False
    """Take the best-predicted candidate of each label in turn (needs ``pool.labels``) instead of the top k."""
    layer: int | None = None
    """The layer whose representation the caller passes (recorded with the run; the experiment reads it)."""

    def __post_init__(self) -> None:
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or self.alpha <= 0):
            raise ConfigError(f"probe: alpha must be a positive number or None, got {self.alpha!r}.")
        if not isinstance(self.per_label, bool):
            raise ConfigError(f"probe: per_label must be true or false, got {self.per_label!r}.")


@register_selector("probe")
class ProbeSelector(Selector[ProbeConfig]):
    """Top-k by a ridge probe's predicted quality. Score: the predicted quality."""

    Config = ProbeConfig
    needs = ("representations", "probe_training")
    family = "internal-probe"
    layer_field = "layer"

    def __init__(self, config: ProbeConfig | None = None, *, probe_training: ProbeTraining | None = None, **params: Any) -> None:
        super().__init__(config, **params)
        self.probe_training = probe_training

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        from mechsel.analysis.decodability import loo_alpha, ridge_fit

        training = self.probe_training
        if training is None:
            raise ConfigError("probe needs probe_training=ProbeTraining(ids, features, quality) of candidates outside the pool.")
        overlap = set(map(str, training.ids)) & set(map(str, pool.ids))
        if overlap:
            raise DataError(
                f"probe: {len(overlap)} training candidates are in the pool it picks from (e.g. {sorted(overlap)[:3]}); "
                f"train it on candidates it cannot pick."
            )
        reps = np.asarray(pool.require("representations", self.name), dtype=np.float64)
        x = np.asarray(training.features, dtype=np.float64)
        if x.shape[1] != reps.shape[1]:
            raise DataError(f"probe: training features have {x.shape[1]} columns but pool.representations {reps.shape[1]}.")
        mean, sd = x.mean(axis=0), x.std(axis=0)
        sd = np.where(sd > 0, sd, np.inf)
        z = (x - mean) / sd
        y = np.asarray(training.quality, dtype=np.float64)
        alpha = float(self.config.alpha) if self.config.alpha is not None else loo_alpha(z, y)
        coef, intercept = ridge_fit(z, y, alpha)
        predicted = ((reps - mean) / sd) @ coef + intercept
        order = np.lexsort((np.arange(len(pool)), -predicted))
        if self.config.per_label:
            labels = np.asarray(pool.require("labels", self.name))
            queues = {lab: [i for i in order if labels[i] == lab] for lab in dict.fromkeys(labels[order])}
            picked: list[int] = []
            while len(picked) < k:
                for queue in queues.values():
                    if queue and len(picked) < k:
                        picked.append(int(queue.pop(0)))
            chosen = np.array(picked)
        else:
            chosen = order[:k]
        return chosen, predicted[chosen], {"alpha": alpha, "n_training": int(len(y))}
