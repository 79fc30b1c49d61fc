"""Figures checked by structure (trace types, axis titles, titles); saving with Chromium patched."""

from __future__ import annotations

import logging
from typing import Any, cast

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from _chromium import chromium_or_skip
from scipy.stats import spearmanr
from sklearn.isotonic import IsotonicRegression

from mechsel.analysis import compare_selectors, correlation_grid
from mechsel.errors import ConfigError, DataError
from mechsel.plots import (
    abs_rho_by_layer,
    activation_distributions,
    best_statistic_scatter,
    rho_heatmap,
    sae_panel,
    save_figure,
    selector_comparison,
)
from mechsel.plots import io as plots_io
from mechsel.plots.activations import symlog
from mechsel.plots.correlation import monotone_trend


def traces(fig: go.Figure) -> list[Any]:
    """The figure's traces (plotly's stubs type ``fig.data`` too loosely for attribute access)."""
    return list(cast(Any, fig).data)


def layout(fig: go.Figure) -> Any:
    """The figure's layout, typed for attribute access."""
    return cast(Any, fig).layout


@pytest.fixture
def frames():
    rng = np.random.default_rng(0)
    ids = list(range(25))
    quality = rng.normal(size=25)
    rows = []
    for fam, stats in (("moments", ["mean", "kurtosis"]), ("sae", ["l0", "latent_entropy"])):
        for mask in ("full", "isolated"):
            for layer in range(3):
                for stat in stats:
                    rows.append(
                        pd.DataFrame(
                            {
                                "task": "sst2",
                                "family": fam,
                                "example_id": ids,
                                "layer": layer,
                                "statistic": stat,
                                "mask": mask,
                                "value": rng.normal(size=25) + 0.3 * quality,
                            }
                        )
                    )
    stats_frame = pd.concat(rows, ignore_index=True)
    qframe = pd.DataFrame({"task": "sst2", "example_id": ids, "quality": quality})
    grid = correlation_grid(stats_frame, qframe, n_boot=20, n_perm=20)
    scores = pd.DataFrame(
        [
            {"task": "sst2", "metric": "accuracy", "budget": k, "seed": s, "selector": sel, "score": 0.7 + 0.01 * rng.normal()}
            for k in (4, 8)
            for s in range(5)
            for sel in ("random", "activation", "knn")
        ]
    )
    return stats_frame, qframe, grid, compare_selectors(scores)


def test_rho_heatmap_structure(frames):
    _, _, grid, _ = frames
    fig = rho_heatmap(grid, family="moments")
    assert [type(t) for t in traces(fig)] == [go.Heatmap, go.Heatmap]  # one panel per mask
    assert traces(fig)[0].z.shape == (3, 2)
    assert list(traces(fig)[0].x) == ["kurtosis", "mean"]
    assert layout(fig).xaxis.title.text == "statistic" and layout(fig).yaxis.title.text == "layer"
    assert "Spearman ρ" in layout(fig).title.text and "sst2" in layout(fig).title.text
    assert [a.text for a in layout(fig).annotations] == ["mask: full", "mask: isolated"]
    with pytest.raises(DataError, match="several values of .family"):
        rho_heatmap(grid)


def test_abs_rho_by_layer_structure(frames):
    _, _, grid, _ = frames
    fig = abs_rho_by_layer(grid, family="moments")
    assert all(isinstance(t, go.Scatter) for t in traces(fig)) and len(traces(fig)) == 4  # 2 statistics × 2 masks
    assert layout(fig).xaxis.title.text == "layer" and layout(fig).yaxis.title.text == "|ρ|"
    assert all((np.asarray(t.y) >= 0).all() for t in traces(fig))
    assert any(s.type == "line" and s.y0 == pytest.approx(0.33) for s in layout(fig).shapes)


def test_selector_comparison_structure(frames):
    *_, comp = frames
    fig = selector_comparison(comp)
    assert [t.name for t in traces(fig)] == ["random", "activation", "knn"]
    assert all(isinstance(t, go.Bar) for t in traces(fig))
    assert list(traces(fig)[0].x) == ["k = 4", "k = 8"]
    row = comp[(comp["selector"] == "knn") & (comp["budget"] == 8)].iloc[0]
    assert traces(fig)[2].error_y.array[1] == pytest.approx(row["ci_high"] - row["mean"])
    assert layout(fig).xaxis.title.text.startswith("budget") and layout(fig).yaxis.title.text == "test accuracy"
    assert "95% CI" in layout(fig).title.text


