"""Selector comparison per budget: mean ± t-interval over seeds, paired tests against a baseline.

Input: a tidy scores frame with one line per run — columns ``selector``, ``budget``, ``seed``,
``score`` (the test-set metric), plus ``task`` and ``metric`` when present. Runs of two selectors
with the same (task, metric, budget, seed) are paired: with the same seed they share the pool,
the test subset and everything else except the selection.

Paired tests are the paired t-test and the Wilcoxon signed-rank test (exact for small samples;
with 5 seeds its smallest two-sided p-value is 0.0625, so it cannot reach 0.05 — use ≥ 6 seeds
when it matters). The effect size is Cohen's d_z = mean(diff) / sd(diff).

Intervals respect the range of what they bound. A metric with a known range ``[lo, hi]`` (see
:data:`mechsel.icl.metrics.METRIC_RANGES`) has its Student-t interval of the mean intersected
with ``[lo, hi]`` and the interval of a difference intersected with ``[−(hi − lo), hi − lo]``.
The true mean lies in that range, so the intersection covers it exactly as often as the
t-interval does, and no interval runs past 1. Each comparison also reports its minimum
detectable effect (:func:`mechsel.analysis.power.paired_mde`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from mechsel.analysis.power import paired_mde
from mechsel.errors import ConfigError, DataError

__all__ = ["GROUP_KEYS", "Bounds", "mean_ci", "paired_interval", "paired_comparison", "compare_selectors"]

Bounds = tuple[float, float]
"""The range ``(low, high)`` a metric can take."""

GROUP_KEYS: tuple[str, ...] = ("task", "metric", "budget")
"""Columns (when present) that define one comparison; selectors are compared within each."""


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
    p-values of 1 and d_z of 0 (no evidence of a difference); fewer than 2 pairs give NaN.
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
        # Every pair differs by the same nonzero amount: an undefined t, but a consistent sign.
        out.update(cohen_dz=float(np.sign(out["mean_diff"]) * np.inf), t_stat=float(np.sign(out["mean_diff"]) * np.inf), p_ttest=0.0)
    else:
        t = sps.ttest_rel(a[keep], b[keep])
        out.update(cohen_dz=out["mean_diff"] / sd, t_stat=float(t.statistic), p_ttest=float(t.pvalue))
    # scipy builds the wilcoxon result class at runtime, so its ``pvalue`` is invisible to the checker.
    out["p_wilcoxon"] = float(sps.wilcoxon(d, zero_method="wilcox").pvalue) if np.any(d != 0) else 1.0  # pyright: ignore[reportAttributeAccessIssue]
    return out


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

    Returns one line per group and selector with the group keys, ``selector`` (and ``family`` when
    the scores carry it), ``n_seeds``, ``mean``, ``sd``, ``ci_low``, ``ci_high`` and, paired by
    seed against its baseline (named in ``baseline``), ``mean_diff``, ``diff_ci_low``, ``diff_ci_high`` (bounded
    t-interval), ``sd_diff``, ``cohen_dz``, ``t_stat``, ``p_ttest``, ``p_wilcoxon``, ``n_pairs``,
    ``mde`` (smallest mean difference the paired t-test detects with probability ``power``; NaN on
    the baseline's own line), and ``better`` (mean_diff > 0 with p_ttest < 1 − level, unadjusted).
    """
    need = ["selector", "budget", "seed", "score"]
    missing = [c for c in need if c not in scores.columns]
    if missing:
        raise DataError(f"The scores frame lacks columns {missing}; it needs {need} (+ optional task, metric).")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must lie in (0, 1), got {level}.")
    keys = list(group_keys) if group_keys is not None else [k for k in GROUP_KEYS if k in scores.columns]
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
                row.update(
                    {
                        k: float("nan")
                        for k in (
                            "mean_diff",
                            "diff_ci_low",
                            "diff_ci_high",
                            "sd_diff",
                            "cohen_dz",
                            "t_stat",
                            "p_ttest",
                            "p_wilcoxon",
                            "mde",
                        )
                    }
                )
                row["n_pairs"] = 0
            else:
                common = s.index.intersection(base.index)
                pair = paired_comparison(s.loc[common].to_numpy(), base.loc[common].to_numpy())
                dlo, dhi = paired_interval(pair["mean_diff"], pair["sd_diff"], int(pair["n_pairs"]), level, width)
                row.update(mean_diff=pair.pop("mean_diff"), diff_ci_low=dlo, diff_ci_high=dhi, **pair)
                row["mde"] = paired_mde(pair["sd_diff"], int(pair["n_pairs"]), alpha=1.0 - level, power=power)
            row["better"] = bool(row["mean_diff"] > 0 and row["p_ttest"] < 1.0 - level) if name != ref else False
            rows.append(row)
    stat_cols = [
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
        "mde",
        "better",
    ]
    extra = [c for c in ("protocol", "annotation_budget") if c in scores.columns]
    out = cast(pd.DataFrame, pd.DataFrame(rows)[keys + ["selector"] + extra + ["baseline"] + stat_cols])
    if "family" in scores.columns:
        family = scores.drop_duplicates("selector").set_index("selector")["family"]
        out.insert(len(keys) + 1, "family", out["selector"].map(family))
    order = {baseline: 0}
    out["_o"] = out["selector"].map(lambda s: order.get(s, 1))
    return out.sort_values(keys + ["_o", "selector"], kind="stable").drop(columns="_o").reset_index(drop=True)
