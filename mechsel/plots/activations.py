"""Activation distributions per layer for the best and the worst demonstrations.

``hook_mlp_out`` holds a few values near ±10⁴ among a bulk of order 1, so a linear axis shows
the outliers and flattens every distribution into a line. The values are therefore drawn on a
symmetric-log axis, ``sign(x)·log10(1 + |x|/c)``: linear-like within ±c, logarithmic beyond,
monotone, so quartiles and medians keep their order and meaning; the ticks are labelled with the
original values. ``c`` defaults to the 10th percentile of |value| over the samples drawn: the
bulk of every layer (whose scale grows by orders of magnitude with depth) then lies on the
logarithmic part, so its shape shows, and the rare values near ±10⁴ stay on the plot.
"""

from __future__ import annotations

from typing import Literal, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from mechsel.errors import ConfigError, DataError
from mechsel.plots._frames import TEMPLATE, only, suffix

__all__ = ["activation_distributions", "symlog", "symlog_ticks"]

_SIDES = {"best": ("negative", "seagreen"), "worst": ("positive", "indianred")}
AxisScale = Literal["symlog", "linear"]
LINTHRESH_QUANTILE = 0.1
"""Default ``c`` of the symmetric-log axis: this quantile of |value|."""


def symlog(x: np.ndarray, c: float) -> np.ndarray:
    """``sign(x)·log10(1 + |x|/c)``: monotone, odd, ≈ ``x / (c·ln 10)`` near 0, ``log10(|x|/c)`` far out."""
    return np.sign(x) * np.log10(1.0 + np.abs(x) / c)


def symlog_ticks(c: float, max_abs: float) -> tuple[list[float], list[str]]:
    """Tick positions on the :func:`symlog` axis and their labels in original values: 0 and ±10ᵏ
    for every decade from ``c`` up to ``max_abs`` (the first at least ``log10 2`` from 0)."""
    lo = int(np.ceil(np.log10(c)))
    hi = max(lo, int(np.ceil(np.log10(max(max_abs, c)))))
    values = [0.0] + [s * 10.0**k for k in range(lo, hi + 1) for s in (1.0, -1.0)]
    values.sort()
    return [float(symlog(np.array(v), c)) for v in values], [_label(v) for v in values]


def _label(v: float) -> str:
    if v == 0:
        return "0"
    return f"{v:,.0f}" if abs(v) >= 1 else f"{v:g}"


def _nice(c: float) -> float:
    """``c`` rounded to one significant digit (a scale a reader can quote)."""
    return float(f"{c:.0e}")


def activation_distributions(
    samples: pd.DataFrame,
    *,
    task: str | None = None,
    mask: str | None = None,
    scale: AxisScale = "symlog",
    linthresh: float | None = None,
) -> go.Figure:
    """Split violins of ``hook_mlp_out`` values per layer: best examples left, worst right, each
    with its quartile box; a marker at each median carries the quartiles and range, in original
    values, on hover.

    Args:
        samples: tidy frame with ``layer``, ``group`` (``"best"`` / ``"worst"``) and ``value``
            (activation values sampled from those examples' tokens), e.g. the runner's
            ``activation_samples.parquet``.
        task, mask: which part to draw when the frame holds several.
        scale: ``"symlog"`` (default, see the module docstring) or ``"linear"``.
        linthresh: ``c`` of the symmetric-log axis; default: the 10th percentile of |value|
            drawn, rounded to one significant digit.
    """
    need = {"layer", "group", "value"}
    if not need <= set(samples.columns):
        raise DataError(f"The samples frame needs columns {sorted(need)}; it has {list(samples.columns)}.")
    if scale not in ("symlog", "linear"):
        raise ConfigError(f"scale must be 'symlog' (symmetric log, the default) or 'linear', got {scale!r}.")
    s = only(samples, "samples", task=task, mask=mask)
    unknown = set(s["group"].unique()) - set(_SIDES)
    if unknown:
        raise DataError(f"Unknown group(s) {sorted(unknown)}; expected 'best' and 'worst'.")
    values = s["value"].to_numpy(float)
    finite = values[np.isfinite(values)]
    if linthresh is not None:
        if not linthresh > 0:
            raise ConfigError(
                f"linthresh is the scale c of sign(x)·log10(1 + |x|/c) and must be positive, got {linthresh!r}; "
                f"omit it to use the {LINTHRESH_QUANTILE:.0%} quantile of |value|."
            )
        c = float(linthresh)
    else:
        c = _nice(float(np.quantile(np.abs(finite), LINTHRESH_QUANTILE))) if finite.size else 0.0
        c = c if c > 0 else 1.0  # no finite value, or a tenth of them exactly zero

    def axis(v: np.ndarray) -> np.ndarray:
        return np.round(symlog(v, c), 4) if scale == "symlog" else v

    fig = go.Figure()
    for group, (side, color) in _SIDES.items():
        part = cast(pd.DataFrame, s[s["group"] == group])
        if part.empty:
            continue
        n_ex = part["example_id"].nunique() if "example_id" in part.columns else None
        name = f"{group} examples" + (f" (n={n_ex})" if n_ex else "")
        fig.add_trace(
            go.Violin(
                x=part["layer"].astype(str),
                y=axis(part["value"].to_numpy(float)),
                side=side,
                name=name,
                legendgroup=group,
                line_color=color,
                points=False,
                spanmode="hard",
                scalemode="width",
                box_visible=True,
                hoverinfo="skip",  # the axis units are transformed; the median markers hover in original values
            )
        )
        q = cast(pd.DataFrame, part.groupby("layer")["value"].quantile(np.array([0.0, 0.25, 0.5, 0.75, 1.0])).unstack())
        fig.add_trace(
            go.Scatter(
                x=[str(layer) for layer in q.index],
                y=axis(q[0.5].to_numpy(float)),
                mode="markers",
                name=f"{group} median",
                legendgroup=group,
                showlegend=False,
                marker={"color": color, "size": 6, "symbol": "diamond"},
                customdata=q[[0.5, 0.25, 0.75, 0.0, 1.0]].to_numpy(float),
                hovertemplate=(
                    f"{group} examples, layer %{{x}}<br>median %{{customdata[0]:.4g}}"
                    "<br>quartiles [%{customdata[1]:.4g}, %{customdata[2]:.4g}]"
                    "<br>range [%{customdata[3]:.4g}, %{customdata[4]:.4g}]<extra></extra>"
                ),
            )
        )
    tsk = task or (s["task"].iloc[0] if "task" in s.columns else None)
    msk = mask or (s["mask"].iloc[0] if "mask" in s.columns else None)
    if scale == "symlog":
        tickvals, ticktext = symlog_ticks(c, float(np.abs(finite).max()) if finite.size else c)
        yaxis: dict[str, object] = {
            "title": {"text": f"activation value (symmetric log: sign(x)·log10(1 + |x|/c), c = {c:g})"},
            "tickvals": tickvals,
            "ticktext": ticktext,
            "zeroline": True,
        }
    else:
        yaxis = {"title": {"text": "activation value (linear)"}}
    fig.update_layout(
        template=TEMPLATE,
        violinmode="overlay",
        violingap=0.1,
        title=f"hook_mlp_out values per layer, best vs worst demonstrations{suffix(task=tsk, mask=msk)}",
        xaxis={"title": {"text": "layer"}, "categoryorder": "array", "categoryarray": [str(v) for v in sorted(s["layer"].unique())]},
        yaxis=yaxis,
        legend_title_text="by example quality",
        width=max(700, 45 * s["layer"].nunique() + 350),
    )
    return fig