def test_best_statistic_scatter_has_a_rank_consistent_trend_and_example_hover(frames):
    stats_frame, qframe, grid, _ = frames
    cell = {"family": "moments", "mask": "full", "layer": 1, "statistic": "kurtosis"}
    examples = pd.DataFrame(
        {
            "task": "sst2",
            "subset": "candidate",
            "example_id": [str(i) for i in range(25)],
            "text": ["<b>bold</b> & " + "word " * 100] + [f"example {i}" for i in range(1, 25)],
        }
    )
    examples = pd.concat([examples, examples.assign(subset="dev", text="a dev text")], ignore_index=True)
    fig = best_statistic_scatter(stats_frame, qframe, cell, rho=0.4, examples=examples)
    points, trend = traces(fig)
    assert [t.mode for t in traces(fig)] == ["markers", "lines"]
    assert len(points.x) == 25
    assert layout(fig).xaxis.title.text == "layer 1 kurtosis (full)" and "+0.40" in layout(fig).title.text
    rho = cast(Any, spearmanr(points.x, points.y)).statistic
    assert "isotonic" in trend.name and ("increasing" if rho > 0 else "decreasing") in trend.name
    steps = np.diff(np.asarray(trend.y, dtype=float))
    assert (steps >= -1e-12).all() if rho > 0 else (steps <= 1e-12).all()  # monotone in the direction of ρ
    reference = IsotonicRegression(increasing=bool(rho > 0)).fit(points.x, points.y)  # an independent PAVA
    np.testing.assert_allclose(trend.y, reference.predict(trend.x), atol=1e-12)
    ids, texts = np.asarray(points.customdata).T
    first = texts[list(ids).index("0")]
    assert first.startswith("&lt;b&gt;bold&lt;/b&gt; &amp; word") and "<br>" in first and first.endswith("…")
    assert texts[list(ids).index("7")] == "example 7"  # the candidate's text, not the dev row's
    assert "%{customdata[0]}" in points.hovertemplate and "%{customdata[1]}" in points.hovertemplate
    with pytest.raises(DataError, match="No statistics"):
        best_statistic_scatter(stats_frame, qframe, {"layer": 99})


def test_monotone_trend_pools_ties_and_follows_direction():
    x = np.array([3.0, 1.0, 2.0, 2.0, 4.0])
    y = np.array([1.0, 2.0, 0.0, 1.0, 3.0])
    xs, fit = monotone_trend(x, y, increasing=True)
    assert list(xs) == [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_allclose(fit, [1.0, 1.0, 1.0, 3.0])  # x=1 (y 2) and x=2 (mean 0.5, weight 2) pool: (2 + 2·0.5) / 3
    _, down = monotone_trend(x, y, increasing=False)
    assert (np.diff(down) <= 0).all()


def test_sae_panel_structure(frames):
    _, _, grid, _ = frames
    fig = sae_panel(grid, mask="full")
    assert isinstance(traces(fig)[0], go.Heatmap) and set(traces(fig)[0].x) == {"l0", "latent_entropy"}
    assert {t.name for t in traces(fig)[1:]} == {"moments", "sae"}
    assert layout(fig).xaxis2.title.text == "layer" and layout(fig).yaxis2.title.text == "max |ρ|"
    with pytest.raises(DataError, match="family"):
        sae_panel(grid.drop(columns="family"), mask="full")


def test_activation_distributions_structure():
    rng = np.random.default_rng(1)
    samples = pd.DataFrame(
        {
            "layer": np.repeat([0, 1, 2], 200),
            "group": np.tile(np.repeat(["best", "worst"], 100), 3),
            "example_id": 0,
            "value": rng.normal(size=600),
        }
    )
    fig = activation_distributions(samples)
    violins = [t for t in traces(fig) if isinstance(t, go.Violin)]
    medians = [t for t in traces(fig) if isinstance(t, go.Scatter)]
    assert [t.side for t in violins] == ["negative", "positive"] and len(medians) == 2
    assert layout(fig).xaxis.title.text == "layer" and "best vs worst" in layout(fig).title.text
    assert "symmetric log" in layout(fig).yaxis.title.text
    with pytest.raises(DataError, match="Unknown group"):
        activation_distributions(samples.assign(group="middle"))
    linear = activation_distributions(samples, scale="linear")
    assert "linear" in layout(linear).yaxis.title.text and layout(linear).yaxis.tickvals is None


def test_activation_distributions_symlog_keeps_outliers_from_hiding_the_bulk():
    """A few values near ±6,000 among a bulk of order 1: on the symmetric-log axis the bulk of the
    best and the worst examples spans a visible share of the axis, ticks name original values,
    and the median markers hover in original values."""
    rng = np.random.default_rng(2)
    best, worst = rng.normal(0.0, 1.0, size=400), rng.normal(3.0, 1.0, size=400)
    best[:2], worst[:2] = [6000.0, -6000.0], [-5800.0, 6100.0]
    samples = pd.DataFrame({"layer": 4, "group": ["best"] * 400 + ["worst"] * 400, "value": np.concatenate([best, worst])})
    fig = activation_distributions(samples)
    c = float(layout(fig).yaxis.title.text.split("c = ")[1].rstrip(")"))
    assert c == pytest.approx(float(f"{np.quantile(np.abs(samples['value']), 0.1):.0e}"))
    v_best, v_worst = (np.asarray(t.y) for t in traces(fig) if isinstance(t, go.Violin))
    np.testing.assert_allclose(v_best, symlog(best, c), atol=1e-4)  # the documented transform, values rounded
    span = max(v_best.max(), v_worst.max()) - min(v_best.min(), v_worst.min())
    bulk_gap = np.median(v_worst) - np.median(v_best)  # medians 0 vs 3: on a linear axis 3 / 12,000 of it
    assert bulk_gap / span > 0.05
    ticks = dict(zip(layout(fig).yaxis.ticktext, layout(fig).yaxis.tickvals, strict=True))
    assert ticks["0"] == 0 and ticks["1,000"] == pytest.approx(symlog(np.array(1000.0), c))
    assert ticks["-1,000"] == pytest.approx(-ticks["1,000"]) and "10,000" in ticks
    med_best = next(t for t in traces(fig) if t.name == "best median")
    assert med_best.customdata[0][0] == pytest.approx(np.median(best))  # hover: original values
    assert med_best.y[0] == pytest.approx(symlog(np.array(np.median(best)), c), abs=1e-4)


def test_save_figure_html_only_without_chromium(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(plots_io, "static_export_available", lambda: False)
    plots_io._warn_no_static.cache_clear()
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]), layout={"title": "t"})
    with caplog.at_level(logging.INFO, logger="mechsel.plots.io"):
        written = save_figure(fig, tmp_path / "figs" / "a")
    assert [p.name for p in written] == ["a.html"]
    assert (tmp_path / "figs" / "plotly.min.js").exists()
    assert "No Chromium" in caplog.text
    first = (tmp_path / "figs" / "a.html").read_bytes()
    save_figure(fig, tmp_path / "figs" / "a")
    assert (tmp_path / "figs" / "a.html").read_bytes() == first  # fixed div id: same figure, same bytes
    assert b'src="plotly.min.js"' in first


