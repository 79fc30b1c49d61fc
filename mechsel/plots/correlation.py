"""Figures of the correlation grid: ρ heatmaps, |ρ| by layer, and the best statistic's scatter."""

from __future__ import annotations

import html
import textwrap
from typing import cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mechsel.errors import DataError
from mechsel.plots._frames import PAPER_RHO_BOUND, TEMPLATE, only, suffix

__all__ = ["rho_heatmap", "abs_rho_by_layer", "best_statistic_scatter", "monotone_trend"]


def _heatmap_trace(cell: pd.DataFrame, showscale: bool) -> go.Heatmap:
    pivot = cell.pivot_table(index="layer", columns="statistic", values="rho", aggfunc="first").sort_index()
    sig = (
        cell.pivot_table(index="layer", columns="statistic", values="significant", aggfunc="first").reindex_like(pivot)
        if "significant" in cell.columns
        else None
    )
    text = np.vectorize(lambda v: "" if not np.isfinite(v) else f"{v:+.2f}")(pivot.to_numpy(dtype=float))
    if sig is not None:
        text = np.where(sig.fillna(False).to_numpy(dtype=bool), np.char.add(text.astype(str), "*"), text)
    return go.Heatmap(
        z=pivot.to_numpy(dtype=float),
        x=list(pivot.columns),
        y=[str(v) for v in pivot.index],
        zmin=-1,
        zmax=1,
        zmid=0,
        colorscale="RdBu",
        reversescale=True,
        text=text,
        texttemplate="%{text}",
        showscale=showscale,
        colorbar={"title": {"text": "ρ"}},
        hovertemplate="layer %{y}<br>%{x}<br>ρ = %{z:.3f}<extra></extra>",
    )


def rho_heatmap(grid: pd.DataFrame, *, task: str | None = None, family: str | None = None) -> go.Figure:
    """Spearman ρ (statistic vs example quality) as a layer × statistic heatmap, one panel per mask.

    Cells significant after Benjamini–Hochberg are starred.
    """
    g = only(grid, "grid", task=task, family=family)
    masks = sorted(g["mask"].unique()) if "mask" in g.columns else [None]
    fig = make_subplots(
        rows=1,
        cols=len(masks),
        subplot_titles=[f"mask: {m}" for m in masks] if masks[0] else None,
        shared_yaxes=True,
        horizontal_spacing=0.06,
    )
    for j, mask in enumerate(masks, start=1):
        cell = g if mask is None else cast(pd.DataFrame, g[g["mask"] == mask])
        fig.add_trace(_heatmap_trace(cell, showscale=j == len(masks)), row=1, col=j)
        fig.update_xaxes(title_text="statistic", row=1, col=j)
    fig.update_yaxes(title_text="layer", row=1, col=1)
    tsk = task or (g["task"].iloc[0] if "task" in g.columns else None)
    fig.update_layout(
        template=TEMPLATE,
        title=f"Spearman ρ with example quality{suffix(task=tsk, family=family)} (* BH q ≤ 0.05)",
        height=max(350, 28 * g["layer"].nunique() + 150),
        width=max(500, 320 * len(masks)),
    )
    return fig


