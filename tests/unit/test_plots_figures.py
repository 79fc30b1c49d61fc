"""Figures checked by structure (trace types, axis titles, titles); saving with Chromium patched."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

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
    assert [type(t) for t in fig.data] == [go.Heatmap, go.Heatmap]  # one panel per mask
    assert fig.data[0].z.shape == (3, 2)
    assert list(fig.data[0].x) == ["kurtosis", "mean"]
    assert fig.layout.xaxis.title.text == "statistic" and fig.layout.yaxis.title.text == "layer"
    assert "Spearman ρ" in fig.layout.title.text and "sst2" in fig.layout.title.text
    assert [a.text for a in fig.layout.annotations] == ["mask: full", "mask: isolated"]
    with pytest.raises(DataError, match="several values of .family"):
        rho_heatmap(grid)


def test_abs_rho_by_layer_structure(frames):
    _, _, grid, _ = frames
    fig = abs_rho_by_layer(grid, family="moments")
    assert all(isinstance(t, go.Scatter) for t in fig.data) and len(fig.data) == 4  # 2 statistics × 2 masks
    assert fig.layout.xaxis.title.text == "layer" and fig.layout.yaxis.title.text == "|ρ|"
    assert all((np.asarray(t.y) >= 0).all() for t in fig.data)
    assert any(s.type == "line" and s.y0 == pytest.approx(0.33) for s in fig.layout.shapes)


def test_selector_comparison_structure(frames):
    *_, comp = frames
    fig = selector_comparison(comp)
    assert [t.name for t in fig.data] == ["random", "activation", "knn"]
    assert all(isinstance(t, go.Bar) for t in fig.data)
    assert list(fig.data[0].x) == ["k = 4", "k = 8"]
    row = comp[(comp["selector"] == "knn") & (comp["budget"] == 8)].iloc[0]
    assert fig.data[2].error_y.array[1] == pytest.approx(row["ci_high"] - row["mean"])
    assert fig.layout.xaxis.title.text.startswith("budget") and fig.layout.yaxis.title.text == "test accuracy"
    assert "95% CI" in fig.layout.title.text


def test_best_statistic_scatter_has_trend(frames):
    stats_frame, qframe, grid, _ = frames
    cell = {"family": "moments", "mask": "full", "layer": 1, "statistic": "kurtosis"}
    fig = best_statistic_scatter(stats_frame, qframe, cell, rho=0.4)
    assert [t.mode for t in fig.data] == ["markers", "lines"]
    assert len(fig.data[0].x) == 25
    assert fig.layout.xaxis.title.text == "layer 1 kurtosis (full)" and "+0.40" in fig.layout.title.text
    with pytest.raises(DataError, match="No statistics"):
        best_statistic_scatter(stats_frame, qframe, {"layer": 99})


def test_sae_panel_structure(frames):
    _, _, grid, _ = frames
    fig = sae_panel(grid, mask="full")
    assert isinstance(fig.data[0], go.Heatmap) and set(fig.data[0].x) == {"l0", "latent_entropy"}
    assert {t.name for t in fig.data[1:]} == {"moments", "sae"}
    assert fig.layout.xaxis2.title.text == "layer" and fig.layout.yaxis2.title.text == "max |ρ|"
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
    assert [type(t) for t in fig.data] == [go.Violin, go.Violin]
    assert [t.side for t in fig.data] == ["negative", "positive"]
    assert fig.layout.xaxis.title.text == "layer" and "best vs worst" in fig.layout.title.text
    with pytest.raises(DataError, match="Unknown group"):
        activation_distributions(samples.assign(group="middle"))


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
    bars = [t for t in fig.data if isinstance(t, go.Bar)]
    points = [t for t in fig.data if isinstance(t, go.Scatter)]
    assert [t.name for t in bars] == ["random", "activation"] and len(points) == 2
    assert all(len(t.y) == 10 for t in points)  # 5 seeds × 2 budgets each
    for t in bars:
        assert (np.asarray(t.y) + np.asarray(t.error_y.array) <= 1.0 + 1e-12).all()  # CI tops stay inside [0, 1]
    assert "each seed" in fig.layout.title.text
