"""Selector comparison per budget: mean ± t-interval over seeds, paired tests against a baseline.

Input: a tidy scores frame with one line per run — columns ``selector``, ``budget``, ``seed``,
``score`` (the test-set metric), plus ``task`` and ``metric`` when present. Runs of two selectors
with the same (task, metric, budget, seed) are paired: with the same seed they share the pool,
the test subset and everything else except the selection.

Each paired line is decided by :func:`mechsel.analysis.paired.paired_inference`: the exact
sign-flip test below ``exact_below`` seeds or without spread, the seeds × test-queries bootstrap
when per-query predictions are given (accuracy), else the paired t test; the ``test`` and
``interval`` columns name the method of each line. The paired t-test and the Wilcoxon signed-rank
test are reported beside it (``p_ttest``, ``p_wilcoxon``). The effect size is Cohen's
d_z = mean(diff) / sd(diff).

Intervals respect the range of what they bound. A metric with a known range ``[lo, hi]`` (see
:data:`mechsel.icl.metrics.METRIC_RANGES`) has its Student-t interval of the mean intersected
with ``[lo, hi]`` and the interval of a difference intersected with ``[−(hi − lo), hi − lo]``.
The true mean lies in that range, so the intersection covers it exactly as often as the
t-interval does, and no interval runs past 1. Each comparison also reports its minimum
detectable effect (never 0; ∞ when the line's test cannot reject at its number of seeds).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from mechsel.analysis.paired import paired_inference
from mechsel.errors import ConfigError, DataError

__all__ = [
    "COMPARISON_COLUMNS",
    "PAIRED_COLUMNS",
    "GROUP_KEYS",
    "Bounds",
    "mean_ci",
    "paired_interval",
    "paired_comparison",
    "compare_selectors",
    "per_query_tables",
    "query_matrix",
]

Bounds = tuple[float, float]
"""The range ``(low, high)`` a metric can take."""

GROUP_KEYS: tuple[str, ...] = ("task", "metric", "budget")
"""Columns (when present) that define one comparison; selectors are compared within each."""


COMPARISON_COLUMNS: tuple[str, ...] = (
    "n_seeds",
    "mean",
    "sd",
    "ci_low",
    "ci_high",
    "mean_diff",
    "diff_ci_low",
    "diff_ci_high",
    "sd_diff",
    "cohen_dz",
    "t_stat",
    "p_ttest",
    "p_wilcoxon",
    "n_pairs",
    "p_value",
    "p_greater",
    "p_less",
    "test",
    "interval",
    "diff_lower",
    "diff_upper",
    "se_diff",
    "bound_alpha",
    "mde",
    "better",
)
"""The statistics columns of a comparison row, in table order (after the keys, ``selector``,
``family``, ``protocol`` / ``annotation_budget`` and ``baseline``); defined once, here."""
PAIRED_COLUMNS: tuple[str, ...] = tuple(
    c for c in COMPARISON_COLUMNS if c not in ("n_seeds", "mean", "sd", "ci_low", "ci_high", "n_pairs", "test", "interval", "better")
)
"""The paired-test columns of :data:`COMPARISON_COLUMNS` (NaN on the baseline's own row)."""


def _clip(lo: float, hi: float, bounds: Bounds | None) -> tuple[float, float]:
    if bounds is None or not np.isfinite(lo):
        return lo, hi
    return max(lo, bounds[0]), min(hi, bounds[1])


def paired_interval(mean: float, sd: float, n: int, level: float = 0.95, bounds: Bounds | None = None) -> tuple[float, float]:
    """Student-t interval ``mean ± t_{(1+level)/2, n−1} · sd/√n`` of a mean (difference) from its
    summary, intersected with ``bounds`` when given (NaN with fewer than 2 values)."""
    if n < 2 or not np.isfinite(sd):
        return float("nan"), float("nan")
    half = float(sps.t.ppf((1.0 + level) / 2.0, n - 1)) * sd / np.sqrt(n)
    return _clip(mean - half, mean + half, bounds)


def mean_ci(values: np.ndarray, level: float = 0.95, bounds: Bounds | None = None) -> tuple[float, float, float, float]:
    """Mean, sample sd (ddof 1) and the Student-t interval ``mean ± t_{(1+level)/2, n−1} · sd/√n``,
    intersected with ``bounds`` (the metric's range) when given.

    NaN values are dropped. With one value the sd and interval are NaN.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), float("nan"), float("nan")
    mean = float(v.mean())
    if v.size < 2:
        return mean, float("nan"), float("nan"), float("nan")
    sd = float(v.std(ddof=1))
    lo, hi = paired_interval(mean, sd, int(v.size), level, bounds)
    return mean, sd, lo, hi


def paired_comparison(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Paired comparison of ``a`` against ``b`` (aligned runs): diff = a − b.

    Returns ``mean_diff``, ``sd_diff``, ``cohen_dz``, ``t_stat``, ``p_ttest`` (two-sided paired
    t-test), ``p_wilcoxon`` (two-sided signed-rank test) and ``n_pairs``. All-equal pairs give
    p-values of 1 and d_z of 0 (no evidence of a difference); pairs that all differ by the same
    nonzero amount leave d_z, t and its p-value NaN (never ±∞ or 0); fewer than 2 pairs give NaN.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise DataError(f"Paired samples must be aligned, got {a.shape} and {b.shape}.")
    keep = np.isfinite(a) & np.isfinite(b)
    d = a[keep] - b[keep]
    n = int(d.size)
    out = {
        "mean_diff": float(d.mean()) if n else float("nan"),
        "sd_diff": float("nan"),
        "cohen_dz": float("nan"),
        "t_stat": float("nan"),
        "p_ttest": float("nan"),
        "p_wilcoxon": float("nan"),
        "n_pairs": n,
    }
    if n < 2:
        return out
    sd = float(d.std(ddof=1))
    out["sd_diff"] = sd
    if np.allclose(d, 0.0, atol=1e-12):
        out.update(cohen_dz=0.0, t_stat=0.0, p_ttest=1.0, p_wilcoxon=1.0)
        return out
    if sd <= 1e-12 * max(1.0, abs(out["mean_diff"])):
        # Every pair differs by the same nonzero amount: t is undefined (never ±∞); the exact
        # sign-flip test of :mod:`mechsel.analysis.paired` decides such a line.
        pass
    else:
        t = sps.ttest_rel(a[keep], b[keep])
        out.update(cohen_dz=out["mean_diff"] / sd, t_stat=float(t.statistic), p_ttest=float(t.pvalue))
    # scipy builds the wilcoxon result class at runtime, so its ``pvalue`` is invisible to the checker.
    out["p_wilcoxon"] = float(sps.wilcoxon(d, zero_method="wilcox").pvalue) if np.any(d != 0) else 1.0  # pyright: ignore[reportAttributeAccessIssue]
    return out


def per_query_tables(predictions: pd.DataFrame | None, scores: pd.DataFrame, keys: Sequence[str]) -> dict[tuple, pd.DataFrame] | None:
    """Per (group key, selector): seeds × queries table of 0/1 correctness, for accuracy lines only."""
    if predictions is None or predictions.empty or "correct" not in predictions.columns:
        return None
    pk = [k for k in keys if k in predictions.columns]
    if "metric" in keys and "metric" not in predictions.columns:
        metric = scores.drop_duplicates([k for k in keys if k != "metric"] + ["selector"])
        pred = predictions.merge(metric[[k for k in keys if k != "metric"] + ["selector", "metric"]], how="left")
        pk = list(keys)
    else:
        pred = predictions
    out = {}
    for key, part in pred.groupby(pk + ["selector"], sort=False):
        key = key if isinstance(key, tuple) else (key,)
        where = dict(zip(pk, key[:-1]))
        if where.get("metric", "accuracy") != "accuracy":
            continue
        table = part.pivot_table(index="seed", columns="query_id", values="correct", aggfunc="first")
        out[tuple(where[k] for k in keys) + (key[-1],)] = table.astype(float)
    return out


def query_matrix(
    per_query: dict[tuple, pd.DataFrame] | None,
    key: tuple,
    name: str,
    ref: str,
    seeds: pd.Index,
    diffs: np.ndarray,
) -> np.ndarray | None:
    """Seeds × queries per-query differences of ``name`` − ``ref`` on ``seeds``, or None when
    either has no predictions or they do not average to the score differences."""
    if per_query is None:
        return None
    a, b = per_query.get(tuple(key) + (name,)), per_query.get(tuple(key) + (ref,))
    if a is None or b is None or not set(seeds) <= set(a.index) or not set(seeds) <= set(b.index):
        return None
    cols = a.columns.intersection(b.columns)
    m = a.loc[list(seeds), cols].to_numpy() - b.loc[list(seeds), cols].to_numpy()
    if not np.isfinite(m).all() or not np.allclose(m.mean(axis=1), diffs, atol=1e-9):
        return None
    return m


def _metric_bounds(bounds: Bounds | Mapping[str, Bounds] | None, metric: object) -> Bounds | None:
    if bounds is None or isinstance(bounds, tuple):
        return bounds
    return bounds.get(str(metric))


def compare_selectors(
    scores: pd.DataFrame,
    *,
    baseline: str = "random",
    level: float = 0.95,
    group_keys: Sequence[str] | None = None,
    bounds: Bounds | Mapping[str, Bounds] | None = None,
    power: float = 0.8,
    protocol_baselines: Mapping[str, str] | None = None,
    predictions: pd.DataFrame | None = None,
    alpha: float | None = None,
    exact_below: int = 10,
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Per (task, metric, budget, selector): mean ± CI over seeds and a paired test vs ``baseline``.

    Args:
        scores: the tidy scores frame (module docstring).
        baseline: the reference selector.
        level: coverage of every interval; the tests' level is ``1 − level``.
        group_keys: columns of one comparison (default: :data:`GROUP_KEYS` present).
        bounds: the metric's range, or a mapping from the ``metric`` column's values to ranges
            (e.g. :data:`mechsel.icl.metrics.METRIC_RANGES`); intervals are kept inside it.
        power: power at which the minimum detectable effect ``mde`` is computed.
        protocol_baselines: when the scores carry a ``protocol`` column, the baseline of each
            protocol named here (e.g. ``{"annotate_then_retrieve": "random → kate"}``: vote-k's
            labels then retrieval is compared with random labels then the same retrieval);
            selectors of other protocols are compared with ``baseline``.
        predictions: per-query results (columns ``selector``, ``seed``, ``query_id``, ``correct``
            and the group keys present, as the evaluate stage writes them). With them an
            accuracy line's intervals and test resample test queries as well as seeds.
        alpha: level of the one-sided bounds ``diff_lower`` / ``diff_upper`` (default ``1 − level``:
            at 0.95, one-sided 95% bounds, the ends of the 90% interval).
        exact_below: fewer seeds than this use the exact sign-flip test.
        n_boot: resamples of the seeds × queries bootstrap.
        seed: its seed.

    Returns one line per group and selector with the group keys, ``selector`` (and ``family`` when
    the scores carry it), ``n_seeds``, ``mean``, ``sd``, ``ci_low``, ``ci_high`` and, paired by
    seed against its baseline (named in ``baseline``), ``mean_diff``, ``diff_ci_low``, ``diff_ci_high`` (bounded
    t-interval), ``sd_diff``, ``cohen_dz``, ``t_stat``, ``p_ttest``, ``p_wilcoxon``, ``n_pairs``,
    ``p_value`` / ``p_greater`` / ``p_less`` (two-sided and one-sided, of the line's ``test``),
    ``test`` and ``interval`` (the methods), ``diff_lower`` / ``diff_upper`` (one-sided ``1 − alpha``
    bounds), ``se_diff``, ``bound_alpha`` (their alpha), ``mde`` (smallest mean difference detected with probability ``power``;
    never 0, ∞ when the test cannot reject; NaN on the baseline's own line), and ``better``
    (mean_diff > 0 with p_value < 1 − level, unadjusted).
    """
    need = ["selector", "budget", "seed", "score"]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise DataError(f"The scores frame lacks columns {missing}; it needs {need} (+ optional task, metric).")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie in (0, 1), got {level}.")
    keys = list(group_keys) if group_keys is not None else [k for k in GROUP_KEYS if k in scores.columns]
    alpha = 1.0 - level if alpha is None else alpha
    per_query = per_query_tables(predictions, scores, keys)
    dup = scores.duplicated(keys + ["selector", "seed"])
    if dup.any():
        raise DataError(f"The scores frame has several runs for the same {keys + ['selector', 'seed']}; one score per run.")
    rows = []
    for key, group in scores.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rng = _metric_bounds(bounds, dict(zip(keys, key)).get("metric", group["metric"].iloc[0] if "metric" in group else None))
        width = None if rng is None else (-(rng[1] - rng[0]), rng[1] - rng[0])

        def base_of(name: str, sel: pd.DataFrame) -> str:
            if protocol_baselines and "protocol" in sel.columns:
                return protocol_baselines.get(str(sel["protocol"].iloc[0]), baseline)
            return baseline

        for name, sel in group.groupby("selector", sort=False):
            ref = base_of(str(name), sel)
            base = group[group["selector"] == ref].set_index("seed")["score"]
            if base.empty:
                raise DataError(
                    f"No {ref!r} runs for {dict(zip(keys, key))}; the comparison needs the baseline at "
                    f"every budget (selectors present: {sorted(group['selector'].unique())})."
                )
            s = sel.set_index("seed")["score"]
            mean, sd, lo, hi = mean_ci(s.to_numpy(), level, rng)
            row = {
                **dict(zip(keys, key)),
                "selector": name,
                "baseline": ref,
                "n_seeds": int(s.notna().sum()),
                "mean": mean,
                "sd": sd,
                "ci_low": lo,
                "ci_high": hi,
            }
            for col in ("protocol", "annotation_budget"):
                if col in sel.columns:
                    row[col] = sel[col].iloc[0]
            if name == ref:
                row.update({k: float("nan") for k in PAIRED_COLUMNS})
                row.update(n_pairs=0, test="", interval="")
            else:
                common = s.index.intersection(base.index)
                a_, b_ = s.loc[common].to_numpy(dtype=float), base.loc[common].to_numpy(dtype=float)
                pair = paired_comparison(a_, b_)
                keep = np.isfinite(a_) & np.isfinite(b_)
                matrix = query_matrix(per_query, key, str(name), ref, common[keep], a_[keep] - b_[keep])
                inf = paired_inference(
                    a_[keep] - b_[keep],
                    matrix,
                    level=level,
                    alpha=alpha,
                    power=power,
                    span=width,
                    exact_below=exact_below,
                    n_boot=n_boot,
                    seed=seed,
                )
                pair.pop("mean_diff")
                row.update(mean_diff=inf.mean_diff, diff_ci_low=inf.ci_low, diff_ci_high=inf.ci_high, **pair)
                row.update(
                    p_value=inf.p_value,
                    p_greater=inf.p_greater,
                    p_less=inf.p_less,
                    test=inf.test,
                    interval=inf.interval,
                    diff_lower=inf.diff_lower,
                    diff_upper=inf.diff_upper,
                    se_diff=inf.se,
                    mde=inf.mde,
                    bound_alpha=alpha,
                )
            row["better"] = bool(row["mean_diff"] > 0 and row["p_value"] < 1.0 - level) if name != ref else False
            rows.append(row)
    stat_cols = list(COMPARISON_COLUMNS)
    extra = [c for c in ("protocol", "annotation_budget") if c in scores.columns]
    out = cast(pd.DataFrame, pd.DataFrame(rows)[keys + ["selector"] + extra + ["baseline"] + stat_cols])
    if "family" in scores.columns:
        family = scores.drop_duplicates("selector").set_index("selector")["family"]
        out.insert(len(keys) + 1, "family", out["selector"].map(family))
    order = {baseline: 0}
    out["_o"] = out["selector"].map(lambda s: order.get(s, 1))
    return out.sort_values(keys + ["_o", "selector"], kind="stable").drop(columns="_o").reset_index(drop=True)
