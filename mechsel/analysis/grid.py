"""Correlation grid: Spearman ρ of every (layer, statistic, mask, ...) cell against example quality.

Inputs are tidy frames:

* statistics — one line per (example, cell) with columns ``example_id``, ``value`` and the cell's
  keys (``layer``, ``statistic``, ``mask``, and whichever of ``task``, ``family``, ``hook``,
  ``positions`` are present), as written by :meth:`mechsel.stats.StatsResult.to_frame`;
* quality — one line per example with ``example_id`` and ``quality`` (``se`` optional), as written
  by :meth:`mechsel.icl.QualityResult.table`.

Frames are joined on ``example_id`` (and ``task`` when both frames have it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mechsel.analysis.correlation import spearman_test
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.errors import DataError

__all__ = ["CELL_KEYS", "correlation_grid", "join_quality", "cell_keys"]

CELL_KEYS: tuple[str, ...] = ("task", "family", "hook", "positions", "mask", "layer", "statistic")
"""Columns that identify a cell of the grid, in output order, when present in the statistics frame."""

GRID_COLUMNS = ("n", "rho", "ci_low", "ci_high", "p_value", "q_value", "significant", "abs_rho")


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"The {what} frame lacks columns {missing}; it has {list(frame.columns)}.")


def cell_keys(stats: pd.DataFrame, keys: Sequence[str] | None = None) -> list[str]:
    """The grouping columns: ``keys`` if given (all must exist), else the :data:`CELL_KEYS` present."""
    if keys is not None:
        _require(stats, list(keys), "statistics")
        return list(keys)
    return [k for k in CELL_KEYS if k in stats.columns]


def join_quality(stats: pd.DataFrame, quality: pd.DataFrame) -> pd.DataFrame:
    """Attach each statistic line's example quality (inner join; unmatched lines are dropped)."""
    _require(stats, ["example_id", "value"], "statistics")
    _require(quality, ["example_id", "quality"], "quality")
    on = ["example_id"] + (["task"] if "task" in stats.columns and "task" in quality.columns else [])
    q = quality[on + ["quality"]]
    if q.duplicated(on).any():
        raise DataError(f"The quality frame has several lines for some {on}; give one quality per example.")
    joined = stats.merge(q, on=on, how="inner", validate="many_to_one")
    if joined.empty:
        raise DataError(
            "No example_id of the statistics frame appears in the quality frame; were they computed "
            "on the same candidate pool (same ids)?"
        )
    return joined


def correlation_grid(
    stats: pd.DataFrame,
    quality: pd.DataFrame,
    *,
    keys: Sequence[str] | None = None,
    n_boot: int = 2000,
    n_perm: int = 2000,
    level: float = 0.95,
    alpha: float = 0.05,
    seed: int = 0,
) -> pd.DataFrame:
    """Spearman ρ of each cell's values against quality, with CIs, p-values and BH q-values.

    Args:
        stats, quality: tidy frames (module docstring).
        keys: cell columns; default: the :data:`CELL_KEYS` present in ``stats``.
        n_boot, n_perm, level, seed: passed to :func:`~mechsel.analysis.spearman_test` (every
            cell of one sample size gets the same resampling indices).
        alpha: false-discovery rate of the Benjamini–Hochberg control across all cells.

    Returns:
        One line per cell: the key columns, then ``n`` (complete pairs), ``rho``, ``ci_low``,
        ``ci_high``, ``p_value`` (two-sided permutation), ``q_value`` (BH-adjusted across the
        whole grid), ``significant`` (``q_value ≤ alpha``), ``abs_rho``.
    """
    keys = cell_keys(stats, keys)
    joined = join_quality(stats, quality)
    rows = []
    groups = joined.groupby(keys, sort=True, dropna=False) if keys else [((), joined)]
    for key, cell in groups:
        key = key if isinstance(key, tuple) else (key,)
        if cell["example_id"].duplicated().any():
            raise DataError(
                f"Cell {dict(zip(keys, key))} has several values for one example; add the column that "
                f"tells them apart to `keys` (e.g. 'task' or 'positions')."
            )
        res = spearman_test(
            cell["value"].to_numpy(), cell["quality"].to_numpy(), n_boot=n_boot, n_perm=n_perm, level=level, seed=seed
        )
        rows.append({**dict(zip(keys, key)), **res.to_dict()})
    grid = pd.DataFrame(rows)
    q, rejected = benjamini_hochberg(grid["p_value"].to_numpy(), alpha=alpha)
    grid["q_value"] = q
    grid["significant"] = rejected
    grid["abs_rho"] = grid["rho"].abs()
    return grid[keys + list(GRID_COLUMNS)]