def abs_rho_by_layer(grid: pd.DataFrame, *, task: str | None = None, family: str | None = None) -> go.Figure:
    """|ρ| against layer, one line per (statistic, mask), with the paper's |ρ| ≈ 0.33 bound dashed."""
    g = only(grid, "grid", task=task, family=family).sort_values("layer")
    fig = go.Figure()
    group_cols = ["statistic"] + (["mask"] if "mask" in g.columns else [])
    for key, cell in g.groupby(group_cols, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        name = " / ".join(str(k) for k in key)
        fig.add_trace(
            go.Scatter(
                x=cell["layer"],
                y=cell["rho"].abs(),
                mode="lines+markers",
                name=name,
                line={"dash": "dot"} if len(key) > 1 and key[1] != "full" else None,
                hovertemplate=f"{name}<br>layer %{{x}}<br>|ρ| = %{{y:.3f}}<extra></extra>",
            )
        )
    fig.add_hline(y=PAPER_RHO_BOUND, line_dash="dash", line_color="gray", annotation_text="paper's |ρ| ≈ 0.33")
    tsk = task or (g["task"].iloc[0] if "task" in g.columns else None)
    fig.update_layout(
        template=TEMPLATE,
        title=f"|ρ| with example quality by layer{suffix(task=tsk, family=family)}",
        xaxis_title="layer",
        yaxis_title="|ρ|",
        yaxis_range=[0, 1],
        legend_title_text="statistic / mask",
    )
    return fig


def monotone_trend(x: np.ndarray, y: np.ndarray, *, increasing: bool) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic (``increasing``) or antitonic least-squares fit of ``y`` on ``x``: the closest
    monotone curve, the trend a rank correlation describes (it depends on ``x`` only through its
    order). Tied ``x`` share one fitted value. Returns the distinct ``x`` (sorted) and the fit."""
    from scipy.optimize import isotonic_regression

    xs, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    means = np.bincount(inverse, weights=y) / counts
    return xs, isotonic_regression(means, weights=counts, increasing=increasing).x


def _hover_text(text: str, width: int = 60, limit: int = 300) -> str:
    """An example's text for a hover label: shortened, HTML-escaped, wrapped with ``<br>``."""
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return "<br>".join(html.escape(line, quote=False) for line in textwrap.wrap(text, width)) or "(empty)"


def best_statistic_scatter(
    stats: pd.DataFrame,
    quality: pd.DataFrame,
    cell: dict[str, object],
    *,
    rho: float | None = None,
    examples: pd.DataFrame | None = None,
) -> go.Figure:
    """Scatter of one grid cell's statistic against example quality, with a monotone trend.

    The trend is the isotonic fit (monotone least squares) in the direction of the points'
    Spearman ρ, so it agrees with the rank correlation in the title: it only uses the order of the
    statistic and bends where the ranks do, where a straight least-squares line would follow a
    few extreme values. Every point's hover shows its example id, text (when ``examples`` is
    given), statistic and quality.

    Args:
        stats: tidy statistics frame (``example_id``, ``value`` and the cell's key columns).
        quality: ``example_id``, ``quality``.
        cell: the key columns and values picking one cell, e.g. ``{"layer": 5, "statistic":
            "kurtosis", "mask": "full"}`` (a line of the grid as a dict works).
        rho: the cell's ρ, shown in the title when given.
        examples: the run's ``examples`` table (``example_id``, ``text``; ``subset`` and ``task``
            when present pick the candidates of the cell's task), for the hover text.
    """
    sel = stats
    for col, val in cell.items():
        if col in sel.columns:
            sel = cast(pd.DataFrame, sel[sel[col] == val])
    if sel.empty:
        raise DataError(f"No statistics match the cell {cell}.")
    on = ["example_id"] + (["task"] if "task" in sel.columns and "task" in quality.columns else [])
    data = sel.merge(quality[on + ["quality"]], on=on).dropna(subset=["value", "quality"])
    x, y = data["value"].to_numpy(float), data["quality"].to_numpy(float)
    ids = data["example_id"].astype(str).to_numpy()
    texts = np.full(len(ids), "", dtype=object)
    if examples is not None:
        if not {"example_id", "text"} <= set(examples.columns):
            raise DataError(f"The examples frame needs columns ['example_id', 'text']; it has {list(examples.columns)}.")
        ex = examples
        if "subset" in ex.columns:
            ex = cast(pd.DataFrame, ex[ex["subset"] == "candidate"])
        if "task" in ex.columns and "task" in cell:
            ex = cast(pd.DataFrame, ex[ex["task"] == cell["task"]])
        by_id = dict(zip(ex["example_id"].astype(str), ex["text"], strict=True))
        texts = np.array([_hover_text(by_id[i]) if i in by_id else "(text not in the examples table)" for i in ids], dtype=object)
    label = f"layer {cell.get('layer')} {cell.get('statistic')}" + (f" ({cell['mask']})" if "mask" in cell else "")
    fig = go.Figure(
        go.Scatter(
            x=x,
            y=y,
            mode="markers",
            name="examples",
            customdata=np.stack([ids, texts], axis=-1) if len(ids) else None,
            marker={"size": 6, "opacity": 0.7},
            hovertemplate="example %{customdata[0]}<br>%{customdata[1]}<br>statistic %{x:.4g}<br>quality %{y:.3f}<extra></extra>",
        )
    )
    if len(x) >= 3 and np.ptp(x) > 0 and np.ptp(y) > 0:
        from scipy.stats import spearmanr

        rho_points = float(spearmanr(x, y).statistic)  # pyright: ignore[reportAttributeAccessIssue]
        if np.isfinite(rho_points):
            increasing = rho_points >= 0
            xs, fit = monotone_trend(x, y, increasing=increasing)
            fig.add_trace(
                go.Scatter(
                    x=xs,
                    y=fit,
                    mode="lines",
                    name=f"monotone trend: isotonic fit, {'increasing' if increasing else 'decreasing'} (the sign of ρ)",
                    line={"color": "firebrick", "shape": "linear"},
                    hovertemplate="isotonic fit<br>statistic %{x:.4g}<br>quality %{y:.3f}<extra></extra>",
                )
            )
    title = f"Example quality vs {label}" + (f" (Spearman ρ = {rho:+.2f})" if rho is not None else "")
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        xaxis_title=label,
        yaxis_title="example quality (1-shot dev score)",
        legend={"orientation": "h", "x": 0, "y": 1.0, "yanchor": "bottom"},
        hoverlabel={"align": "left"},
    )
    return fig
