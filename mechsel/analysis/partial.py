"""Partial Spearman correlation: ρ of a statistic with quality once covariates are held fixed.

A statistic can track example quality only because both track a nuisance variable: a longer
demonstration has more tokens to summarise *and* a different 1-shot score. The partial ρ asks
whether the statistic still predicts quality beyond such covariates (token count, the label).

Definition (the rank analogue of the partial correlation, as in ``pingouin.partial_corr``):

1. keep the complete rows (finite ``x`` and ``y``, every covariate present);
2. replace ``x``, ``y`` and each numeric covariate by its average ranks; a *categorical*
   covariate (e.g. the label) enters as 0/1 dummy columns, one per level but the first;
   covariate columns that are constant on the complete rows are dropped;
3. residualise the ranks of ``x`` and of ``y`` on the covariate columns (least squares with an
   intercept) and take Pearson's r of the two residual vectors: ``ρ_partial``.

With one numeric covariate ``z`` this equals the first-order formula
``(r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²))`` on the Spearman ρ's.

Uncertainty, with ``q`` the number of covariate columns (dummies counted one by one; the rank of
the covariate matrix if columns are collinear):

* p-value: two-sided t test of ``ρ_partial = 0`` on ``n − 2 − q`` degrees of freedom,
  ``t = ρ √((n − 2 − q) / (1 − ρ²))`` — the usual test of a partial correlation, i.e. the
  Spearman t test of :mod:`mechsel.analysis.correlation` at the effective size ``n − q``;
* interval: ``tanh(atanh ρ ± z · se)`` with ``se = √((1 + ρ²/2) / (n − 3 − q))``, the
  Bonett–Wright standard error of Spearman's ρ with ``n`` replaced by ``n − q`` (each covariate
  spends one degree of freedom, as in Fisher's interval of a partial Pearson correlation).

Both are approximations; ``tests/unit/test_analysis_partial.py`` checks that the test rejects at
about its level under a conditional null. Residualising ranks removes the part of the
dependence on a covariate that is linear in its ranks, so a strong confound is not removed
exactly: with ``x`` and ``y`` both ``2z + noise`` (``z`` explaining 80% of each), the 5% test
rejected 7% of 1000 null draws at ``n = 200`` (5.5% at ``n = 100``, 5.2% at ``n = 30`` with
``z + noise``). Read a partial ρ just past the threshold under a strong confound with that margin.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from mechsel.analysis.correlation import SpearmanResult, fisher_interval, rowwise_pearson, spearman_p_value
from mechsel.analysis.grid import FdrFamily, bh_within_families, cell_keys, cells_of, family_labels, join_quality
from mechsel.errors import ConfigError, DataError

__all__ = ["PartialSpearmanResult", "partial_spearman", "partial_correlation_grid", "PARTIAL_COLUMNS"]

PARTIAL_COLUMNS: tuple[str, ...] = (
    "covariates",
    "n_covariates",
    "n_partial",
    "rho_partial",
    "ci_low_partial",
    "ci_high_partial",
    "p_partial",
    "fdr_family_partial",
    "family_size_partial",
    "q_partial",
    "significant_partial",
)
"""Columns of :func:`partial_correlation_grid` after the cell keys (suffixed so they merge beside the raw grid)."""


@dataclass(frozen=True)
class PartialSpearmanResult(SpearmanResult):
    """Partial Spearman ρ of one pair given covariates (``rho``, interval, p-value and ``n`` as
    in :class:`~mechsel.analysis.correlation.SpearmanResult`, on the complete rows)."""

    n_covariates: int
    """Covariate columns ``q`` actually used (dummies counted; constant or collinear ones not)."""


def _as_covariate_frame(covariates: np.ndarray | pd.DataFrame | pd.Series, n: int) -> pd.DataFrame:
    if isinstance(covariates, pd.Series):
        covariates = covariates.to_frame(name=covariates.name if covariates.name is not None else "covariate 0")
    if isinstance(covariates, pd.DataFrame):
        frame = covariates.reset_index(drop=True)
    else:
        arr = np.asarray(covariates, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2:
            raise DataError(f"covariates must be [n] or [n, q], got shape {arr.shape}; pass one column per covariate.")
        frame = pd.DataFrame(arr, columns=[f"covariate {j}" for j in range(arr.shape[1])])
    if len(frame) != n:
        raise DataError(f"covariates have {len(frame)} rows but x and y have {n}; give one covariate row per pair.")
    return frame


def _is_categorical(column: pd.Series, name: object, categorical: Sequence[str]) -> bool:
    return name in categorical or not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)


def _complete_rows(x: np.ndarray, y: np.ndarray, frame: pd.DataFrame, categorical: Sequence[str]) -> np.ndarray:
    keep = np.isfinite(x) & np.isfinite(y)
    for name in frame.columns:
        col = frame[name]
        if _is_categorical(col, name, categorical):
            keep &= col.notna().to_numpy()
        else:
            keep &= np.isfinite(col.to_numpy(dtype=np.float64, na_value=np.nan))
    return keep


def _design(frame: pd.DataFrame, categorical: Sequence[str]) -> np.ndarray:
    """Covariate columns (ranks, or 0/1 dummies of all levels but the first), constant ones dropped."""
    columns = []
    for name in frame.columns:
        col = frame[name]
        if _is_categorical(col, name, categorical):
            values = col.astype(str).to_numpy()
            columns += [(values == level).astype(np.float64) for level in np.unique(values)[1:]]
        else:
            columns.append(rankdata(col.to_numpy(dtype=np.float64)))
    columns = [c for c in columns if np.ptp(c) > 0]
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _residuals(r: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Residual of ``r`` after least squares on ``[1, design]``; zeros where ``r`` is explained exactly."""
    z = np.column_stack([np.ones(r.size), design])
    beta = np.linalg.lstsq(z, r, rcond=None)[0]
    res = r - z @ beta
    scale = np.linalg.norm(r - r.mean())
    return np.zeros_like(res) if np.linalg.norm(res) <= 1e-10 * max(scale, 1.0) else res


