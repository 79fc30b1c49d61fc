"""Partial Spearman correlation: ρ of a statistic with quality once covariates are held fixed.

A statistic can track example quality only because both track a nuisance variable: a longer
demonstration has more tokens to summarise *and* a different 1-shot score. The partial ρ asks
whether the statistic still predicts quality beyond such covariates (token count, the label).

Definition (the rank analogue of the partial correlation, as in ``pingouin.partial_corr``):

1. keep the complete rows (finite ``x`` and ``y``, every covariate present);
2. replace ``x`` and ``y`` by their average ranks; a *categorical* covariate (e.g. the label)
   enters as 0/1 dummy columns, one per level but the first; a *numeric* covariate (e.g. the
   token count) enters through its ranks, flexibly (``basis``):

   * ``spline`` (default): a cubic B-spline of its ranks with ``df`` = 5 columns (knots at
     quantiles), so any smooth monotone or non-monotone dependence on it is removed;
   * ``bins``: dummies of ``df + 1`` equal-count bins of its ranks;
   * ``linear``: its ranks as one column (removes only the part linear in the ranks);

   a numeric covariate with at most ``df + 1`` distinct values (e.g. a slot 0–3) enters as
   dummies under ``spline`` and ``bins``. Covariate columns that are constant on the complete
   rows are dropped;
3. residualise the ranks of ``x`` and of ``y`` on the covariate columns (least squares with an
   intercept);
4. ``ρ_partial`` is Spearman's ρ of the two residual vectors (under ``spline`` and ``bins``: the
   residuals are ranked again) or their Pearson r (under ``linear``, the classical rank partial
   correlation). Ranking again matters under a strong confound: the residuals of ranks are then
   a nearly linear image of the noise around the confound, so their Pearson r estimates the
   noise's *Pearson* correlation (0.345 where its Spearman ρ is 0.33) and the test of the bound
   rejects too often; their Spearman ρ does not drift.

With one numeric covariate ``z`` under ``linear`` this equals the first-order formula
``(r_xy − r_xz r_yz) / √((1 − r_xz²)(1 − r_yz²))`` on the Spearman ρ's. Without covariates every
basis gives Spearman's ρ.

Uncertainty, with ``q`` the number of covariate columns (dummies counted one by one; the rank of
the covariate matrix if columns are collinear):

* p-value: two-sided t test of ``ρ_partial = 0`` on ``n − 2 − q`` degrees of freedom,
  ``t = ρ √((n − 2 − q) / (1 − ρ²))`` — the usual test of a partial correlation, i.e. the
  Spearman t test of :mod:`mechsel.analysis.correlation` at the effective size ``n − q``;
* interval: ``tanh(atanh ρ ± z · se)`` with ``se = √((1 + ρ²/2) / (n − 3 − q))``, the
  Bonett–Wright standard error of Spearman's ρ with ``n`` replaced by ``n − q`` (each covariate
  spends one degree of freedom, as in Fisher's interval of a partial Pearson correlation).

Both are approximations; ``tests/unit/test_analysis_partial.py`` checks that the test rejects at
about its level under a conditional null, and that at the paper's bound (a true partial ρ of
0.33) the one-sided test of "ρ > 0.33" keeps its level when a monotone, non-linear function of
the token count drives both the statistic and the quality (at most 5.5% at a 5% level; measured
3.5–5.2% at n = 200, log-normal token counts, confound weights 0–4). Residualising on the ranks
linearly (``linear``) does not: the confound leaks through and the same test rejects 14–15% at
weights 1–2; the spline without ranking the residuals again still rejects 7–9%. Hence
``spline`` is the default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, cast

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline
from scipy.stats import rankdata

from mechsel.analysis.correlation import SpearmanResult, fisher_interval, rowwise_pearson, spearman_p_value
from mechsel.analysis.grid import FdrFamily, bh_within_families, cell_keys, cells_of, family_labels, join_quality
from mechsel.errors import ConfigError, DataError

__all__ = [
    "ConfoundBasis",
    "PartialSpearmanResult",
    "partial_spearman",
    "partial_correlation_grid",
    "residual_ranks",
    "ResidualRanks",
    "PARTIAL_COLUMNS",
]

ConfoundBasis = Literal["spline", "bins", "linear"]
"""How a numeric covariate is removed from the ranks (module docstring)."""
SPLINE_DF = 5
"""Columns a numeric covariate spends under ``spline`` (and ``df + 1`` bins under ``bins``)."""

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


def _dummies(values: np.ndarray) -> list[np.ndarray]:
    """0/1 columns of every level of ``values`` but the first."""
    return [(values == level).astype(np.float64) for level in np.unique(values)[1:]]


def _numeric_columns(x: np.ndarray, basis: ConfoundBasis, df: int) -> list[np.ndarray]:
    """Columns of one numeric covariate under ``basis`` (module docstring): its ranks (``linear``),
    a cubic B-spline of its ranks with ``df`` columns (``spline``) or dummies of ``df + 1``
    rank bins (``bins``). A covariate with at most ``df + 1`` distinct values enters as dummies
    under ``spline`` and ``bins`` (every function of it is then a combination of them)."""
    r = rankdata(x)
    if basis == "linear":
        return [r]
    if np.unique(x).size <= df + 1:
        return _dummies(x)
    u = (r - r.min()) / (r.max() - r.min())
    if basis == "bins":
        edges = np.quantile(u, np.linspace(0.0, 1.0, df + 2)[1:-1])
        return _dummies(np.searchsorted(edges, u, side="right"))
    inner = np.quantile(u, np.linspace(0.0, 1.0, df - 1)[1:-1])
    knots = np.concatenate([np.zeros(4), inner, np.ones(4)])
    design = BSpline.design_matrix(u, knots, 3).toarray()
    return [design[:, j] for j in range(1, design.shape[1])]  # the columns sum to 1: drop one (the intercept)


def _design(frame: pd.DataFrame, categorical: Sequence[str], basis: ConfoundBasis = "spline", df: int = SPLINE_DF) -> np.ndarray:
    """Covariate columns (numeric ones under ``basis``, categorical ones as 0/1 dummies of all
    levels but the first), constant ones dropped."""
    columns = []
    for name in frame.columns:
        col = frame[name]
        if _is_categorical(col, name, categorical):
            columns += _dummies(col.astype(str).to_numpy())
        else:
            columns += _numeric_columns(col.to_numpy(dtype=np.float64), basis, df)
    columns = [c for c in columns if np.ptp(c) > 0]
    return np.column_stack(columns) if columns else np.empty((len(frame), 0))


def _residuals(r: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Residual of ``r`` after least squares on ``[1, design]``; zeros where ``r`` is explained exactly."""
    z = np.column_stack([np.ones(r.size), design])
    beta = np.linalg.lstsq(z, r, rcond=None)[0]
    res = r - z @ beta
    scale = np.linalg.norm(r - r.mean())
    return np.zeros_like(res) if np.linalg.norm(res) <= 1e-10 * max(scale, 1.0) else res


