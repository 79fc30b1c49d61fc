"""Figures of the study (plotly; imported only here). Each builder returns a ``go.Figure``;
:func:`save_figure` writes standalone HTML and, when a Chromium is available, PNG/SVG."""

from mechsel.plots.activations import activation_distributions
from mechsel.plots.comparison import selector_comparison
from mechsel.plots.correlation import abs_rho_by_layer, best_statistic_scatter, rho_heatmap
from mechsel.plots.decodability import decodability_by_layer
from mechsel.plots.heads import head_scores_heatmap
from mechsel.plots.io import chromium_path, save_figure, static_export_available
from mechsel.plots.sae import sae_panel
from mechsel.plots.sae_causal import causal_effects

__all__ = [
    "rho_heatmap",
    "abs_rho_by_layer",
    "best_statistic_scatter",
    "selector_comparison",
    "decodability_by_layer",
    "sae_panel",
    "causal_effects",
    "head_scores_heatmap",
    "activation_distributions",
    "save_figure",
    "chromium_path",
    "static_export_available",
]