def partial_spearman(
    x: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | pd.DataFrame | pd.Series,
    *,
    categorical: Sequence[str] = ("label",),
    level: float = 0.95,
) -> PartialSpearmanResult:
    """Spearman ρ of ``x`` and ``y`` controlling for ``covariates`` (module docstring).

    Args:
        x, y: paired observations ``[n]``.
        covariates: ``[n]`` or ``[n, q]`` numbers (each ranked), or a frame / series with one
            line per pair. Frame columns that are not numeric (strings, categories, booleans) or
            whose name is in ``categorical`` enter as dummy columns.
        categorical: names of frame columns to treat as categories even when numeric (a label
            coded 0/1/2 must not be ranked as a quantity).
        level: coverage of the Fisher interval.

    Returns:
        :class:`PartialSpearmanResult`; ``rho`` and the rest are NaN when ``n − q < 3`` or when
        ``x`` or ``y`` is constant once the covariates are removed.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"Confidence level must lie in (0, 1), got {level}; e.g. 0.95.")
    if isinstance(categorical, str):
        raise ConfigError(f"categorical must be a sequence of column names, got the string {categorical!r}; write ({categorical!r},).")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(f"x and y must have the same length, got {x.size} and {y.size}.")
    frame = _as_covariate_frame(covariates, x.size)
    keep = _complete_rows(x, y, frame, categorical)
    x, y, frame = x[keep], y[keep], cast(pd.DataFrame, frame[keep]).reset_index(drop=True)
    n = int(x.size)
    design = _design(frame, categorical)
    q = int(np.linalg.matrix_rank(design - design.mean(axis=0))) if design.shape[1] and n else 0
    nan = float("nan")
    if n - q < 3:
        return PartialSpearmanResult(nan, nan, nan, nan, n, q)
    rho = float(rowwise_pearson(_residuals(rankdata(x), design), _residuals(rankdata(y), design)))
    if not np.isfinite(rho):
        return PartialSpearmanResult(nan, nan, nan, nan, n, q)
    lo, hi = (float(v) for v in fisher_interval(rho, n - q, level))
    return PartialSpearmanResult(rho, lo, hi, float(spearman_p_value(rho, n - q)), n, q)


def _covariate_lines(
    stats: pd.DataFrame, quality: pd.DataFrame, covariates: pd.DataFrame | Sequence[str], keys: list[str]
) -> tuple[pd.DataFrame, list[str]]:
    """Statistic lines joined with quality and the covariates, and the covariate names."""
    on: list[str] = []  # the join columns; set (and used) only when covariates is a frame
    if isinstance(covariates, pd.DataFrame):
        if "example_id" not in covariates.columns:
            raise DataError(f"The covariates frame needs an 'example_id' column; it has {list(covariates.columns)}.")
        on = ["example_id"] + (["task"] if "task" in stats.columns and "task" in covariates.columns else [])
        names = [c for c in covariates.columns if c not in ("example_id", "task")]
        if covariates.duplicated(on).any():
            raise DataError(f"The covariates frame has several lines for some {on}; give one line per example.")
    else:
        names = [covariates] if isinstance(covariates, str) else list(covariates)
        missing = [c for c in names if c not in stats.columns]
        if missing:
            raise DataError(
                f"Covariate columns {missing} are not on the statistics lines (columns {list(stats.columns)}); "
                f"name existing columns or pass a covariates frame with example_id and the covariates."
            )
    if not names:
        raise ConfigError("No covariates given; name at least one (e.g. ['n_tokens'] or a frame with n_tokens, label).")
    clash = [c for c in names if c in keys or c in ("example_id", "value", "quality")]
    if clash:
        raise ConfigError(f"Covariates {clash} are also cell keys or data columns; rename them.")
    if not isinstance(covariates, pd.DataFrame):
        return join_quality(stats, quality), names
    joined = join_quality(stats.drop(columns=[c for c in names if c in stats.columns]), quality)
    joined = joined.merge(covariates[on + names].assign(_has_covariates=True), on=on, how="left", validate="many_to_one")
    if not joined["_has_covariates"].notna().any():
        raise DataError(f"No {on} of the statistics frame appears in the covariates frame; were they built on the same pool?")
    return joined.drop(columns="_has_covariates"), names


def partial_correlation_grid(
    stats: pd.DataFrame,
    quality: pd.DataFrame,
    covariates: pd.DataFrame | Sequence[str],
    *,
    keys: Sequence[str] | None = None,
    categorical: Sequence[str] = ("label",),
    fdr_family: FdrFamily = "task_family",
    level: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Partial Spearman ρ of each cell's values against quality given covariates, with BH q-values.

    The partial counterpart of :func:`~mechsel.analysis.grid.correlation_grid` (same frames,
    same cells, same multiplicity families).

    Args:
        stats, quality: tidy frames as for ``correlation_grid``.
        covariates: either a frame with ``example_id`` (and ``task``, joined on when ``stats``
            has it too) and the covariate columns (e.g. ``n_tokens``, ``label``) — its columns
            replace same-named columns of the statistic lines — or the names of columns already
            on the statistic lines (e.g. ``["n_tokens"]``: each mask keeps its own token count).
        keys: cell columns; default: the :data:`~mechsel.analysis.grid.CELL_KEYS` present.
        categorical: covariate names entered as dummies even when numeric (see
            :func:`partial_spearman`).
        fdr_family: ``"task_family"`` (one family per task and statistic family) or ``"global"``.
        level: coverage of the Fisher interval.
        alpha: false-discovery rate of the Benjamini–Hochberg control within each family.

    Returns:
        One line per cell: the key columns, then :data:`PARTIAL_COLUMNS`: ``covariates`` (the
        names, comma-joined), ``n_covariates`` (columns ``q`` used in that cell),
        ``n_partial`` (complete rows), ``rho_partial``, ``ci_low_partial``, ``ci_high_partial``,
        ``p_partial``, ``fdr_family_partial``, ``family_size_partial`` (testable cells),
        ``q_partial`` (BH within the family), ``significant_partial`` (``q ≤ alpha``). Merge it
        beside the raw grid on the key columns.
    """
    keys = cell_keys(stats, keys)
    joined, names = _covariate_lines(stats, quality, covariates, keys)
    rows = []
    for key, cell in cells_of(joined, keys):
        res = partial_spearman(cell["value"].to_numpy(), cell["quality"].to_numpy(), cell[names], categorical=categorical, level=level)
        rows.append(
            {
                **dict(zip(keys, key)),
                "covariates": ", ".join(map(str, names)),
                "n_covariates": res.n_covariates,
                "n_partial": res.n,
                "rho_partial": res.rho,
                "ci_low_partial": res.ci_low,
                "ci_high_partial": res.ci_high,
                "p_partial": res.p_value,
            }
        )
    grid = pd.DataFrame(rows)
    grid["fdr_family_partial"] = family_labels(grid, fdr_family)
    bh_within_families(
        grid,
        "p_partial",
        "fdr_family_partial",
        alpha,
        size_column="family_size_partial",
        q_column="q_partial",
        significant_column="significant_partial",
    )
    return cast(pd.DataFrame, grid[keys + list(PARTIAL_COLUMNS)])
