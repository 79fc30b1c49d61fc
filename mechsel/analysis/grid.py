"""Correlation grid: Spearman ρ of every (layer, statistic, mask, ...) cell against example quality.

Inputs are tidy frames:

* statistics — one line per (example, cell) with columns ``example_id``, ``value`` and the cell's
  keys (``layer``, ``statistic``, ``mask``, and whichever of ``task``, ``family``, ``hook``,
  ``positions`` are present), as written by :meth:`mechsel.stats.StatsResult.to_frame`;
* quality — one line per example with ``example_id`` and ``quality`` (``se`` optional), as written
  by :meth:`mechsel.icl.QualityResult.table`.

Frames are joined on ``example_id`` (and ``task`` when both frames have it).

Multiplicity: Benjamini–Hochberg runs *within a stated family* of cells. The default family is
one (task, statistic family) — e.g. every layer × statistic × mask of the moments on SST-2 — so
SAE latent statistics and moments never share a correction and one task's grid does not dilute
another's. ``fdr_family="global"`` puts every cell in one family. Each line names its family in
``fdr_family`` and the family's size in ``family_size``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Literal, cast

import numpy as np
import pandas as pd

from mechsel.analysis.correlation import CIMethod, PMethod, spearman_test
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.errors import ConfigError, DataError

__all__ = [
    "CELL_KEYS",
    "FAMILY_KEYS",
    "FdrFamily",
    "correlation_grid",
    "join_quality",
    "cell_keys",
    "family_labels",
    "bh_within_families",
    "cells_of",
]

CELL_KEYS: tuple[str, ...] = ("task", "family", "hook", "positions", "mask", "layer", "statistic")
"""Columns that identify a cell of the grid, in output order, when present in the statistics frame."""

FAMILY_KEYS: tuple[str, ...] = ("task", "family")
"""Columns (when present) whose values define one multiplicity family under ``fdr_family="task_family"``."""

FdrFamily = Literal["task_family", "global"]
"""Which cells share one Benjamini–Hochberg correction (module docstring)."""

GRID_COLUMNS = ("n", "rho", "ci_low", "ci_high", "p_value", "fdr_family", "family_size", "q_value", "significant", "abs_rho")


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
    q = cast(pd.DataFrame, quality[on + ["quality"]])
    if q.duplicated(on).any():
        raise DataError(f"The quality frame has several lines for some {on}; give one quality per example.")
    joined = stats.merge(q, on=on, how="inner", validate="many_to_one")
    if joined.empty:
        raise DataError(
            "No example_id of the statistics frame appears in the quality frame; were they computed on the same candidate pool (same ids)?"
        )
    return joined


def family_labels(grid: pd.DataFrame, fdr_family: FdrFamily = "task_family") -> pd.Series:
    """The multiplicity family of each line of a grid, e.g. ``"task=sst2, family=moments"``."""
    if fdr_family not in ("task_family", "global"):
        raise ConfigError(f"fdr_family must be 'task_family' or 'global', got {fdr_family!r}.")
    keys = [k for k in FAMILY_KEYS if k in grid.columns] if fdr_family == "task_family" else []
    if not keys:
        return pd.Series("all cells", index=grid.index, dtype=object)
    return grid[keys].astype(str).apply(lambda r: ", ".join(f"{k}={v}" for k, v in zip(keys, r)), axis=1).astype(object)


def bh_within_families(
    grid: pd.DataFrame,
    p_column: str,
    family_column: str,
    alpha: float,
    *,
    size_column: str = "family_size",
    q_column: str = "q_value",
    significant_column: str = "significant",
) -> pd.DataFrame:
    """Add ``size_column``, ``q_column`` and ``significant_column``: Benjamini–Hochberg on
    ``p_column`` within each value of ``family_column`` (in place; returns ``grid``)."""
    grid[size_column] = 0
    grid[q_column] = np.nan
    grid[significant_column] = False
    for _, idx in grid.groupby(family_column, sort=False).groups.items():
        p = grid.loc[idx, p_column].to_numpy(dtype=float)
        q, rejected = benjamini_hochberg(p, alpha=alpha)
        grid.loc[idx, q_column] = q
        grid.loc[idx, significant_column] = rejected
        grid.loc[idx, size_column] = int(np.isfinite(p).sum())
    grid[significant_column] = grid[significant_column].astype(bool)
    return grid


def cells_of(joined: pd.DataFrame, keys: Sequence[str]) -> Iterator[tuple[tuple, pd.DataFrame]]:
    """Yield ``(key values, lines)`` per cell of ``joined``, refusing a cell with two values for one example."""
    groups = joined.groupby(list(keys), sort=True, dropna=False) if keys else [((), joined)]
    for key, cell in groups:
        key = key if isinstance(key, tuple) else (key,)
        if cell["example_id"].duplicated().any():
            raise DataError(
                f"Cell {dict(zip(keys, key))} has several values for one example; add the column that "
                f"tells them apart to `keys` (e.g. 'task' or 'positions')."
            )
        yield key, cell


def correlation_grid(
    stats: pd.DataFrame,
    quality: pd.DataFrame,
    *,
    keys: Sequence[str] | None = None,
    p_method: PMethod = "t",
    ci_method: CIMethod = "fisher",
    fdr_family: FdrFamily = "task_family",
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
        p_method, ci_method, n_boot, n_perm, level, seed: passed to
            :func:`~mechsel.analysis.spearman_test` (every cell of one sample size gets the same
            resampling indices).
        fdr_family: which cells share one correction: ``"task_family"`` (default: one family per
            task and statistic family) or ``"global"`` (all cells).
        alpha: false-discovery rate of the Benjamini–Hochberg control within each family.

    Returns:
        One line per cell: the key columns, then ``n`` (complete pairs), ``rho``, ``ci_low``,
        ``ci_high``, ``p_value`` (two-sided, of ρ = 0), ``fdr_family`` (the family's name),
        ``family_size`` (its testable cells), ``q_value`` (BH-adjusted within the family),
        ``significant`` (``q_value ≤ alpha``), ``abs_rho``.
    """
    keys = cell_keys(stats, keys)
    joined = join_quality(stats, quality)
    rows = []
    for key, cell in cells_of(joined, keys):
        res = spearman_test(
            cell["value"].to_numpy(),
            cell["quality"].to_numpy(),
            p_method=p_method,
            ci_method=ci_method,
            n_boot=n_boot,
            n_perm=n_perm,
            level=level,
            seed=seed,
        )
        rows.append({**dict(zip(keys, key)), **res.to_dict()})
    grid = pd.DataFrame(rows)
    grid["fdr_family"] = family_labels(grid, fdr_family)
    bh_within_families(grid, "p_value", "fdr_family", alpha)
    grid["abs_rho"] = grid["rho"].abs()
    return cast(pd.DataFrame, grid[keys + list(GRID_COLUMNS)])
