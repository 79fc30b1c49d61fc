"""The masking effect: how much ρ changes between two attention-mask strategies.

Δρ = ρ(statistic under ``full``, quality) − ρ(statistic under ``isolated``, quality), per cell,
with a *paired* bootstrap: each resample draws examples once and computes both ρ on the same
examples, so the interval reflects the difference, not two independent uncertainties.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mechsel.analysis.correlation import bootstrap_indices, rowwise_pearson, spearman
from mechsel.analysis.grid import cell_keys, join_quality
from mechsel.errors import ConfigError, DataError

__all__ = ["masking_effect", "paired_delta_rho"]


def paired_delta_rho(
    a: np.ndarray, b: np.ndarray, y: np.ndarray, *, n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float, float, float, float, int]:
    """ρ(a, y), ρ(b, y), their difference and its paired percentile-bootstrap CI.

    ``a``, ``b`` and ``y`` are aligned per example; examples with a non-finite value anywhere
    are dropped. Returns ``(rho_a, rho_b, delta, ci_low, ci_high, n)``.
    """
    a, b, y = (np.asarray(v, dtype=np.float64).reshape(-1) for v in (a, b, y))
    if not (a.shape == b.shape == y.shape):
        raise DataError("a, b and y must have one value per example each.")
    keep = np.isfinite(a) & np.isfinite(b) & np.isfinite(y)
    a, b, y = a[keep], b[keep], y[keep]
    n = int(a.size)
    rho_a, rho_b = spearman(a, y), spearman(b, y)
    delta = rho_a - rho_b
    lo = hi = float("nan")
    if n >= 3 and np.isfinite(delta) and n_boot > 0:
        idx = bootstrap_indices(n, n_boot, seed)
        ry = rankdata(y[idx], axis=1)
        d = rowwise_pearson(rankdata(a[idx], axis=1), ry) - rowwise_pearson(rankdata(b[idx], axis=1), ry)
        d = d[np.isfinite(d)]
        if d.size:
            tail = (1.0 - level) / 2.0
            lo, hi = (float(v) for v in np.quantile(d, [tail, 1.0 - tail]))
    return rho_a, rho_b, delta, lo, hi, n


def masking_effect(
    stats: pd.DataFrame,
    quality: pd.DataFrame,
    *,
    full: str = "full",
    isolated: str = "isolated",
    keys: Sequence[str] | None = None,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """Δρ(``full`` − ``isolated``) per (layer, statistic, ...) cell with a paired bootstrap CI.

    Args:
        stats: tidy statistics frame with a ``mask`` column holding both strategies.
        quality: tidy quality frame (``example_id``, ``quality``).
        full, isolated: the two mask names compared (any two strategies work).
        keys: cell columns other than ``mask``; default: the standard cell keys present.

    Returns:
        One line per cell: keys, ``n``, ``rho_<full>``, ``rho_<isolated>``, ``delta_rho``,
        ``ci_low``, ``ci_high``, ``excludes_zero`` (the CI lies on one side of 0).
    """
    if full == isolated:
        raise ConfigError(f"Compare two different masks, got {full!r} twice.")
    if "mask" not in stats.columns:
        raise DataError("The statistics frame needs a 'mask' column to measure the masking effect.")
    present = set(stats["mask"].unique())
    missing = [m for m in (full, isolated) if m not in present]
    if missing:
        raise DataError(f"Mask(s) {missing} not in the statistics frame; it holds {sorted(present)}.")
    keys = [k for k in cell_keys(stats, keys) if k != "mask"]
    joined = join_quality(cast(pd.DataFrame, stats[stats["mask"].isin([full, isolated])]), quality)
    wide = joined.pivot_table(index=keys + ["example_id"], columns="mask", values="value", aggfunc="first")
    qual = joined.drop_duplicates(keys + ["example_id"]).set_index(keys + ["example_id"])["quality"]
    wide = wide.join(qual)
    rows = []
    for key, cell in wide.groupby(level=keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ra, rb, delta, lo, hi, n = paired_delta_rho(
            cell[full].to_numpy(), cell[isolated].to_numpy(), cell["quality"].to_numpy(), n_boot=n_boot, level=level, seed=seed
        )
        rows.append(
            {
                **dict(zip(keys, key)),
                "n": n,
                f"rho_{full}": ra,
                f"rho_{isolated}": rb,
                "delta_rho": delta,
                "ci_low": lo,
                "ci_high": hi,
                "excludes_zero": bool(np.isfinite(lo) and (lo > 0 or hi < 0)),
            }
        )
    return pd.DataFrame(rows)
