"""Head scores as a layer × head heatmap (induction or function-vector scores)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mechsel.errors import DataError
from mechsel.plots._frames import TEMPLATE, only, suffix

__all__ = ["head_scores_heatmap"]

_LABELS = {
    "induction": ("induction score", "Induction scores"),
    "function_vector": ("AIE", "Function-vector heads: average indirect effect"),
}
MAX_CELL_TEXT = 400
"""Cells are labelled with their value up to this many heads (beyond, the text is unreadable)."""


def head_scores_heatmap(frame: pd.DataFrame, *, kind: str | None = None, model: str | None = None, mark_top: int = 0) -> go.Figure:
    """Scores per (layer, head), layers on the y axis (0 at the bottom), heads on the x axis.

    Args:
        frame: tidy frame from :meth:`mechsel.heads.HeadScores.to_frame` (``layer``, ``head``,
            ``score``; optional ``stderr``, ``rank``, ``kind``, ``model``).
        kind, model: which part to draw when the frame holds several.
        mark_top: outline the ``mark_top`` best heads (by ``rank``, else by score); 0 marks none.

    Induction scores (in ``[0, 1]``) use a sequential scale from 0 to 1; other scores (the AIE can
    be negative) a diverging scale centred on 0. Hover shows the score and, when known, its
    standard error and rank.
    """
    need = {"layer", "head", "score"}
    if not need <= set(frame.columns):
        raise DataError(f"The head-scores frame needs columns {sorted(need)}; it has {list(frame.columns)} (use HeadScores.to_frame()).")
    f = only(frame, "head scores", kind=kind, model=model)
    knd = kind or (str(f["kind"].iloc[0]) if "kind" in f.columns else "")
    mdl = model or (str(f["model"].iloc[0]) if "model" in f.columns else None)
    if f.duplicated(["layer", "head"]).any():
        raise DataError("The head-scores frame holds several scores for one (layer, head); pass kind=... or model=... to pick one.")
    z = f.pivot(index="layer", columns="head", values="score").sort_index().sort_index(axis=1)
    layers, heads = [int(v) for v in z.index], [int(v) for v in z.columns]
    extra = [c for c in ("stderr", "rank") if c in f.columns]
    custom = (
        np.stack([f.pivot(index="layer", columns="head", values=c).reindex_like(z).to_numpy(float) for c in extra], axis=-1)
        if extra
        else None
    )
    hover = "layer %{y}, head %{x}<br>score = %{z:.3f}"
    for i, c in enumerate(extra):
        hover += f"<br>{c} = %{{customdata[{i}]:{'.3f' if c == 'stderr' else '.0f'}}}"
    colorbar_title, title = _LABELS.get(knd, ("score", "Head scores"))
    sequential = knd == "induction"
    values = z.to_numpy(float)
    fig = go.Figure(
        go.Heatmap(
            z=values,
            x=heads,
            y=layers,
            colorscale="Viridis" if sequential else "RdBu",
            reversescale=not sequential,
            zmin=0.0 if sequential else None,
            zmax=1.0 if sequential else None,
            zmid=None if sequential else 0.0,
            text=np.vectorize(lambda v: f"{v:.2f}")(values) if values.size <= MAX_CELL_TEXT else None,
            texttemplate="%{text}" if values.size <= MAX_CELL_TEXT else None,
            customdata=custom,
            colorbar={"title": {"text": colorbar_title}},
            hovertemplate=hover + "<extra></extra>",
        )
    )
    if mark_top > 0:
        order = f.sort_values("rank") if "rank" in f.columns else f.sort_values("score", ascending=False, kind="stable")
        best = order.head(mark_top)
        fig.add_trace(
            go.Scatter(
                x=best["head"].astype(int).tolist(),
                y=best["layer"].astype(int).tolist(),
                mode="markers",
                marker={"symbol": "square-open", "size": 18, "color": "black", "line": {"width": 2}},
                name=f"top {mark_top}",
                hoverinfo="skip",
            )
        )
    fig.update_xaxes(title_text="head", tickmode="array", tickvals=heads)
    fig.update_yaxes(title_text="layer", tickmode="array", tickvals=layers)
    fig.update_layout(
        template=TEMPLATE,
        title=f"{title}{suffix(model=mdl)}",
        width=max(450, 40 * len(heads) + 250),
        height=max(350, 28 * len(layers) + 150),
    )
    return fig
