"""A notebook/HTML view of a :class:`~mechsel.attribution.DemoAttribution`.

Two parts: the prompt's tokens coloured by the answer position's attention and by their DLA
(circuitsvis ``colored_tokens_multi``; a button per layer), and a plotly figure of the
per-segment attention share and DLA per layer plus each segment's total DLA.

Offline use. circuitsvis renders two sources for every view: ``local_src``, which inlines its
JavaScript bundle (about 1.3 MB) in the page, and ``cdn_src``, which imports it from
``https://unpkg.com/circuitsvis@<version>/dist/cdn/esm.js`` (``str()`` of a circuitsvis object
and ``show_code()`` return that one; its own ``_repr_html_`` probes the network to choose). This
view always uses ``local_src``, so its HTML needs no network for the tokens. plotly.js comes
per :data:`~mechsel.plots.io.PlotlyJS`: ``embed`` (default; inlined, about 4.5 MB, fully
offline), ``directory`` (``plotly.min.js`` written beside the file) or ``cdn`` (needs the network).
circuitsvis's element ids are random, so two renders of one view differ in those ids only.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd
import torch

from mechsel.attribution.result import DemoAttribution
from mechsel.errors import ConfigError
from mechsel.paths import atomic_write_text

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from mechsel.plots.io import PlotlyJS

__all__ = ["AttributionView", "attribution_view", "attribution_figure"]

Columns = Literal["all", "demos"]
"""Which segments the figure shows: ``all`` (BOS, demos, separators, query) or ``demos`` only."""
PLOTLYJS_CHOICES = ("embed", "directory", "cdn")


def segment_labels(attribution: DemoAttribution) -> list[str]:
    """Display label of each segment: demos carry their shown answer, e.g. ``"demo 2 (positive)"``."""
    answers = dict(zip((f"demo {i + 1}" for i in range(len(attribution.demo_answers))), attribution.demo_answers))
    return [f"{name} ({answers[name]})" if answers.get(name) else name for name in attribution.segments]


def attribution_figure(attribution: DemoAttribution, *, columns: Columns = "all", title: str | None = None) -> go.Figure:
    """Heatmaps (layer × segment) of the attention share (mean over heads) and the DLA (sum over
    heads), and a bar of each segment's total DLA."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from mechsel.plots._frames import TEMPLATE

    if columns not in ("all", "demos"):
        raise ConfigError(f"columns must be 'all' or 'demos', got {columns!r}.")
    keep = [i for i, s in enumerate(attribution.segments) if columns == "all" or s.startswith("demo ")]
    labels = [segment_labels(attribution)[i] for i in keep]
    share = attribution.attention_shares.mean(axis=1)[:, keep]
    dla = attribution.segment_dla.sum(axis=1)[:, keep]
    layers = list(range(share.shape[0]))
    bound = float(np.abs(dla).max()) or 1.0
    n = len(layers)
    fig = make_subplots(
        rows=3,
        cols=1,
        row_heights=[0.4, 0.4, 0.2],
        vertical_spacing=0.09,
        subplot_titles=(
            "Attention share of the answer position (mean over heads)",
            "Direct logit attribution (sum over heads)",
            "Total DLA",
        ),
    )
    fig.add_trace(
        go.Heatmap(
            z=share,
            x=labels,
            y=layers,
            coloraxis="coloraxis",
            hovertemplate="layer %{y}<br>%{x}<br>share %{z:.3f}<extra></extra>",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Heatmap(z=dla, x=labels, y=layers, coloraxis="coloraxis2", hovertemplate="layer %{y}<br>%{x}<br>DLA %{z:.4g}<extra></extra>"),
        row=2,
        col=1,
    )
    fig.add_trace(go.Bar(x=labels, y=dla.sum(axis=0), marker_color="slategray", name="total DLA", showlegend=False), row=3, col=1)
    gold = attribution.label_names[attribution.gold]
    fig.update_layout(
        template=TEMPLATE,
        title=title or f"Per-segment attribution of the answer ({gold} vs the other labels, logit diff {attribution.logit_diff:.3f})",
        height=max(700, 360 + 44 * n),
        coloraxis={"colorscale": "Blues", "cmin": 0.0, "colorbar": {"title": "share", "y": 0.8, "len": 0.36}},
        coloraxis2={
            "colorscale": "RdBu",
            "cmid": 0.0,
            "cmin": -bound,
            "cmax": bound,
            "colorbar": {"title": "DLA<br>(blue: for gold)", "y": 0.37, "len": 0.36},
        },
    )
    for row in (1, 2):
        fig.update_yaxes(title_text="layer", autorange="reversed", dtick=1 if n <= 24 else None, row=row, col=1)
    fig.update_yaxes(title_text="logit diff", row=3, col=1)
    return fig


def token_view(attribution: DemoAttribution) -> Any:
    """The prompt's tokens coloured by attention and DLA (circuitsvis ``colored_tokens_multi``):
    one button per layer (attention mean over heads; DLA sum over heads) and the all-layer ones."""
    from circuitsvis.tokens import colored_tokens_multi

    attention = attribution.attention.mean(axis=1)  # [layer, pos]
    dla = attribution.dla.sum(axis=1)
    columns = [attention.mean(axis=0), *attention, dla.sum(axis=0), *dla]
    labels = (
        ["attention: mean of layers"]
        + [f"attention: layer {i}" for i in range(len(attention))]
        + ["DLA: all layers"]
        + [f"DLA: layer {i}" for i in range(len(dla))]
    )
    values = torch.tensor(np.stack(columns, axis=1), dtype=torch.float32)
    return colored_tokens_multi(list(attribution.token_strings), values, labels=labels)


def _summary_table(attribution: DemoAttribution) -> str:
    shares = attribution.attention_shares.mean(axis=(0, 1))
    totals = attribution.segment_dla.sum(axis=(0, 1))
    sizes = np.bincount(attribution.token_segment, minlength=len(attribution.segments))
    ids = dict(zip((f"demo {i + 1}" for i in range(len(attribution.demo_ids))), attribution.demo_ids))
    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(str(ids.get(name, '')))}</td><td>{n}</td>"
        f"<td>{share:.3f}</td><td>{total:+.4f}</td></tr>"
        for name, label, n, share, total in zip(attribution.segments, segment_labels(attribution), sizes, shares, totals)
    )
    head = "<tr><th>segment</th><th>example id</th><th>tokens</th><th>attention share (mean over layers, heads)</th><th>DLA</th></tr>"
    terms = cast(pd.Series, attribution.other_terms.groupby("term", sort=False)["dla"].sum())
    other = ", ".join(f"{html.escape(str(t))} {v:+.4f}" for t, v in terms.items())
    return (
        f"<table class='mechsel-attribution'>{head}{rows}</table>"
        f"<p>Other terms: {other}. Sum of all parts {attribution.reconstructed_logit_diff:.5f}; the model's logit difference "
        f"{attribution.logit_diff:.5f} (|error| {attribution.identity_error:.2g}).</p>"
    )


