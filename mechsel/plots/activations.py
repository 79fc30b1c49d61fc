"""Activation distributions per layer for the best and the worst demonstrations."""

from __future__ import annotations

from typing import cast

import pandas as pd
import plotly.graph_objects as go

from mechsel.errors import DataError
from mechsel.plots._frames import TEMPLATE, only, suffix

__all__ = ["activation_distributions"]

_SIDES = {"best": ("negative", "seagreen"), "worst": ("positive", "indianred")}


def activation_distributions(samples: pd.DataFrame, *, task: str | None = None, mask: str | None = None) -> go.Figure:
    """Split violins of ``hook_mlp_out`` values per layer: best examples left, worst right.

    Args:
        samples: tidy frame with ``layer``, ``group`` (``"best"`` / ``"worst"``) and ``value``
            (activation values sampled from those examples' tokens), e.g. the runner's
            ``activation_samples.parquet``.
    """
    need = {"layer", "group", "value"}
    if not need <= set(samples.columns):
        raise DataError(f"The samples frame needs columns {sorted(need)}; it has {list(samples.columns)}.")
    s = only(samples, "samples", task=task, mask=mask)
    unknown = set(s["group"].unique()) - set(_SIDES)
    if unknown:
        raise DataError(f"Unknown group(s) {sorted(unknown)}; expected 'best' and 'worst'.")
    fig = go.Figure()
    for group, (side, color) in _SIDES.items():
        part = cast(pd.DataFrame, s[s["group"] == group])
        if part.empty:
            continue
        n_ex = part["example_id"].nunique() if "example_id" in part.columns else None
        fig.add_trace(
            go.Violin(
                x=part["layer"].astype(str),
                y=part["value"],
                side=side,
                name=f"{group} examples" + (f" (n={n_ex})" if n_ex else ""),
                line_color=color,
                points=False,
                spanmode="hard",
                scalemode="width",
                meanline_visible=True,
            )
        )
    tsk = task or (s["task"].iloc[0] if "task" in s.columns else None)
    msk = mask or (s["mask"].iloc[0] if "mask" in s.columns else None)
    fig.update_layout(
        template=TEMPLATE,
        violinmode="overlay",
        violingap=0.1,
        title=f"hook_mlp_out values per layer, best vs worst demonstrations{suffix(task=tsk, mask=msk)}",
        xaxis_title="layer",
        yaxis_title="activation value",
        legend_title_text="by example quality",
    )
    return fig
