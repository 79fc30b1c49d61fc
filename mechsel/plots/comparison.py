"""Selector comparison figure: mean test score with its 95% CI over seeds (kept inside the
metric's range by :func:`mechsel.analysis.compare_selectors`), and every seed's score as a point."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mechsel.plots._frames import TEMPLATE, only, suffix

__all__ = ["selector_comparison"]


def selector_comparison(
    comparison: pd.DataFrame,
    *,
    scores: pd.DataFrame | None = None,
    task: str | None = None,
    metric: str | None = None,
    baseline: str = "random",
) -> go.Figure:
    """Grouped bars, one group per budget k and one bar per selector, with CI error bars.

    Args:
        comparison: output of :func:`mechsel.analysis.compare_selectors`.
        scores: the per-run scores it was computed from (``selector``, ``budget``, ``seed``,
            ``score``); when given, every seed's score is drawn as a point over its bar.
        task, metric: which comparison to draw when the frame holds several.
        baseline: drawn first, for reference.

    Bars whose paired test against the baseline has p < 0.05 (unadjusted) are outlined in black.
    """
    c = only(comparison, "comparison", task=task, metric=metric)
    budgets = sorted(c["budget"].unique())
    x = [f"k = {b}" for b in budgets]
    names = [baseline] + sorted(s for s in c["selector"].unique() if s != baseline)
    fig = go.Figure()
    for name in names:
        sel = c[c["selector"] == name].set_index("budget").reindex(budgets)
        mean = sel["mean"].to_numpy(float)
        p = sel["p_ttest"].to_numpy(float) if "p_ttest" in sel else np.full(len(budgets), np.nan)
        sig = np.nan_to_num(p, nan=1.0) < 0.05
        fig.add_trace(
            go.Bar(
                x=x,
                y=mean,
                name=name,
                offsetgroup=name,
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": sel["ci_high"].to_numpy(float) - mean,
                    "arrayminus": mean - sel["ci_low"].to_numpy(float),
                },
                marker={"line": {"width": np.where(sig, 2.0, 0.0).tolist(), "color": "black"}},
                customdata=np.stack([sel["ci_low"], sel["ci_high"], p, sel["n_seeds"]], axis=-1),
                hovertemplate=(
                    f"{name}<br>%{{x}}<br>mean %{{y:.3f}} [%{{customdata[0]:.3f}}, %{{customdata[1]:.3f}}]"
                    "<br>paired t p = %{customdata[2]:.3g}<br>seeds %{customdata[3]}<extra></extra>"
                ),
            )
        )
    if scores is not None:
        runs = only(scores, "scores", task=task, metric=metric)
        for name in names:
            pts = cast(pd.DataFrame, runs[runs["selector"] == name]).sort_values(["budget", "seed"])
            if pts.empty:
                continue
            fig.add_trace(
                go.Scatter(
                    x=[f"k = {b}" for b in pts["budget"]],
                    y=pts["score"].to_numpy(float),
                    mode="markers",
                    name=f"{name} (seeds)",
                    legendgroup=name,
                    showlegend=False,
                    offsetgroup=name,
                    marker={"color": "black", "size": 5, "opacity": 0.6},
                    customdata=pts["seed"].to_numpy(),
                    hovertemplate=f"{name}<br>%{{x}}<br>seed %{{customdata}}: %{{y:.3f}}<extra></extra>",
                )
            )
        fig.update_layout(scattermode="group")
    tsk = task or (c["task"].iloc[0] if "task" in c.columns else None)
    met = metric or (c["metric"].iloc[0] if "metric" in c.columns else "score")
    lows = [c["ci_low"].to_numpy(float), c["mean"].to_numpy(float)]
    highs = [c["ci_high"].to_numpy(float), c["mean"].to_numpy(float)]
    if scores is not None:
        lows.append(runs["score"].to_numpy(float))
        highs.append(runs["score"].to_numpy(float))
    lo, hi = np.nanmin(np.concatenate(lows)), np.nanmax(np.concatenate(highs))
    pad = 0.1 * max(hi - lo, 1e-3)
    fig.update_layout(
        template=TEMPLATE,
        barmode="group",
        title=f"Selectors vs {baseline}: mean test {met}, 95% CI and each seed{suffix(task=tsk)}",
        xaxis_title="budget (number of demonstrations)",
        yaxis_title=f"test {met}",
        yaxis_range=[lo - pad, hi + pad],
        legend_title_text="selector",
    )
    return fig
