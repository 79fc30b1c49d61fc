"""``analyse``: the correlation grid, the masking effect, the selector comparison, the summary
table and the three-way verdict, from every task's statistics, quality, selections and scores
(no model)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["analyse_stage", "selector_cells"]


def _concat(ctx: Any, prefix: str, name: str) -> pd.DataFrame:
    frames = [out[name] for stage, out in ctx.inputs.items() if stage.startswith(prefix) and name in out]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _fixed(value: Any) -> Any:
    """A configured layer / statistic when it names one cell, else NaN (a combination)."""
    if isinstance(value, (list, tuple)):
        return value[0] if len(value) == 1 else np.nan
    return np.nan if value is None else value


def selector_cells(runs: list[dict[str, Any]], selections: pd.DataFrame) -> pd.DataFrame:
    """Which grid cell each activation / SAE run read, per task: from the dev-chosen statistic
    recorded in its selections' ``detail``, else from its configured ``layer`` and ``statistic``.

    ``runs``: one dict per (task, run) with ``task``, ``label``, ``mask``, ``layer``,
    ``statistic``. A run whose chosen cell differs between seeds gets ``layer`` NaN and the
    statistic ``"varies by seed"``.
    """
    rows = []
    for r in runs:
        row = {"task": r["task"], "selector": r["label"], "layer": _fixed(r.get("layer")),
               "statistic": _fixed(r.get("statistic")), "mask": r["mask"]}
        sel = selections[(selections["task"] == r["task"]) & (selections["selector"] == r["label"])] if not selections.empty else selections
        chosen = {json.dumps(json.loads(d)["chosen"], sort_keys=True) for d in sel.get("detail", pd.Series(dtype=object))
                  if isinstance(d, str) and d and "chosen" in json.loads(d)}
        if len(chosen) == 1:
            c = json.loads(chosen.pop())
            row.update(layer=c["layer"], statistic=c["statistic"])
        elif len(chosen) > 1:
            row.update(layer=np.nan, statistic="varies by seed")
        if pd.isna(row["statistic"]):
            row["statistic"] = "several"
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "selector", "layer", "statistic", "mask"])


def analyse_stage(ctx: Any) -> dict[str, Any]:
    """Outputs ``grid``, ``masking`` (when both full and isolated were collected), ``comparison``,
    ``summary`` (random vs every activation selector), ``summary_sae`` (when SAE selectors ran)
    and ``verdict`` (JSON: outcome overall and per part, the evidence lines, text, table)."""
    from mechsel.analysis import (
        compare_selectors, correlation_grid, format_summary, masking_effect, summary_table, verdict,
    )
    from mechsel.analysis.verdict import VerdictSettings
    from mechsel.icl.metrics import METRIC_RANGES

    p = ctx.params
    stats = _concat(ctx, "collect/", "statistics")
    quality = _concat(ctx, "quality/", "quality")
    scores = _concat(ctx, "evaluate/", "scores")
    selections = _concat(ctx, "select/", "selections")
    kw = {"n_boot": p["n_boot"], "level": p["level"], "seed": p["seed"]}
    grid = correlation_grid(stats, quality, p_method=p["rho_test"], ci_method=p["rho_interval"], fdr_family=p["fdr_family"],
                            n_perm=p["n_perm"], alpha=p["alpha"], **kw)
    out: dict[str, Any] = {"grid": grid}
    if {"full", "isolated"} <= set(stats["mask"].unique()):
        out["masking"] = masking_effect(stats, quality, **kw)
    comparison = compare_selectors(scores, baseline=p["baseline"], level=p["level"], bounds=METRIC_RANGES, power=p["power"])
    out["comparison"] = comparison
    cells = selector_cells(p["cell_runs"], selections)
    summary = summary_table(comparison, grid, family="activation", baseline=p["baseline"], grid_family="moments", cells=cells)
    out["summary"] = summary
    settings = VerdictSettings(alpha=p["alpha"], margin=p["margin"], rho_bound=p["rho_threshold"], rho_adjust=p["rho_adjust"],
                               power=p["power"])
    moments = grid[grid["family"] == "moments"] if "family" in grid.columns else grid
    v = verdict(summary, moments, settings=settings, bounds=METRIC_RANGES, model=p["model"])
    n_act = int(summary["selector"].nunique())
    note = (f"All {n_act} activation runs are compared with random (none picked by its test mean); the gain part's "
            f"BH correction runs over all {len(summary)} lines." if n_act > 1 else
            "cell: the grid cell the activation selector read (dev-chosen on the candidates' quality), with its ρ.")
    text = [format_summary(summary), note]
    result = v.to_dict()
    if (comparison["family"] == "sae").any():
        out["summary_sae"] = summary_table(comparison, grid, family="sae", baseline=p["baseline"], grid_family="sae", cells=cells)
        sae = verdict(out["summary_sae"], grid[grid["family"] == "sae"], settings=settings, bounds=METRIC_RANGES, model=p["model"])
        result["sae"] = sae.to_dict()
        text += ["", "SAE selectors (their own BH families; they never enter the moments' verdict):",
                 format_summary(out["summary_sae"], family="SAE"), f"SAE: {sae.text}"]
    result["table"] = "\n".join(text)
    out["verdict"] = result
    return out