def test_save_figure_static_with_patched_chromium(tmp_path, monkeypatch):
    monkeypatch.setattr(plots_io, "static_export_available", lambda: True)
    calls = []
    monkeypatch.setattr(go.Figure, "to_image", lambda self, format, scale=1: calls.append(format) or f"{format}-bytes".encode())
    written = save_figure(go.Figure(), tmp_path / "b", plotlyjs="cdn")
    assert [p.suffix for p in written] == [".html", ".png", ".svg"] and calls == ["png", "svg"]
    assert (tmp_path / "b.png").read_bytes() == b"png-bytes"
    with pytest.raises(ConfigError, match="Unknown figure format"):
        save_figure(go.Figure(), tmp_path / "c", formats=["jpg"])


def test_png_export_with_the_installed_chromium(tmp_path):
    """A real PNG through kaleido and the Chromium ``scripts/setup.sh`` installs (runs on CI)."""
    chromium_or_skip()
    fig = go.Figure(go.Scatter(x=[0, 1], y=[1, 0]), layout={"width": 200, "height": 150})
    written = save_figure(fig, tmp_path / "small", formats=["png"], plotlyjs="cdn", scale=1)
    png = tmp_path / "small.png"
    assert written == [tmp_path / "small.html", png]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_selector_comparison_draws_every_seed_and_bounded_intervals():
    rng = np.random.default_rng(2)
    scores = pd.DataFrame(
        [
            {
                "task": "sst2",
                "metric": "accuracy",
                "budget": k,
                "seed": s,
                "selector": sel,
                "score": float(np.clip(0.9 + 0.15 * rng.normal(), 0, 1)),
            }
            for k in (4, 8)
            for s in range(5)
            for sel in ("random", "activation")
        ]
    )
    comp = compare_selectors(scores, bounds={"accuracy": (0.0, 1.0)})
    fig = selector_comparison(comp, scores=scores)
    bars: list[Any] = [t for t in traces(fig) if isinstance(t, go.Bar)]
    points: list[Any] = [t for t in traces(fig) if isinstance(t, go.Scatter)]
    assert [t.name for t in bars] == ["random", "activation"] and len(points) == 2
    assert all(len(t.y) == 10 for t in points)  # 5 seeds × 2 budgets each
    for t in bars:
        assert (np.asarray(t.y) + np.asarray(t.error_y.array) <= 1.0 + 1e-12).all()  # CI tops stay inside [0, 1]
    assert "each seed" in layout(fig).title.text
