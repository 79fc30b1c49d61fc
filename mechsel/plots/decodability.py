"""Out-of-fold R² of ridge probes of quality by layer, one panel per mask, the baselines as bands."""

from __future__ import annotations

from typing import cast

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from mechsel.plots._frames import TEMPLATE, only

__all__ = ["decodability_by_layer"]

_BAND_COLOURS = ("rgba(120,120,120,0.18)", "rgba(31,119,180,0.15)", "rgba(214,39,40,0.13)")


def decodability_by_layer(table: pd.DataFrame, *, task: str | None = None) -> go.Figure:
    """R² of each layer's probe with its bootstrap interval (error bars), per mask; each baseline's
    R² interval as a shaded band across the layers and its R² as a dashed line; 0 marked."""
    t = only(table, "decodability", task=task)
    reps = cast(pd.DataFrame, t[t["kind"] == "representation"]).sort_values(by="layer")
    base = cast(pd.DataFrame, t[t["kind"] == "baseline"])
    masks = list(dict.fromkeys(reps["mask"]))
    fig = make_subplots(rows=1, cols=max(1, len(masks)), shared_yaxes=True, subplot_titles=[f"mask {m}" for m in masks])
    lo_x, hi_x = (float(reps["layer"].min()) - 0.5, float(reps["layer"].max()) + 0.5) if not reps.empty else (0.0, 1.0)
    for col, mask in enumerate(masks, start=1):
        for i, (_, b) in enumerate(base.iterrows()):
            colour = _BAND_COLOURS[i % len(_BAND_COLOURS)]
            fig.add_trace(
                go.Scatter(
                    x=[lo_x, hi_x, hi_x, lo_x],
                    y=[b["ci_low"], b["ci_low"], b["ci_high"], b["ci_high"]],
                    fill="toself",
                    fillcolor=colour,
                    mode="lines",
                    line={"width": 0},
                    name=f"{b['baseline_name']} (baseline)",
                    legendgroup=str(b["baseline_name"]),
                    showlegend=col == 1,
                    hovertemplate=f"{b['baseline_name']}: R² {b['r2']:.3f} [{b['ci_low']:.3f}, {b['ci_high']:.3f}]<extra></extra>",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=[lo_x, hi_x],
                    y=[b["r2"], b["r2"]],
                    mode="lines",
                    line={"dash": "dash", "color": colour.replace("0.18", "0.9").replace("0.15", "0.9").replace("0.13", "0.9")},
                    legendgroup=str(b["baseline_name"]),
                    showlegend=False,
                    hoverinfo="skip",
                ),
                row=1,
                col=col,
            )
        part = cast(pd.DataFrame, reps[reps["mask"] == mask])
        fig.add_trace(
            go.Scatter(
                x=part["layer"],
                y=part["r2"],
                mode="lines+markers",
                name="mean hook_mlp_out probe",
                legendgroup="probe",
                showlegend=col == 1,
                line={"color": "black"},
                error_y={
                    "type": "data",
                    "symmetric": False,
                    "array": part["ci_high"] - part["r2"],
                    "arrayminus": part["r2"] - part["ci_low"],
                },
                customdata=part[["p_value", "gain", "gain_low", "gain_high"]].to_numpy(),
                hovertemplate=(
                    "layer %{x}<br>R² %{y:.3f}<br>p %{customdata[0]:.3g}<br>gain over the best baseline "
                    "%{customdata[1]:+.3f} [%{customdata[2]:+.3f}, %{customdata[3]:+.3f}]<extra></extra>"
                ),
            ),
            row=1,
            col=col,
        )
        fig.add_hline(y=0, line_color="gray", line_width=1, row=1, col=col)  # pyright: ignore[reportArgumentType]
        fig.update_xaxes(title_text="layer", row=1, col=col)
    target = t["target"].iloc[0] if "target" in t.columns and not t.empty else "quality"
    tsk = task or (t["task"].iloc[0] if "task" in t.columns and not t.empty else "")
    fig.update_yaxes(title_text=f"out-of-fold R² ({target})", row=1, col=1)
    fig.update_layout(template=TEMPLATE, title=f"Is quality linearly decodable? Ridge probes by layer — {tsk}", legend_title_text="")
    return fig
