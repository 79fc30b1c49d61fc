"""Set-level analysis: do the activation statistics of a whole k-shot set predict its test score?

The example-level grid (:mod:`mechsel.analysis.grid`) asks whether a statistic predicts one
demonstration's 1-shot quality. Here the unit is the *set*: each fixed demonstration set of the
random selector (one per budget ``k`` and seed, ``query == -1`` in the selections) has one test
score, and each statistic cell is summarised over the set's members.

* Set features: for every set and cell, the members' values are aggregated by ``mean`` and
  ``max`` (NaN members ignored; ``n_members`` counts the finite ones; all-NaN gives NaN). A
  member repeated in the prompt counts once per occurrence.
* Per-budget grid (:func:`set_correlation_grid`): per (task, metric, budget, cell, aggregate),
  Spearman's ρ between the set feature and the set score across sets (``n`` = sets), the
  analytic t p-value and the Fisher–Bonett–Wright interval of
  :mod:`mechsel.analysis.correlation`. Benjamini–Hochberg runs within one (task, statistic
  family) — every budget, aggregate, mask, layer and statistic of that family together — or
  over all lines with ``fdr_family="global"``.
* Pooled grid (:func:`pooled_set_correlation_grid`): one ρ per cell over the sets of *all*
  budgets, with the budget held fixed: the partial Spearman ρ given budget dummies
  (:func:`mechsel.analysis.partial.partial_spearman`), i.e. feature and score ranks centred within
  each budget before they are correlated. Larger ``k`` raises both the score and the ``max`` of
  a statistic; centring keeps that between-budget trend out of ρ, and the test spends one
  degree of freedom per extra budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast

import pandas as pd

from mechsel.analysis.grid import FdrFamily, cell_keys, correlation_grid
from mechsel.analysis.partial import partial_correlation_grid
from mechsel.errors import ConfigError, DataError

__all__ = [
    "Aggregate",
    "AGGREGATES",
    "SET_KEYS",
    "set_features",
    "set_scores",
    "set_correlation_grid",
    "pooled_set_correlation_grid",
]

Aggregate = Literal["mean", "max"]
"""How a cell's member values become one set-level value."""
AGGREGATES: tuple[Aggregate, ...] = ("mean", "max")
"""The aggregates computed by default."""
SET_KEYS: tuple[str, ...] = ("task", "selector", "budget", "seed")
"""Columns that identify one demonstration set (one line of the scores frame)."""

_POOLED_NAMES = {
    "n_partial": "n",
    "rho_partial": "rho",
    "ci_low_partial": "ci_low",
    "ci_high_partial": "ci_high",
    "p_partial": "p_value",
    "fdr_family_partial": "fdr_family",
    "family_size_partial": "family_size",
    "q_partial": "q_value",
    "significant_partial": "significant",
}


def _require(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"The {what} frame lacks columns {missing}; it has {list(frame.columns)}.")


def _selectors(selector: str | Sequence[str]) -> list[str]:
    names = [selector] if isinstance(selector, str) else list(selector)
    if not names:
        raise ConfigError("Name at least one selector whose fixed sets to analyse, e.g. selector='random'.")
    return names


def _set_id(frame: pd.DataFrame) -> pd.Series:
    return frame["selector"].astype(str) + "/k=" + frame["budget"].astype(str) + "/seed=" + frame["seed"].astype(str)