@dataclass(frozen=True)
class ResidualRanks:
    """The ranks of ``x`` and ``y`` with the covariates removed, on the complete rows."""

    x: np.ndarray
    """Residual ranks of ``x`` ``[n]`` (zeros where the covariates explain them exactly)."""
    y: np.ndarray
    """Residual ranks of ``y`` ``[n]``."""
    keep: np.ndarray
    """Which of the input rows were complete ``[n_input]`` (bool)."""
    q: int
    """Covariate columns spent (the rank of the centred design)."""


def residual_ranks(
    x: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | pd.DataFrame | pd.Series,
    *,
    categorical: Sequence[str] = ("label",),
    basis: ConfoundBasis = "spline",
    df: int = SPLINE_DF,
) -> ResidualRanks:
    """Steps 1–3 of the module docstring: complete rows, ranks, residuals on the covariates."""
    if isinstance(categorical, str):
        raise ConfigError(f"categorical must be a sequence of column names, got the string {categorical!r}; write ({categorical!r},).")
    if basis not in ("spline", "bins", "linear"):
        raise ConfigError(f"basis must be 'spline', 'bins' or 'linear', got {basis!r}.")
    if isinstance(df, bool) or not isinstance(df, int) or df < 3:
        raise ConfigError(f"df must be an integer ≥ 3 (columns a numeric covariate spends), got {df!r}; {SPLINE_DF} is the default.")
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    if x.shape != y.shape:
        raise DataError(f"x and y must have the same length, got {x.size} and {y.size}.")
    frame = _as_covariate_frame(covariates, x.size)
    keep = _complete_rows(x, y, frame, categorical)
    x, y, frame = x[keep], y[keep], cast(pd.DataFrame, frame[keep]).reset_index(drop=True)
    n = int(x.size)
    design = _design(frame, categorical, basis, df) if n else np.empty((0, 0))
    q = int(np.linalg.matrix_rank(design - design.mean(axis=0))) if design.shape[1] and n else 0
    if n == 0:
        return ResidualRanks(x, y, keep, q)
    rx, ry = _residuals(rankdata(x), design), _residuals(rankdata(y), design)
    if basis != "linear" and design.shape[1]:
        rx, ry = rankdata(rx), rankdata(ry)  # step 4: the Spearman ρ of the residuals
    return ResidualRanks(rx, ry, keep, q)


def partial_spearman(
    x: np.ndarray,
    y: np.ndarray,
    covariates: np.ndarray | pd.DataFrame | pd.Series,
    *,
    categorical: Sequence[str] = ("label",),
    basis: ConfoundBasis = "spline",
    df: int = SPLINE_DF,
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
        basis: how a numeric covariate is removed: ``spline`` (a cubic B-spline of its ranks,
            ``df`` columns; the default), ``bins`` (dummies of ``df + 1`` rank bins) or
            ``linear`` (its ranks, one column).
        df: columns a numeric covariate spends under ``spline``.
        level: coverage of the Fisher interval.

    Returns:
        :class:`PartialSpearmanResult`; ``rho`` and the rest are NaN when ``n − q < 3`` or when
        ``x`` or ``y`` is constant once the covariates are removed.
    """
    if not 0.0 < level < 1.0:
        raise ConfigError(f"Confidence level must lie in (0, 1), got {level}; e.g. 0.95.")
    res = residual_ranks(x, y, covariates, categorical=categorical, basis=basis, df=df)
    n, q = int(res.x.size), res.q
    nan = float("nan")
    if n - q < 3:
        return PartialSpearmanResult(nan, nan, nan, nan, n, q)
    rho = float(rowwise_pearson(res.x, res.y))
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
    basis: ConfoundBasis = "spline",
    df: int = SPLINE_DF,
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
        basis, df: how numeric covariates are removed (see :func:`partial_spearman`).
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
        res = partial_spearman(
            cell["value"].to_numpy(), cell["quality"].to_numpy(), cell[names], categorical=categorical, basis=basis, df=df, level=level
        )
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
