"""The paper-style summary table and a plain-language verdict on the paper's finding.

Osman et al. (2026) found that activation-based selection gives no reliable gain over random
demonstrations and that the activation statistics correlate only weakly with example quality
(|ρ| ≤ ~0.33). :func:`summary_table` lays out, per (task, metric, budget), random against the
best activation selector and the strongest ρ of the grid; :func:`verdict` reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.errors import ConfigError, DataError

__all__ = ["summary_table", "Verdict", "verdict", "format_summary", "describe_cell"]

PAPER_RHO_BOUND = 0.33
"""The largest |ρ| the paper reports between a statistic and example quality."""


def describe_cell(row: pd.Series) -> str:
    """A short human label of a grid cell, e.g. ``"layer 5 kurtosis (isolated)"``."""
    parts = []
    if "layer" in row and pd.notna(row["layer"]):
        parts.append(f"layer {int(row['layer'])}")
    parts.append(str(row.get("statistic", "?")))
    if "mask" in row and pd.notna(row["mask"]):
        parts.append(f"({row['mask']})")
    return " ".join(parts)


def _pick_family(comparison: pd.DataFrame, family: str, selectors: Sequence[str] | None) -> pd.Series:
    if selectors is not None:
        return comparison["selector"].isin(list(selectors))
    if "family" not in comparison.columns:
        raise DataError(
            "Cannot tell which selectors are activation-based: pass selectors=[...] or give the scores "
            "frame a 'family' column (e.g. 'activation', 'sae', 'classic', 'baseline')."
        )
    return comparison["family"] == family


def summary_table(
    comparison: pd.DataFrame,
    grid: pd.DataFrame | None = None,
    *,
    family: str = "activation",
    selectors: Sequence[str] | None = None,
    baseline: str = "random",
    grid_family: str | None = None,
) -> pd.DataFrame:
    """Random vs the best selector of ``family`` per (task, metric, budget), with max |ρ|.

    Args:
        comparison: output of :func:`~mechsel.analysis.compare_selectors`.
        grid: output of :func:`~mechsel.analysis.correlation_grid` (optional).
        family: which selectors compete (matched against the ``family`` column), e.g.
            ``"activation"`` for the moments or ``"sae"`` for SAE statistics.
        selectors: explicit competing selector names (overrides ``family``).
        baseline: the reference selector.
        grid_family: restrict the ρ part to grid lines of this ``family`` (moments / sae), when
            the grid has that column; default: all lines.

    Returns:
        One line per (task, metric, budget): ``random_mean``, ``random_ci_low``,
        ``random_ci_high``, ``best_selector``, ``best_mean``, ``best_ci_low``, ``best_ci_high``,
        ``diff``, ``p_ttest``, ``p_wilcoxon``, ``cohen_dz``, and — per task when a grid is given —
        ``max_abs_rho``, ``max_rho`` (signed), ``max_rho_cell``, ``max_rho_q``.
    """
    keys = [k for k in ("task", "metric", "budget") if k in comparison.columns]
    competing = _pick_family(comparison, family, selectors)
    if not competing.any():
        raise DataError(f"No {family!r} selectors in the comparison (selectors: {sorted(comparison['selector'].unique())}).")
    rows = []
    for key, group in comparison.groupby(keys, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        base = group[group["selector"] == baseline]
        cand = group[competing.loc[group.index]]
        if base.empty or cand.empty:
            continue
        best = cand.loc[cand["mean"].idxmax()]
        b = base.iloc[0]
        rows.append(
            {**dict(zip(keys, key)), "random_mean": b["mean"], "random_ci_low": b["ci_low"], "random_ci_high": b["ci_high"],
             "best_selector": best["selector"], "best_mean": best["mean"], "best_ci_low": best["ci_low"],
             "best_ci_high": best["ci_high"], "diff": best["mean_diff"], "p_ttest": best["p_ttest"],
             "p_wilcoxon": best["p_wilcoxon"], "cohen_dz": best["cohen_dz"]}
        )
    table = pd.DataFrame(rows)
    if grid is not None and not table.empty:
        g = grid
        if grid_family is not None and "family" in g.columns:
            g = g[g["family"] == grid_family]
        extra = []
        for _, row in table.iterrows():
            sub = g[g["task"] == row["task"]] if "task" in g.columns and "task" in row else g
            sub = sub[np.isfinite(sub["rho"])]
            if sub.empty:
                extra.append({"max_abs_rho": np.nan, "max_rho": np.nan, "max_rho_cell": "", "max_rho_q": np.nan})
                continue
            top = sub.loc[sub["rho"].abs().idxmax()]
            extra.append({"max_abs_rho": abs(top["rho"]), "max_rho": top["rho"], "max_rho_cell": describe_cell(top),
                          "max_rho_q": top.get("q_value", np.nan)})
        table = pd.concat([table.reset_index(drop=True), pd.DataFrame(extra)], axis=1)
    return table


@dataclass(frozen=True)
class Verdict:
    """Whether the paper's finding holds, part by part, with the sentence that says so."""

    holds: bool
    """No reliable gain over random *and* only weak correlations."""
    reliable_gain: bool
    """Some competing selector beat random with BH-adjusted paired-t p < alpha."""
    weak_correlation: bool
    """No reliable correlation above the threshold: the largest |ρ| is at most the threshold, or
    it is not significant after Benjamini–Hochberg (``q > alpha``) — with few candidates and a
    large grid, some |ρ| above the threshold is expected by chance alone."""
    max_abs_rho: float
    """The largest |ρ| seen (NaN without a grid)."""
    text: str
    """The plain-language verdict."""
    details: list[str] = field(default_factory=list)
    """One line per (task, metric, budget) comparison that supports the verdict."""


