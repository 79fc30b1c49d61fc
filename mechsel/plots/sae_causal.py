"""Causal test figure: the change a latent ablation causes, targeted versus matched random latents."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mechsel.errors import DataError
from mechsel.plots._frames import TEMPLATE, only, suffix

__all__ = ["causal_effects"]

_SETS = (
    ("targeted", "targeted", "#d62728"),
    ("random", "random (mean of draws)", "#7f7f7f"),
    ("difference", "targeted - random", "#1f77b4"),
)


def causal_effects(table: pd.DataFrame, *, metric: str = "gold_logprob", ablation: str | None = None) -> go.Figure:
    """One panel per (layer, m): mean change versus the clean run with its interval, for the
    targeted set, the random draws' mean and their difference; each random draw is a grey point.

    Args:
        table: :attr:`mechsel.sae.causal.CausalTestResult.table`.
        metric: ``"gold_logprob"`` or ``"accuracy"``.
        ablation: ``"zero"`` or ``"mean"`` (needed when the table holds both).

    A difference whose paired t-test rejects (``significant``) is drawn with a filled marker,
    otherwise hollow.
    """
    t = only(table, "causal test", metric=metric, ablation=ablation)
    need = {"layer", "m", "kind", "effect", "ci_low", "ci_high", "p_value", "significant"}
    if not need <= set(t.columns):
        raise DataError(f"The table lacks columns {sorted(need - set(t.columns))}; pass CausalTestResult.table.")
    layers, ms = sorted(t["layer"].unique()), sorted(t["m"].unique())
    titles = [f"layer {layer}, m = {m}" for layer in layers for m in ms]
    fig = make_subplots(rows=len(layers), cols=len(ms), subplot_titles=titles, shared_yaxes=True)
    for r, layer in enumerate(layers, start=1):
        for c, m in enumerate(ms, start=1):
            cell = cast(pd.DataFrame, t[(t["layer"] == layer) & (t["m"] == m)])
            first = r == 1 and c == 1
            for kind, name, color in _SETS:
                line = cast(pd.DataFrame, cell[cell["kind"] == kind])
                if line.empty:
                    continue
                y = line["effect"].to_numpy(float)
                sig = bool(line["significant"].iloc[0])
                fig.add_trace(
                    go.Scatter(
                        x=[name],
                        y=y,
                        mode="markers",
                        name=name,
                        legendgroup=name,
                        showlegend=first,
                        marker={"color": color, "size": 11, "symbol": "circle" if sig or kind != "difference" else "circle-open"},
                        error_y={
                            "type": "data",
                            "symmetric": False,
                            "array": line["ci_high"].to_numpy(float) - y,
                            "arrayminus": y - line["ci_low"].to_numpy(float),
                        },
                        customdata=np.stack([line["ci_low"], line["ci_high"], line["p_value"]], axis=-1),
                        hovertemplate=(
                            f"{name}<br>{metric} change %{{y:.4f}} [%{{customdata[0]:.4f}}, %{{customdata[1]:.4f}}]"
                            "<br>paired t p = %{customdata[2]:.3g}<extra></extra>"
                        ),
                    ),
                    row=r,
                    col=c,
                )
            draws = cast(pd.DataFrame, cell[cell["kind"] == "random draw"])
            if not draws.empty:
                fig.add_trace(
                    go.Scatter(
                        x=["random (mean of draws)"] * len(draws),
                        y=draws["effect"].to_numpy(float),
                        mode="markers",
                        name="random draws",
                        legendgroup="random draws",
                        showlegend=first,
                        marker={"color": "black", "size": 5, "opacity": 0.5},
                        customdata=draws["draw"].to_numpy(),
                        hovertemplate="random draw %{customdata}: %{y:.4f}<extra></extra>",
                    ),
                    row=r,
                    col=c,
                )
            # plotly infers row/col as str from their "all" default; it takes subplot numbers too.
            fig.add_hline(y=0.0, line_dash="dash", line_color="gray", row=r, col=c)  # pyright: ignore[reportArgumentType]
        fig.update_yaxes(title_text=f"Δ {metric} vs clean", row=r, col=1)
    kinds = t["ablation"].unique() if "ablation" in t.columns else []
    fig.update_layout(
        template=TEMPLATE,
        title=f"Ablating SAE latents in the demonstrations: targeted vs matched random{suffix(ablation=', '.join(map(str, kinds)), metric=metric)}",
        legend_title_text="latent set",
        height=320 * len(layers) + 120,
        width=max(500, 330 * len(ms)),
    )
    return fig
