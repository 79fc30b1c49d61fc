"""``analyse``: the correlation grid, the masking effect, the selector comparison, the summary
table and the verdict, from every task's statistics, quality and scores (no model)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["analyse_stage"]


def _concat(ctx: Any, prefix: str, name: str) -> pd.DataFrame:
    frames = [out[name] for stage, out in ctx.inputs.items() if stage.startswith(prefix) and name in out]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def analyse_stage(ctx: Any) -> dict[str, Any]:
    """Outputs ``grid``, ``masking`` (when both full and isolated were collected), ``comparison``,
    ``summary`` (random vs the best activation selector), ``summary_sae`` (when SAE selectors ran)
    and ``verdict`` (JSON: holds, parts, text, details)."""
    from mechsel.analysis import compare_selectors, correlation_grid, format_summary, masking_effect, summary_table, verdict

    p = ctx.params
    stats = _concat(ctx, "collect/", "statistics")
    quality = _concat(ctx, "quality/", "quality")
    scores = _concat(ctx, "evaluate/", "scores")
    kw = {"n_boot": p["n_boot"], "level": p["level"], "seed": p["seed"]}
    grid = correlation_grid(stats, quality, n_perm=p["n_perm"], alpha=p["alpha"], **kw)
    out: dict[str, Any] = {"grid": grid}
    if {"full", "isolated"} <= set(stats["mask"].unique()):
        out["masking"] = masking_effect(stats, quality, **kw)
    comparison = compare_selectors(scores, baseline=p["baseline"], level=p["level"])
    out["comparison"] = comparison
    summary = summary_table(comparison, grid, family="activation", baseline=p["baseline"], grid_family="moments")
    out["summary"] = summary
    text = [format_summary(summary)]
    if (comparison["family"] == "sae").any():
        out["summary_sae"] = summary_table(comparison, grid, family="sae", baseline=p["baseline"], grid_family="sae")
        text += ["", "SAE selectors:", format_summary(out["summary_sae"], family="SAE")]
    v = verdict(summary, rho_threshold=p["rho_threshold"], alpha=p["alpha"], model=p["model"])
    out["verdict"] = {"holds": v.holds, "reliable_gain": v.reliable_gain, "weak_correlation": v.weak_correlation,
                      "max_abs_rho": v.max_abs_rho, "text": v.text, "details": v.details, "table": "\n".join(text)}
    return out
