"""``activation``: rank examples by their own activation statistics (Osman et al. 2026).

Reads ``pool.statistics``: one row per example, columns ``(layer, statistic)`` (a pandas
MultiIndex or tuple labels), e.g. the moments of ``hook_mlp_out`` over the example's tokens.

Score of an example:

* one statistic at one layer — the raw value;
* one statistic over several layers — each ``(layer, statistic)`` column z-scored over the pool,
  then averaged across the layers ("z-scored mean");
* several statistics — each statistic's score (as above; z-scored even at a single layer)
  combined as a weighted sum (equal weights unless ``weights`` is given).

``direction="top"`` picks the ``k`` largest scores, ``"bottom"`` the ``k`` smallest (ties towards
the lowest pool position). Which layer/statistic/direction to use can be chosen on a dev set
with :func:`choose_statistic`.

**NaN policy.** A statistic can be NaN (e.g. kurtosis of a one-token example). With
``nan_policy="raise"`` (default) a NaN in any used column raises, giving the count and the fix;
with ``"exclude"`` those examples are never picked, and their number is recorded in the
selection's provenance (``n_excluded_nan``). z-scores use the non-excluded examples only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from mechsel.errors import ConfigError, DataError
from mechsel.selectors.base import Pool, SelectionResult, Selector, SelectorConfig, register_selector

__all__ = ["ActivationConfig", "ActivationSelector", "statistic_columns", "choose_statistic"]


def statistic_columns(table: pd.DataFrame) -> list[tuple[Any, str]]:
    """The ``(layer, statistic)`` column labels of a statistics table, validated."""
    cols = list(table.columns)
    bad = [c for c in cols if not (isinstance(c, tuple) and len(c) == 2)]
    if bad:
        raise DataError(
            f"Statistics columns must be (layer, statistic) pairs (a 2-level MultiIndex); got {bad[:3]}. "
            f"Build the table with pd.MultiIndex.from_tuples([(layer, name), ...])."
        )
    return [(c[0], str(c[1])) for c in cols]


@dataclass(frozen=True)
class ActivationConfig(SelectorConfig):
    """Which statistic(s), which layer(s), which end of the ranking."""

    statistic: str | tuple[str, ...] | None = None
    """Statistic name, e.g. ``"kurtosis"``, or several names to combine. Required."""
    layer: int | tuple[int, ...] | Literal["all"] = "all"
    """One layer, several layers, or ``"all"`` layers present in the table (z-scored mean)."""
    direction: Literal["top", "bottom"] = "top"
    """``"top"``: largest scores; ``"bottom"``: smallest."""
    weights: tuple[float, ...] | None = None
    """One weight per statistic when combining several (default: equal weights)."""
    nan_policy: Literal["raise", "exclude"] = "raise"
    """What to do with NaN statistics (see the module docstring)."""

    def __post_init__(self) -> None:
        if self.statistic is None or (isinstance(self.statistic, tuple) and not self.statistic):
            raise ConfigError("activation: choose statistic=<name> (e.g. 'kurtosis') or a tuple of names to combine.")
        if self.direction not in ("top", "bottom"):
            raise ConfigError(f"direction must be 'top' or 'bottom', got {self.direction!r}.")
        if self.nan_policy not in ("raise", "exclude"):
            raise ConfigError(f"nan_policy must be 'raise' or 'exclude', got {self.nan_policy!r}.")
        if isinstance(self.layer, str) and self.layer != "all":
            raise ConfigError(f"layer must be an int, a tuple of ints or 'all', got {self.layer!r}.")
        if self.weights is not None:
            n_stats = 1 if isinstance(self.statistic, str) else len(self.statistic)
            if len(self.weights) != n_stats or not all(np.isfinite(self.weights)):
                raise ConfigError(f"weights needs {n_stats} finite value(s), one per statistic, got {self.weights}.")

    @property
    def statistics(self) -> tuple[str, ...]:
        assert self.statistic is not None  # required, checked in __post_init__
        return (self.statistic,) if isinstance(self.statistic, str) else tuple(self.statistic)


def _with_multiindex(table: pd.DataFrame) -> pd.DataFrame:
    out = table.copy()
    out.columns = pd.MultiIndex.from_tuples(statistic_columns(table))
    return out


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = x.std()
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


@register_selector("activation")
class ActivationSelector(Selector[ActivationConfig]):
    """Top-k / bottom-k by activation statistics. Score: the combined score described above."""

    Config = ActivationConfig
    needs = ("statistics",)
    family = "activation"
    reads = "moments"
    layer_field = "layer"
    statistic_field = "statistic"
    choice_fields = ("statistic", "layer", "direction")
    choice_placeholder = {"statistic": "mean", "layer": "all", "direction": "top"}

    @classmethod
    def choose_on_dev(
        cls, params: Mapping[str, Any], statistics: pd.DataFrame, quality: np.ndarray
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The (layer, statistic, direction) of :func:`choose_statistic` on the candidates'
        quality; NaN statistics are then excluded unless ``params`` says otherwise."""
        choice = choose_statistic(statistics, quality)
        detail = {"chosen": {k: (v if not isinstance(v, np.generic) else v.item()) for k, v in choice.items()}}
        chosen = {"layer": choice["layer"], "statistic": choice["statistic"], "direction": choice["direction"]}
        return {"nan_policy": "exclude", **params, **chosen}, detail

    def columns(self, table: pd.DataFrame) -> dict[str, list[tuple[Any, str]]]:
        """The columns used for each configured statistic (errors list what is available)."""
        cfg = self.config
        available = statistic_columns(table)
        layers_avail = sorted({c[0] for c in available}, key=str)
        stats_avail = sorted({c[1] for c in available})
        if cfg.layer == "all":
            layers: Sequence[Any] = layers_avail
        else:
            layers = (cfg.layer,) if isinstance(cfg.layer, int) else cfg.layer
            missing = [lay for lay in layers if lay not in layers_avail]
            if missing:
                raise ConfigError(f"activation: layer(s) {missing} not in the statistics table; available layers: {layers_avail}.")
        out = {}
        for s in cfg.statistics:
            if s not in stats_avail:
                raise ConfigError(f"activation: statistic {s!r} not in the statistics table; available: {stats_avail}.")
            cols = [c for c in available if c[1] == s and c[0] in layers]
            if not cols:
                raise ConfigError(f"activation: statistic {s!r} has no column at layer(s) {list(layers)}.")
            out[s] = cols
        return out

    def scores(self, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``(score [n], usable [n] bool)``; unusable rows (NaN under ``exclude``) score NaN."""
        cfg = self.config
        used = self.columns(table)
        flat = pd.MultiIndex.from_tuples([c for cols in used.values() for c in cols])
        values = _with_multiindex(table)
        block = values.loc[:, flat].to_numpy(dtype=np.float64)
        bad = ~np.isfinite(block).all(axis=1)
        if bad.any() and cfg.nan_policy == "raise":
            raise DataError(
                f"activation: {int(bad.sum())} of {len(bad)} examples have NaN/inf in the used statistics "
                f"{[list(c) for c in flat][:4]}{'...' if len(flat) > 4 else ''}. Fix the statistics (e.g. examples too short "
                f"for the moment), drop those examples, or pass nan_policy='exclude' to skip and count them."
            )
        ok = ~bad
        weights = cfg.weights or (1.0,) * len(used)
        total = np.zeros(ok.sum())
        for w, cols in zip(weights, used.values()):
            x = values.loc[ok, pd.MultiIndex.from_tuples(cols)].to_numpy(dtype=np.float64)
            if len(used) == 1 and x.shape[1] == 1:
                s = x[:, 0]
            else:
                s = np.mean([_zscore(col) for col in x.T], axis=0)
            total += w * s
        score = np.full(len(ok), np.nan)
        score[ok] = total
        return score, ok

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        table = pool.require("statistics", self.name)
        score, ok = self.scores(table)
        idx = np.flatnonzero(ok)
        if idx.size < k:
            raise DataError(f"activation: only {idx.size} examples have finite statistics, fewer than k={k}.")
        key = -score[idx] if self.config.direction == "top" else score[idx]
        picked = idx[np.lexsort((idx, key))][:k]
        used = [c for cols in self.columns(table).values() for c in cols]
        return picked, score[picked], {"n_excluded_nan": int((~ok).sum()), "columns": [[str(c[0]), c[1]] for c in used]}


def choose_statistic(statistics: pd.DataFrame, quality: np.ndarray, *, candidates: Sequence[str] | None = None) -> dict[str, Any]:
    """Pick the ``(layer, statistic, direction)`` whose values best rank dev-set demonstration quality.

    Args:
        statistics: dev examples' statistics table (same layout as ``Pool.statistics``).
        quality: ``[n]`` quality of each dev example as a demonstration (e.g. mean accuracy gain).
        candidates: restrict to these statistic names.

    Returns:
        ``{"layer", "statistic", "direction", "spearman"}``: the column with the largest
        absolute Spearman correlation (NaN rows ignored per column); ``direction`` is ``"top"``
        for a positive correlation. Use it as ``get_selector("activation", layer=..., statistic=..., direction=...)``.
    """
    from scipy.stats import spearmanr

    q = np.asarray(quality, dtype=np.float64)
    if q.shape != (len(statistics),):
        raise DataError(f"quality must have one value per statistics row ({len(statistics)}), got shape {q.shape}.")
    values = _with_multiindex(statistics)
    best: dict[str, Any] | None = None
    for col in values.columns:
        if candidates is not None and col[1] not in candidates:
            continue
        x = values[col].to_numpy(dtype=np.float64)
        ok = np.isfinite(x) & np.isfinite(q)
        if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(q[ok]) == 0:
            continue
        rho = float(spearmanr(x[ok], q[ok]).statistic)  # pyright: ignore[reportAttributeAccessIssue]  (scipy's result class is built at run time)
        if best is None or abs(rho) > abs(best["spearman"]):
            best = {"layer": col[0], "statistic": col[1], "direction": "top" if rho > 0 else "bottom", "spearman": rho}
    if best is None:
        raise DataError("choose_statistic: no column has at least 3 finite, non-constant values to correlate with quality.")
    return best
