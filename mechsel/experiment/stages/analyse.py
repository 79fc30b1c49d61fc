"""``analyse``: the correlation grid, the masking effect, the selector comparison, the summary
table and the three-way verdict, from every task's statistics, quality, selections and scores
(no model)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from mechsel.experiment.config import AnalysisSettings
from mechsel.experiment.engine import StageContext
from mechsel.experiment.selection import CLAIM_FAMILY

__all__ = ["AnalyseParams", "CellRun", "analyse_stage", "selector_cells"]


@dataclass(frozen=True)
class CellRun:
    """A run that reads statistics, and the grid cell its configuration names."""

    task: str
    """The task it ran on."""
    label: str
    """Its label."""
    mask: str
    """The mask whose statistics it reads."""
    layer: Any
    """Its configured ``layer`` parameter (``None`` when dev-chosen or absent)."""
    statistic: Any
    """Its configured ``statistic`` parameter (``None`` when dev-chosen or absent)."""


@dataclass(frozen=True)
class AnalyseParams:
    """Settings of ``analyse``."""

    analysis: AnalysisSettings
    """The statistics of the analysis and how the verdict decides."""
    baseline: str
    """Label of the reference run of the paired tests."""
    retrieval_baseline: str | None
    """Label of the annotate-then-retrieve runs' baseline (``None``: ``baseline``)."""
    model: str
    """The model's name (named in the verdict)."""
    cell_runs: tuple[CellRun, ...]
    """Every run that reads statistics, per task."""
    n_looks: int | None = None
    """Looks of the sequential design (``None``: no task runs one)."""