def verdict(
    summary: pd.DataFrame, *, rho_threshold: float = PAPER_RHO_BOUND, alpha: float = 0.05, model: str = "this model"
) -> Verdict:
    """Read a :func:`summary_table` and say plainly whether the paper's finding holds.

    A *reliable gain* is a (task, metric, budget) line where the best competing selector's mean
    exceeds random's and its paired-t p-value, Benjamini–Hochberg-adjusted across the table's
    lines, is below ``alpha``. *Weak correlation* means the largest |ρ| of the grid is ≤
    ``rho_threshold``, or is not significant (its BH q-value over the grid, ``max_rho_q``, is
    above ``alpha``; without q-values the point estimate alone decides). The finding holds when
    there is no reliable gain and correlation is weak.
    """
    if summary.empty:
        raise DataError("The summary table is empty: no budget had both the baseline and a competing selector.")
    if not 0 < rho_threshold <= 1:
        raise ConfigError(f"rho_threshold must lie in (0, 1], got {rho_threshold}.")
    q, _ = benjamini_hochberg(summary["p_ttest"].to_numpy(dtype=float), alpha=alpha)
    gains = (summary["diff"].to_numpy(dtype=float) > 0) & (np.nan_to_num(q, nan=1.0) < alpha)
    reliable = bool(gains.any())
    max_abs = float(np.nanmax(summary["max_abs_rho"])) if "max_abs_rho" in summary and summary["max_abs_rho"].notna().any() else float("nan")
    top_q = float("nan")
    if np.isfinite(max_abs):
        top = summary.loc[summary["max_abs_rho"].idxmax()]
        top_q = float(top.get("max_rho_q", np.nan))
    chance = bool(np.isfinite(max_abs) and max_abs > rho_threshold and np.isfinite(top_q) and top_q > alpha)
    weak = bool(np.isfinite(max_abs) and (max_abs <= rho_threshold or chance))
    details = []
    for i, row in summary.reset_index(drop=True).iterrows():
        where = ", ".join(f"{k}={row[k]}" for k in ("task", "metric", "budget") if k in row)
        details.append(
            f"{where}: random {row['random_mean']:.3f} vs {row['best_selector']} {row['best_mean']:.3f} "
            f"(diff {row['diff']:+.3f}, paired t p={row['p_ttest']:.3g}, BH q={q[i]:.3g}, d_z={row['cohen_dz']:.2f})"
        )
    if reliable:
        i = int(np.flatnonzero(gains)[np.argmax(summary["diff"].to_numpy(dtype=float)[gains])])
        gain_text = f"an activation-based selector did beat random reliably ({details[i]})"
    else:
        best = summary.loc[summary["diff"].idxmax()] if summary["diff"].notna().any() else summary.iloc[0]
        gain_text = (f"no activation-based selector beat random reliably (largest difference "
                     f"{best['diff']:+.3f} by {best['best_selector']}, not significant after BH at {alpha})")
    if chance:
        rho_text = (f"no correlation between a statistic and example quality is reliably stronger than the paper "
                    f"reports: the largest, |ρ| = {max_abs:.2f} ({top['max_rho_cell']}), exceeds {rho_threshold:.2f} "
                    f"but is not significant after BH over the grid (q = {top_q:.2g} > {alpha})")
    elif np.isfinite(max_abs):
        rho_text = (f"the strongest correlation between a statistic and example quality is "
                    f"{'weak' if weak else 'stronger than the paper reports'}: max |ρ| = {max_abs:.2f} "
                    f"({top['max_rho_cell']}) {'≤' if weak else '>'} {rho_threshold:.2f}"
                    + ("" if weak or not np.isfinite(top_q) else f", BH q = {top_q:.2g}"))
    else:
        rho_text = "no correlation grid was given"
    holds = (not reliable) and weak
    head = f"The paper's finding {'HOLDS' if holds else 'DOES NOT HOLD'} on {model}"
    return Verdict(holds=holds, reliable_gain=reliable, weak_correlation=weak, max_abs_rho=max_abs,
                   text=f"{head}: {gain_text}; {rho_text}.", details=details)


def format_summary(summary: pd.DataFrame, family: str = "activation") -> str:
    """The summary table as aligned plain text (means with 95% CIs), for terminals and logs;
    ``family`` names the selector family compared with random (``activation``, ``SAE``)."""
    columns = [("task", "<"), ("metric", "<"), ("k", ">"), ("random [95% CI]", "<"), (f"best {family} selector [95% CI]", "<"),
               ("diff", ">"), ("p(t)", ">"), ("d_z", ">"), ("max|ρ|", ">"), ("cell", "<")]
    rows = []
    for _, r in summary.iterrows():
        rows.append([
            str(r.get("task", "")), str(r.get("metric", "")), str(int(r["budget"])),
            f"{r['random_mean']:.3f} [{r['random_ci_low']:.3f}, {r['random_ci_high']:.3f}]",
            f"{r['best_selector']} {r['best_mean']:.3f} [{r['best_ci_low']:.3f}, {r['best_ci_high']:.3f}]",
            f"{r['diff']:+.3f}", f"{r['p_ttest']:.3g}", f"{r['cohen_dz']:.2f}", f"{r.get('max_abs_rho', np.nan):.2f}",
            str(r.get("max_rho_cell", "")),
        ])
    widths = [max([len(name)] + [len(row[j]) for row in rows]) for j, (name, _) in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(f"{c:{align}{w}}" for c, (_, align), w in zip(cells, columns, widths)).rstrip()

    body = [line(row) for row in rows]
    header = line([name for name, _ in columns])
    return "\n".join([header, "-" * max(len(x) for x in [header, *body])] + body)
