"""Every figure of a run, from its saved result tables only (no model, no activations recomputed).

One function per figure family (each also run by a script in ``analyses/``); :func:`write_figures`
runs them all. File names: ``<family>_<task>[_<variant>].html`` (+ ``.png``/``.svg`` when possible).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from mechsel.experiment.results import load_results

__all__ = [
    "FIGURE_FAMILIES",
    "build_figures",
    "write_figures",
    "correlation_figures",
    "layer_figures",
    "selector_figures",
    "scatter_figures",
    "sae_figures",
    "activation_figures",
    "decodability_figures",
]

logger = logging.getLogger(__name__)


def _tasks(frame: pd.DataFrame) -> list[str]:
    return sorted(frame["task"].unique()) if "task" in frame.columns else [None]  # type: ignore[list-item]


def correlation_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """ρ heatmaps (layer × statistic, one panel per mask), per task and statistic family."""
    from mechsel.plots import rho_heatmap

    grid = results["grid"]
    return {
        f"rho_heatmap_{task}_{fam}": rho_heatmap(grid, task=task, family=fam)
        for task in _tasks(grid)
        for fam in sorted(grid[grid["task"] == task]["family"].unique())
    }


def layer_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """|ρ| by layer, per task (moment statistics)."""
    from mechsel.plots import abs_rho_by_layer

    grid = results["grid"]
    return {f"abs_rho_by_layer_{task}": abs_rho_by_layer(grid, task=task, family="moments") for task in _tasks(grid)}


def selector_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """Selector comparison with 95% CIs per budget, per task and metric."""
    from mechsel.plots import selector_comparison

    comp = results["comparison"]
    scores = results.get("scores")
    out = {}
    for (task, metric), _ in comp.groupby(["task", "metric"]):
        out[f"selectors_{task}"] = selector_comparison(comp, scores=scores, task=task, metric=metric)
    return out


def scatter_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """Quality against the strongest moment statistic (largest |ρ|) with its monotone trend, per task;
    each point's hover shows its example id and text."""
    from mechsel.plots import best_statistic_scatter

    grid, stats, quality = results["grid"], results["statistics"], results["quality"]
    examples = results.get("examples")
    out = {}
    for task in _tasks(grid):
        g = grid[(grid["task"] == task) & (grid["family"] == "moments")].dropna(subset=["rho"])
        if g.empty:
            continue
        top = g.loc[g["abs_rho"].idxmax()]
        cell = {k: top[k] for k in ("task", "family", "mask", "layer", "statistic", "positions", "hook") if k in top}
        out[f"best_statistic_{task}"] = best_statistic_scatter(
            stats, quality, cell, rho=float(top["rho"]), examples=examples if examples is not None and not examples.empty else None
        )
    return out


def sae_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """SAE latent-statistic panels, per task and mask (only when SAE statistics were collected)."""
    from mechsel.plots import sae_panel

    grid = results["grid"]
    if "family" not in grid.columns or not (grid["family"] == "sae").any():
        return {}
    sae = grid[grid["family"] == "sae"]
    return {
        f"sae_panel_{task}_{mask}": sae_panel(grid, task=task, mask=mask)
        for task in _tasks(sae)
        for mask in sorted(sae[sae["task"] == task]["mask"].unique())
    }


def decodability_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """Out-of-fold R² of quality probes by layer against the baselines, per task (only when a
    ``probe`` run collected representations)."""
    from mechsel.plots import decodability_by_layer

    table = results.get("decodability")
    if table is None or table.empty:
        return {}
    return {f"decodability_{task}": decodability_by_layer(table, task=task) for task in _tasks(table)}


def activation_figures(results: Mapping[str, Any]) -> dict[str, Any]:
    """hook_mlp_out distributions per layer, best vs worst candidates, per task."""
    from mechsel.plots import activation_distributions

    samples = results.get("activation_samples")
    if samples is None or samples.empty:
        return {}
    return {f"activations_{task}": activation_distributions(samples, task=task) for task in _tasks(samples)}


FIGURE_FAMILIES: dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]] = {
    "correlation": correlation_figures,
    "layers": layer_figures,
    "selectors": selector_figures,
    "scatter": scatter_figures,
    "sae": sae_figures,
    "activations": activation_figures,
    "decodability": decodability_figures,
}
"""Figure family → builder of ``{file stem: figure}`` from the result tables."""


def build_figures(results: Mapping[str, Any], families: Sequence[str] | None = None) -> dict[str, Any]:
    """``{file stem: go.Figure}`` of ``families`` (default: all), in family order, from the result tables."""
    from mechsel.errors import ConfigError

    chosen = list(families) if families is not None else list(FIGURE_FAMILIES)
    unknown = [f for f in chosen if f not in FIGURE_FAMILIES]
    if unknown:
        raise ConfigError(f"Unknown figure families {unknown}; choose from {list(FIGURE_FAMILIES)}.")
    figures: dict[str, Any] = {}
    for family in chosen:
        figures.update(FIGURE_FAMILIES[family](results))
    return figures


def write_figures(
    results: Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    families: Sequence[str] | None = None,
    formats: Sequence[str] = ("png", "svg"),
    plotlyjs: str = "directory",
) -> list[Path]:
    """Build and save the figures of ``families`` (default: all) into ``out_dir``.

    Args:
        results: the result tables (:func:`~mechsel.experiment.results.load_results`) or a run directory.
        out_dir: where the figures go.
        families: keys of :data:`FIGURE_FAMILIES`.
        formats, plotlyjs: see :func:`mechsel.plots.save_figure`.
    """
    from mechsel.plots import save_figure

    tables = load_results(results) if isinstance(results, (str, Path)) else results
    written: list[Path] = []
    for stem, fig in build_figures(tables, families).items():
        written += save_figure(fig, Path(out_dir) / stem, formats=formats, plotlyjs=plotlyjs)  # type: ignore[arg-type]
    logger.info("Wrote %d figure files to %s", len(written), out_dir)
    return written
