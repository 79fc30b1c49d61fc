"""SAE latent-statistic panel: ρ of SAE statistics by layer, next to the best moment per layer."""

from __future__ import annotations

from typing import cast

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mechsel.errors import DataError
from mechsel.plots._frames import PAPER_RHO_BOUND, TEMPLATE, only, suffix
from mechsel.plots.correlation import _heatmap_trace

__all__ = ["sae_panel"]


def sae_panel(grid: pd.DataFrame, *, task: str | None = None, mask: str | None = None, sae_family: str = "sae") -> go.Figure:
    """Left: ρ heatmap (layer × SAE statistic). Right: max |ρ| per layer, SAE statistics vs moments.

    The grid must carry a ``family`` column telling SAE statistics (``sae_family``) from the rest.
    """
    if "family" not in grid.columns:
        raise DataError("The grid has no 'family' column, so SAE statistics cannot be told from moments.")
    g = only(grid, "grid", task=task, mask=mask)
    sae = cast(pd.DataFrame, g[g["family"] == sae_family])
    if sae.empty:
        raise DataError(f"No {sae_family!r} statistics in the grid (families: {sorted(g['family'].unique())}).")
    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.6, 0.4],
        horizontal_spacing=0.12,
        subplot_titles=["ρ of SAE latent statistics", "max |ρ| per layer"],
    )
    fig.add_trace(_heatmap_trace(sae, showscale=True), row=1, col=1)
    for fam, cell in g.groupby("family", sort=True):
        best = cast(pd.Series, cell.assign(a=cell["rho"].abs()).groupby("layer")["a"].max())
        fig.add_trace(go.Scatter(x=best.index, y=best.values, mode="lines+markers", name=str(fam)), row=1, col=2)
    # plotly infers row/col as str from their "all" default; it takes subplot numbers too.
    fig.add_hline(y=PAPER_RHO_BOUND, line_dash="dash", line_color="gray", row=1, col=2)  # pyright: ignore[reportArgumentType]
    fig.update_xaxes(title_text="SAE statistic", row=1, col=1)
    fig.update_yaxes(title_text="layer", row=1, col=1)
    fig.update_xaxes(title_text="layer", row=1, col=2)
    fig.update_yaxes(title_text="max |ρ|", range=[0, 1], row=1, col=2)
    tsk = task or (g["task"].iloc[0] if "task" in g.columns else None)
    msk = mask or (g["mask"].iloc[0] if "mask" in g.columns else None)
    fig.update_layout(
        template=TEMPLATE,
        title=f"SAE latent statistics vs example quality{suffix(task=tsk, mask=msk)}",
        legend_title_text="statistic family",
        width=1000,
    )
    return fig