def _joined(ctx: StageContext[AnalyseParams], prefix: str, name: str) -> pd.DataFrame:
    """``name`` of the ``prefix`` stages followed by that of the sequential stages (added seeds)."""
    frames = [f for f in (_concat(ctx, prefix, name), _concat(ctx, "sequential/", name)) if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def format_looks(looks: pd.DataFrame) -> str:
    """One line per (task, budget, selector): the seeds it ended with, its last repeated upper
    bound and how it ended."""
    out = []
    for key, part in looks.groupby(["task", "budget", "selector"], sort=True):
        task, budget, selector = cast(tuple[Any, Any, Any], key)
        last = part.sort_values("look").iloc[-1]
        how = {"non_superior": "decided: no gain (upper bound below the margin)", "beats": "decided: beats the baseline"}.get(
            str(last["decision"]), "undecided at its last look"
        )
        worse = "; reliably worse" if bool(last["worse"]) else ""
        out.append(
            f"  {task} k {int(budget)} {selector}: {int(last['n_pairs'])} seeds (look {int(last['look'])}), diff {last['diff']:+.3f}, "
            f"repeated bounds [{last['seq_lower']:+.3f}, {last['seq_upper']:+.3f}] — {how}{worse}"
        )
    return "\n".join(out)


def _concat(ctx: StageContext[AnalyseParams], prefix: str, name: str) -> pd.DataFrame:
    frames = [out[name] for stage, out in ctx.inputs.items() if stage.startswith(prefix) and name in out]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _fixed(value: Any) -> Any:
    """A configured layer / statistic when it names one cell, else NaN (a combination)."""
    if isinstance(value, (list, tuple)):
        return value[0] if len(value) == 1 else np.nan
    return np.nan if value is None else value


def selector_cells(runs: Sequence[CellRun], selections: pd.DataFrame) -> pd.DataFrame:
    """Which grid cell each activation / SAE run read, per task: from the dev-chosen statistic
    recorded in its selections' ``detail``, else from its configured ``layer`` and ``statistic``.

    ``runs``: one :class:`CellRun` per (task, run). A run whose chosen cell differs between seeds
    gets ``layer`` NaN and the statistic ``"varies by seed"``.
    """
    rows = []
    for r in runs:
        row = {
            "task": r.task,
            "selector": r.label,
            "layer": _fixed(r.layer),
            "statistic": _fixed(r.statistic),
            "mask": r.mask,
        }
        sel = selections[(selections["task"] == r.task) & (selections["selector"] == r.label)] if not selections.empty else selections
        chosen = {
            json.dumps(json.loads(d)["chosen"], sort_keys=True)
            for d in (sel["detail"] if "detail" in sel.columns else pd.Series(dtype=object))
            if isinstance(d, str) and d and "chosen" in json.loads(d)
        }
        if len(chosen) == 1:
            c = json.loads(chosen.pop())
            row.update(layer=c["layer"], statistic=c["statistic"])
        elif len(chosen) > 1:
            row.update(layer=np.nan, statistic="varies by seed")
        if pd.isna(row["statistic"]):
            row["statistic"] = "several"
        rows.append(row)
    return pd.DataFrame(rows, columns=["task", "selector", "layer", "statistic", "mask"])


COVARIATES = ("n_tokens", "label", "slot")
"""What the partial ρ holds fixed: the candidate's token count (moments pool over tokens, so they
move with length), its label, and its slot in the packed prompt (under ``full`` slot 0 sees no
other demonstration)."""


def _with_labels(stats: pd.DataFrame, examples: pd.DataFrame) -> pd.DataFrame:
    """The statistics lines with each candidate's label (−1 for generation tasks: then constant, dropped)."""
    if examples.empty or "label" not in examples.columns:
        return stats.assign(label=-1)
    cand = examples[examples["subset"] == "candidate"][["task", "example_id", "label"]].copy()
    cand["example_id"] = cand["example_id"].astype(str)
    out = stats.merge(cand, on=["task", "example_id"], how="left", validate="many_to_one")
    out["label"] = out["label"].fillna(-1).astype("int64")
    return out


def _partial(stats: pd.DataFrame, examples: pd.DataFrame, quality: pd.DataFrame, grid: pd.DataFrame, a: AnalysisSettings) -> pd.DataFrame:
    """The grid with the partial ρ (given :data:`COVARIATES`) of every cell beside the raw one."""
    from mechsel.analysis import partial_correlation_grid
    from mechsel.analysis.grid import cell_keys

    lines = _with_labels(stats, examples)
    names = [c for c in COVARIATES if c in lines.columns]
    keys = cell_keys(stats)
    kw: dict[str, Any] = {"categorical": ("label", "slot"), "basis": a.confound_basis}
    partial = partial_correlation_grid(lines, quality, names, keys=keys, fdr_family=a.fdr_family, level=a.level, alpha=a.alpha, **kw)
    grid = grid.merge(partial, on=keys, how="left", validate="one_to_one")
    return grid.merge(_bands(lines, quality, names, keys, a), on=keys, how="left", validate="one_to_one")


def _bands(lines: pd.DataFrame, quality: pd.DataFrame, names: list[str], keys: list[str], a: AnalysisSettings) -> pd.DataFrame:
    """Max-T simultaneous bands (at ``1 − 2α``) of the ρ the verdict decides on, within each
    family; the "above the bound" claims at ``α / F``, ``F`` the families of the moments cells."""
    from mechsel.analysis.simultaneous import simultaneous_grid

    moments = cast(pd.DataFrame, lines[lines["family"] == "moments"]) if "family" in lines.columns else lines
    n_families = 1 if a.fdr_family == "global" or "task" not in lines.columns else max(1, int(moments["task"].nunique()))
    bands = simultaneous_grid(
        lines,
        quality,
        names if a.rho_basis == "partial" else (),
        keys=keys,
        families=a.fdr_family,
        categorical=("label", "slot"),
        basis=a.confound_basis,
        level=1.0 - 2.0 * a.alpha,
        bound=a.rho_threshold,
        above_alpha=a.alpha / n_families,
        seed=a.seed,
    )
    return cast(pd.DataFrame, bands.drop(columns=["family_label"]))


def _sets(selections: pd.DataFrame, scores: pd.DataFrame, stats: pd.DataFrame, p: AnalyseParams) -> pd.DataFrame | None:
    """Set-level ρ over the baseline's random sets (None with fewer than 5 sets per budget)."""
    from mechsel.analysis import set_correlation_grid

    a = p.analysis
    fixed = selections[(selections["selector"] == p.baseline) & (selections["query"] < 0)]
    if fixed.empty or fixed.groupby(["task", "budget"])["seed"].nunique().min() < 5:
        return None
    return set_correlation_grid(
        selections,
        scores,
        cast(pd.DataFrame, stats[stats["family"] == "moments"]),
        selector=p.baseline,
        fdr_family=a.fdr_family,
        level=a.level,
        alpha=a.alpha,
    )


def _sets_summary(sets: pd.DataFrame | None) -> dict[str, Any] | None:
    """Per task: sets per budget, cells, significant cells and the strongest cell (by |ρ|)."""
    if sets is None or sets.empty or not np.isfinite(sets["rho"]).any():
        return None
    out = {}
    for task, part in sets.groupby("task", sort=True):
        part = cast(pd.DataFrame, part[np.isfinite(part["rho"])])
        if part.empty:
            continue
        top = part.loc[part["rho"].abs().idxmax()]
        out[str(task)] = {
            "sets": int(part["n"].max()),
            "cells": int(len(part)),
            "significant": int(part["significant"].sum()),
            "max_abs_rho": float(abs(top["rho"])),
            "max_rho_cell": describe_set_cell(top),
            "max_rho_q": float(top["q_value"]),
        }
    return out or None


def describe_set_cell(row: pd.Series) -> str:
    """e.g. ``"sst2 k 4: mean over the set of layer 3 kurtosis (full)"``."""
    from mechsel.analysis import describe_cell

    return f"{row.get('task', '')} k {int(cast(int, row['budget']))}: {row['aggregate']} over the set of {describe_cell(row)}"


def _verdict_cells(grid: pd.DataFrame, family: str, basis: str) -> tuple[pd.DataFrame, str]:
    """The grid lines of ``family`` the verdict decides on, with ``rho`` / ``n`` the partial ρ and
    its effective size ``n − q`` under ``basis="partial"``, and the name of that ρ."""
    cells = cast(pd.DataFrame, grid[grid["family"] == family]) if "family" in grid.columns else grid
    if basis != "partial" or cells.empty:
        return cells, "ρ"
    cells = cells.assign(rho=cells["rho_partial"], n=cells["n_partial"] - cells["n_covariates"])
    return cells, "partial ρ"


def analyse_stage(ctx: StageContext[AnalyseParams]) -> dict[str, Any]:
    """Outputs ``grid``, ``masking`` (when both full and isolated were collected), ``comparison``,
    ``summary`` (random vs every activation selector), ``summary_sae`` (when SAE selectors ran)
    and ``verdict`` (JSON: outcome overall and per part, the evidence lines, each task's baselines
    and flag, text, and the printed table: the activation lines, the tasks' baselines, the best of
    each family, every selector)."""
    from mechsel.analysis import (
        baseline_check,
        compare_selectors,
        correlation_grid,
        family_best,
        format_baselines,
        format_family_best,
        format_summary,
        masking_effect,
        summary_table,
        verdict,
    )
    from mechsel.analysis.summary import format_comparison
    from mechsel.icl.metrics import METRIC_RANGES

    p = ctx.params
    a = p.analysis
    stats = _concat(ctx, "collect/", "statistics")
    quality = _concat(ctx, "quality/", "quality")
    scores = _joined(ctx, "evaluate/", "scores")
    predictions = _joined(ctx, "evaluate/", "predictions")
    selections = _joined(ctx, "select/", "selections")
    looks = _concat(ctx, "sequential/", "looks")
    examples = _concat(ctx, "data/", "examples")
    baselines = _concat(ctx, "evaluate/", "baselines")
    kw = {"n_boot": a.n_boot, "level": a.level, "seed": a.seed}
    grid = correlation_grid(
        stats,
        quality,
        p_method=a.rho_test,
        ci_method=a.rho_interval,
        fdr_family=a.fdr_family,
        n_perm=a.n_perm,
        alpha=a.alpha,
        **kw,
    )
    grid = _partial(stats, examples, quality, grid, a)
    out: dict[str, Any] = {"grid": grid}
    if {"full", "isolated"} <= set(stats["mask"].unique()):
        out["masking"] = masking_effect(stats, quality, **kw)
    rb = p.retrieval_baseline
    comparison = compare_selectors(
        scores,
        baseline=p.baseline,
        level=a.level,
        bounds=METRIC_RANGES,
        power=a.power,
        protocol_baselines={"annotate_then_retrieve": rb} if rb else None,
        predictions=predictions,
        alpha=a.alpha,
        exact_below=a.exact_below,
        n_boot=a.n_boot,
        seed=a.seed,
    )
    out["comparison"] = comparison
    cells = selector_cells(p.cell_runs, selections)
    summary = summary_table(comparison, grid, family=CLAIM_FAMILY, baseline=p.baseline, grid_family="moments", cells=cells)
    out["summary"] = summary
    settings = a.verdict_settings()
    moments, basis = _verdict_cells(grid, "moments", a.rho_basis)
    checked = baseline_check(baselines, comparison) if not baselines.empty else None
    v = verdict(
        summary,
        moments,
        settings=settings,
        bounds=METRIC_RANGES,
        model=p.model,
        basis=basis,
        baselines=checked,
        sequential=looks if not looks.empty else None,
        n_looks=p.n_looks,
    )
    n_act = int(summary["selector"].nunique())
    note = (
        f"All {n_act} activation runs are compared with random (none picked by its test mean); the gain part's "
        f"BH correction runs over all {len(summary)} lines."
        if n_act > 1
        else "cell: the grid cell the activation selector read (dev-chosen on the candidates' quality), with its ρ."
    )
    if a.rho_basis == "partial":
        note += f" The correlation part decides on the partial ρ given {', '.join(COVARIATES)} (raw ρ beside it in grid.parquet)."
    note += (
        f" upper: the one-sided {1 - a.alpha:.0%} upper bound of diff (the gain part holds when every line's is below "
        f"{a.margin:g}); test: exact = sign-flip over seeds, boot = seeds × test queries bootstrap, t = paired t."
    )
    text = [format_summary(summary), note, ""]
    if not looks.empty:
        text += ["Sequential design (seeds added in batches to the undecided lines; repeated bounds keep the error at alpha):"]
        text += [format_looks(looks), ""]
    if checked is not None:
        text += [
            "Baselines of each task (0-shot: no demonstration; majority: always the most frequent test label). A task where "
            "no line's 95% interval over seeds lies above the majority share is flagged: the model does not do it.",
            format_baselines(checked),
            "",
        ]
    best = family_best(comparison)
    if not best.empty:
        text += [
            "Best of each family vs random (or the run's own paired baseline, under vs), per task and budget. Each line is "
            "the family's run with the highest test "
            "mean: picked by the numbers it is judged on, its difference is optimistic (winner's curse), unlike the "
            "activation lines above, which list every run.",
            format_family_best(best),
            "",
        ]
    text += ["Every selector, with the labels it used (B) and its paired baseline:", format_comparison(comparison)]
    result = v.to_dict()
    sets = _sets(selections, scores, stats, p)
    if sets is not None:
        out["sets"] = sets
        result["sets"] = _sets_summary(sets)
        if result["sets"]:
            text += ["", "Set level (the baseline's random sets: Spearman ρ of a set's mean / max statistic with its test score):"]
            text += [
                f"  {task}: {r['sets']} sets per budget, {r['cells']} cells, {r['significant']} significant after BH; "
                f"largest |ρ| {r['max_abs_rho']:.2f} ({r['max_rho_cell']}, q = {r['max_rho_q']:.2g})"
                for task, r in result["sets"].items()
            ]
    reps = {stage.split("/", 1)[1]: o for stage, o in ctx.inputs.items() if stage.startswith("representations/")}
    if reps:
        from mechsel.experiment.decodability import decodability_of_run, format_decodability

        dec = decodability_of_run(
            ctx.inputs, reps, stats, quality, examples, n_boot=a.n_boot, level=a.level, seed=a.seed, target=a.decodability_target
        )
        out["decodability"] = dec
        sentence, lines = format_decodability(dec)
        result["decodability"] = sentence
        text += ["", f"Decodability (ridge probes of quality, out-of-fold R² with {a.level:.0%} bootstrap intervals): {sentence}", *lines]
    if (comparison["family"] == "sae").any():
        out["summary_sae"] = summary_table(comparison, grid, family="sae", baseline=p.baseline, grid_family="sae", cells=cells)
        sae_cells, sae_basis = _verdict_cells(grid, "sae", a.rho_basis)
        sae = verdict(out["summary_sae"], sae_cells, settings=settings, bounds=METRIC_RANGES, model=p.model, basis=sae_basis)
        result["sae"] = sae.to_dict()
        text += [
            "",
            "SAE selectors (their own BH families; they never enter the moments' verdict):",
            format_summary(out["summary_sae"], family="SAE"),
            f"SAE: {sae.text}",
        ]
    result["table"] = "\n".join(text)
    out["verdict"] = result
    return out