def set_features(
    selections: pd.DataFrame,
    stats: pd.DataFrame,
    *,
    selector: str | Sequence[str] = "random",
    aggregates: Sequence[Aggregate] = AGGREGATES,
    keys: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Each fixed set's members' statistic values, aggregated per cell (module docstring).

    Args:
        selections: task, selector, budget, seed, query, rank, example_id (the select stage's
            ``selections``); only the lines of ``selector`` with ``query == -1`` are used.
        stats: tidy statistics (example_id, value and the cell keys; ``task`` is joined on when
            present and must be present when the selections hold several tasks).
        selector: run label(s) whose fixed sets are analysed.
        aggregates: any of ``"mean"``, ``"max"``.
        keys: cell columns; default: the :data:`~mechsel.analysis.grid.CELL_KEYS` present.

    Returns:
        One line per (set, cell, aggregate): task, selector, budget, seed, ``set_id``, the cell
        keys, ``aggregate``, ``value`` and ``n_members`` (members with a finite value).
    """
    bad = [a for a in aggregates if a not in AGGREGATES]
    if bad or not aggregates:
        raise ConfigError(f"aggregates must be a non-empty subset of {AGGREGATES}, got {list(aggregates)}.")
    _require(selections, [*SET_KEYS, "query", "example_id"], "selections")
    _require(stats, ["example_id", "value"], "statistics")
    names = _selectors(selector)
    sel = cast(pd.DataFrame, selections[selections["selector"].isin(names) & (selections["query"] == -1)])
    if sel.empty:
        fixed = sorted(map(str, selections.loc[selections["query"] == -1, "selector"].unique()))
        raise DataError(f"No fixed sets (query == -1) of selector {names}; selectors with fixed sets: {fixed}.")
    cells = [k for k in cell_keys(stats, keys) if k != "task"]
    on = ["example_id"] + (["task"] if "task" in stats.columns else [])
    if "task" not in stats.columns and sel["task"].nunique() > 1:
        raise DataError(
            f"The selections hold tasks {sorted(sel['task'].unique())} but the statistics frame has no 'task' column; "
            f"add it (ids may repeat across tasks) or pass one task's selections."
        )
    if stats.duplicated(on + cells).any():
        raise DataError(
            f"The statistics frame has several values for one example in a cell {on + cells}; add the column that "
            f"tells them apart to `keys`."
        )
    members = cast(pd.DataFrame, sel[[*SET_KEYS, "example_id"]]).merge(stats[on + cells + ["value"]], on=on, how="inner")
    if members.empty:
        raise DataError("No member of any set appears in the statistics frame; were both built on the same candidate pool (same ids)?")
    grouped = members.groupby([*SET_KEYS, *cells], sort=True, dropna=False)["value"]
    wide = grouped.agg(["mean", "max", "count"]).reset_index().rename(columns={"count": "n_members"})
    long = wide.melt(id_vars=[*SET_KEYS, *cells, "n_members"], value_vars=list(aggregates), var_name="aggregate", value_name="value")
    long["set_id"] = _set_id(long)
    return cast(pd.DataFrame, long[[*SET_KEYS, "set_id", *cells, "aggregate", "value", "n_members"]]).reset_index(drop=True)


def set_scores(scores: pd.DataFrame, *, selector: str | Sequence[str] = "random", metric: str | None = None) -> pd.DataFrame:
    """One test score per set: task, selector, budget, seed, ``set_id``, ``metric``, ``score``.

    ``metric`` picks lines of the scores frame's ``metric`` column; ``None`` requires one metric
    per task (the headline metric the evaluate stage writes). A frame without a ``metric``
    column is read as one metric called ``"score"``.
    """
    _require(scores, [*SET_KEYS, "score"], "scores")
    names = _selectors(selector)
    sc = scores[scores["selector"].isin(names)].copy()
    if sc.empty:
        raise DataError(f"No scores of selector {names}; selectors scored: {sorted(map(str, scores['selector'].unique()))}.")
    if "metric" not in sc.columns:
        sc["metric"] = "score"
    if metric is not None:
        available = sorted(map(str, sc["metric"].unique()))
        sc = sc[sc["metric"] == metric]
        if sc.empty:
            raise DataError(f"No scores under metric {metric!r}; metrics present: {available}.")
    several = sc.groupby("task")["metric"].nunique()
    if (several > 1).any():
        task = several[several > 1].index[0]
        metrics = sorted(sc.loc[sc["task"] == task, "metric"].unique())
        raise ConfigError(f"Task {task!r} has scores under several metrics {metrics}; pass metric= (one of them).")
    if sc.duplicated(list(SET_KEYS)).any():
        raise DataError(f"The scores frame has several lines for one set {list(SET_KEYS)}; give one score per set.")
    sc["set_id"] = _set_id(sc)
    return sc[[*SET_KEYS, "set_id", "metric", "score"]].reset_index(drop=True)


def _set_lines(
    selections: pd.DataFrame,
    scores: pd.DataFrame,
    stats: pd.DataFrame,
    selector: str | Sequence[str],
    metric: str | None,
    aggregates: Sequence[Aggregate],
    keys: Sequence[str] | None,
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Set features as grid lines (example_id = set_id, metric attached), set quality, cell keys."""
    feats = set_features(selections, stats, selector=selector, aggregates=aggregates, keys=keys)
    sc = set_scores(scores, selector=selector, metric=metric)
    lines = feats.merge(sc[["task", "set_id", "metric"]], on=["task", "set_id"], how="inner")
    if lines.empty:
        raise DataError("No selected set has a score; were the selections and the scores produced by the same runs?")
    lines = lines.rename(columns={"set_id": "example_id"})
    quality = cast(pd.DataFrame, sc.rename(columns={"set_id": "example_id", "score": "quality"})[["task", "example_id", "quality"]])
    cells = [c for c in feats.columns if c not in (*SET_KEYS, "set_id", "aggregate", "value", "n_members")]
    return lines, quality, cells


def set_correlation_grid(
    selections: pd.DataFrame,
    scores: pd.DataFrame,
    stats: pd.DataFrame,
    *,
    selector: str | Sequence[str] = "random",
    metric: str | None = None,
    aggregates: Sequence[Aggregate] = AGGREGATES,
    keys: Sequence[str] | None = None,
    fdr_family: FdrFamily = "task_family",
    level: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Spearman ρ across sets between a set feature and the set's test score, per budget.

    Args:
        selections, scores, stats: the select stage's selections, the evaluate stage's scores
            (task, selector, budget, seed, metric, score) and the tidy statistics.
        selector, aggregates, keys: as for :func:`set_features`; metric: as for :func:`set_scores`.
        fdr_family: ``"task_family"`` (BH within one task and statistic family, across budgets
            and aggregates) or ``"global"``.
        level: coverage of the Fisher interval; alpha: the BH false-discovery rate.

    Returns:
        One line per (task, metric, budget, cell, aggregate) with the columns of
        :func:`~mechsel.analysis.grid.correlation_grid`: ``n`` (sets with a finite feature),
        ``rho``, ``ci_low``, ``ci_high``, ``p_value``, ``fdr_family``, ``family_size``,
        ``q_value``, ``significant``, ``abs_rho``.
    """
    lines, quality, cells = _set_lines(selections, scores, stats, selector, metric, aggregates, keys)
    return correlation_grid(
        lines,
        quality,
        keys=["task", "metric", "budget", *cells, "aggregate"],
        fdr_family=fdr_family,
        level=level,
        alpha=alpha,
    )


def pooled_set_correlation_grid(
    selections: pd.DataFrame,
    scores: pd.DataFrame,
    stats: pd.DataFrame,
    *,
    selector: str | Sequence[str] = "random",
    metric: str | None = None,
    aggregates: Sequence[Aggregate] = AGGREGATES,
    keys: Sequence[str] | None = None,
    fdr_family: FdrFamily = "task_family",
    level: float = 0.95,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Spearman ρ across the sets of all budgets, ranks centred within budget (module docstring).

    Arguments as for :func:`set_correlation_grid`.

    Returns:
        One line per (task, metric, cell, aggregate): ``n`` (sets), ``n_budgets``, ``rho``,
        ``ci_low``, ``ci_high``, ``p_value`` (t on ``n − 2 − (n_budgets − 1)`` df),
        ``fdr_family``, ``family_size``, ``q_value``, ``significant``.
    """
    lines, quality, cells = _set_lines(selections, scores, stats, selector, metric, aggregates, keys)
    grid = partial_correlation_grid(
        lines,
        quality,
        ["budget"],
        keys=["task", "metric", *cells, "aggregate"],
        categorical=("budget",),
        basis="linear",  # budget dummies only: centred ranks and their Pearson r (module docstring)
        fdr_family=fdr_family,
        level=level,
        alpha=alpha,
    )
    grid = grid.rename(columns=_POOLED_NAMES)
    grid["n_budgets"] = grid["n_covariates"] + (grid["n"] > 0)
    front = ["task", "metric", *cells, "aggregate"]
    return cast(pd.DataFrame, grid[front + ["n", "n_budgets", *(_POOLED_NAMES[c] for c in list(_POOLED_NAMES)[1:])]])