def _closed_root_div(source: str) -> str:
    """circuitsvis opens its root element as ``<div id=... />``, which HTML reads as an open
    ``<div>``: everything after it would become its child and be replaced when React renders
    into it. Close it explicitly."""
    return re.sub(r"<div([^>]*?)\s*/>", r"<div\1></div>", source, count=1)


@dataclass(frozen=True)
class AttributionView:
    """Displays in a notebook (``_repr_html_``) and writes a standalone HTML file (module docstring)."""

    attribution: DemoAttribution
    """What is shown."""
    figure: Any
    """The plotly figure (:func:`attribution_figure`); display it alone with ``view.figure``."""
    tokens: Any
    """The circuitsvis token view; ``tokens.local_src`` is its offline HTML."""

    def html(self, *, plotlyjs: PlotlyJS = "embed", full_html: bool = True) -> str:
        """The view as HTML: a full page, or a fragment for embedding (``full_html=False``)."""
        if plotlyjs not in PLOTLYJS_CHOICES:
            raise ConfigError(f"plotlyjs must be one of {PLOTLYJS_CHOICES}, got {plotlyjs!r}.")
        a = self.attribution
        include: str | bool = {"embed": True, "directory": "directory", "cdn": "cdn"}[plotlyjs]
        div_id = f"mechsel-attribution-{a.provenance.data_hash}"
        body = (
            f"<h3>Attribution of the answer at position {a.answer_position} (gold: {html.escape(a.label_names[a.gold])})</h3>"
            f"{_summary_table(a)}"
            "<h4>Tokens coloured by the answer position's attention and DLA</h4>"
            f"{_closed_root_div(self.tokens.local_src)}"
            f"{self.figure.to_html(include_plotlyjs=include, full_html=False, div_id=div_id)}"
        )
        if not full_html:
            return f"<div>{body}</div>"
        style = "table.mechsel-attribution{border-collapse:collapse}table.mechsel-attribution td,table.mechsel-attribution th{border:1px solid #ccc;padding:2px 6px}"
        return (
            "<!DOCTYPE html><html><head><meta charset='utf-8'><title>mechsel attribution</title>"
            f"<style>{style}</style></head><body style='font-family:sans-serif'>{body}</body></html>"
        )

    def write_html(self, path: str | Path, *, plotlyjs: PlotlyJS = "embed") -> Path:
        """Write the view to ``path`` (atomic; parent folders are created) and return the path."""
        target = Path(path)
        page = self.html(plotlyjs=plotlyjs)
        if plotlyjs == "directory":
            from mechsel.plots.io import _write_plotlyjs

            target.parent.mkdir(parents=True, exist_ok=True)
            _write_plotlyjs(target.parent)
        atomic_write_text(target, page)
        return target

    def _repr_html_(self) -> str:
        return self.html(full_html=False)


def attribution_view(attribution: DemoAttribution, *, columns: Columns = "all", title: str | None = None) -> AttributionView:
    """A view of ``attribution``: segment table, circuitsvis token colouring and the plotly figure.

    Args:
        attribution: from :func:`~mechsel.attribution.attribute_demonstrations`.
        columns: the segments the figure shows (``all`` or ``demos``).
        title: figure title (default names the gold label and the logit difference).
    """
    return AttributionView(attribution, attribution_figure(attribution, columns=columns, title=title), token_view(attribution))
