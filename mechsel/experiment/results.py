"""The result tables of a run (``<output>/results/``): their documented columns, writing, reading.

Every table is a parquet file; ``results/README.md`` (written with them) repeats the column
documentation below, so a results folder explains itself.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mechsel.errors import DataError
from mechsel.experiment.store import write_json
from mechsel.paths import atomic_write_text

__all__ = ["SELECTION_COLUMNS", "SCORE_COLUMNS", "BASELINE_COLUMNS", "TABLES", "write_results", "load_results"]

# The tables written with a fixed set of columns: each is defined once, here, in the order the
# stage that writes it uses (``select/<task>``, ``evaluate/<task>``), and documented column by column.
SELECTION_COLUMNS: dict[str, str] = {
    "task": "task name",
    "selector": "run label",
    "selector_name": "registered selector",
    "family": "selector family",
    "protocol": "fixed / retrieve_from_pool / annotate_then_retrieve (how the run spends its labels)",
    "annotation_budget": "labelled examples B the run spends (k for a fixed set)",
    "budget": "k",
    "seed": "seed",
    "query": "test position (retrieval) or -1 (fixed set)",
    "rank": "position in the prompt",
    "example_id": "chosen candidate",
    "score": "the selector's score of the pick",
    "detail": "JSON extras (e.g. chosen statistic)",
}
"""``selections``: one row per pick."""
SCORE_COLUMNS: dict[str, str] = {
    "task": "task name",
    "selector": "run label",
    "selector_name": "registered selector",
    "family": "selector family",
    "protocol": "how the run spends its labels (as in selections)",
    "annotation_budget": "labelled examples B the run spends",
    "budget": "k",
    "seed": "seed",
    "metric": "headline metric (accuracy / bleu)",
    "score": "test score",
    "ci_low": "bootstrap CI over queries (low)",
    "ci_high": "bootstrap CI over queries (high)",
    "n_test": "test queries",
}
"""``scores``: one row per (run, budget, seed); a task's secondary metric follows these columns."""
BASELINE_COLUMNS: dict[str, str] = {
    "task": "task name",
    "metric": "headline test metric (accuracy / bleu)",
    "zero_shot": "the test score with no demonstration (same queries and scoring as every selection)",
    "zero_shot_ci_low": "its bootstrap CI over queries (low)",
    "zero_shot_ci_high": "its bootstrap CI over queries (high)",
    "majority": "share of the most frequent label among the test queries (classification; NaN for generation)",
    "majority_label": "that label",
    "n_test": "test queries",
}
"""``baselines``: one line per task."""

TABLES: dict[str, dict[str, str]] = {
    "examples": {
        "task": "task name",
        "subset": "candidate / dev / test",
        "position": "index within the subset",
        "example_id": "the example's id (as text)",
        "text": "its input text",
        "label": "gold label index (-1: none)",
        "n_references": "number of references (generation)",
    },
    "statistics": {
        "task": "task name",
        "family": "moments or sae",
        "hook": "hook summarised (mlp_out)",
        "positions": "tokens summarised",
        "mask": "attention-mask strategy",
        "layer": "block index",
        "statistic": "statistic name",
        "example_id": "candidate id",
        "value": "the statistic's value",
        "n_tokens": "tokens summarised for this example",
    },
    "quality": {
        "task": "task name",
        "example_id": "candidate id",
        "quality": "mean 1-shot dev score under `metric`",
        "se": "its standard error",
        "n_dev": "dev queries",
        "metric": "the pair metric (gold_prob, accuracy, rouge_l, ...)",
        "accuracy": "mean 1-shot dev accuracy (classification)",
        "gain": "mean marginal gain (optional)",
        "gain_se": "its standard error",
    },
    "selections": dict(SELECTION_COLUMNS),
    "scores": {**SCORE_COLUMNS, "macro_f1 / rouge_l": "secondary metric"},
    "predictions": {
        "task": "task name",
        "selector": "run label",
        "budget": "k",
        "seed": "seed",
        "query_id": "test example id",
        "n_demos": "demonstrations kept in the prompt",
        "demo_ids": "their ids, ';'-joined",
        "pred / gold / correct / p_<label>": "classification outputs",
        "prediction / references / rouge_l": "generation outputs",
    },
    "baselines": dict(BASELINE_COLUMNS),
    "activation_samples": {
        "task": "task name",
        "group": "best / worst by quality",
        "example_id": "candidate id",
        "quality": "its quality",
        "layer": "block index",
        "value": "a sampled hook_mlp_out value of one of its tokens",
    },
    "grid": {
        "task / family / hook / positions / mask / layer / statistic": "the cell",
        "n": "complete pairs",
        "rho": "Spearman ρ with quality",
        "ci_low / ci_high": "95% interval of ρ (Fisher–Bonett–Wright by default, inside [−1, 1])",
        "p_value": "two-sided p of ρ = 0 (analytic t by default: no floor)",
        "fdr_family": "the Benjamini–Hochberg family of the cell (default: one per task and statistic family)",
        "family_size": "testable cells in that family",
        "q_value": "BH q within the family",
        "significant": "q ≤ alpha",
        "abs_rho": "|ρ|",
        "covariates": "what the partial ρ holds fixed (token count, label, slot in the packed prompt)",
        "n_covariates / n_partial": "covariate columns q (dummies counted) and complete examples",
        "rho_partial / ci_low_partial / ci_high_partial / p_partial": "partial Spearman ρ given the covariates, its Fisher CI and t p (n − 2 − q df)",
        "fdr_family_partial / family_size_partial / q_partial / significant_partial": "its BH family and q (the verdict decides on these by default)",
    },
    "sets": {
        "task / metric / budget": "the baseline's random k-shot sets of that budget",
        "family / mask / layer / statistic": "the cell",
        "aggregate": "how the set's members are summarised (mean, max)",
        "n": "sets",
        "rho / ci_low / ci_high / p_value": "Spearman ρ across sets between the set feature and the set's test score",
        "fdr_family / family_size / q_value / significant": "BH within (task, statistic family)",
        "abs_rho": "|ρ|",
    },
    "decodability": {
        "task": "task name",
        "representation / mask / layer": "the representation decoded (mean hook_mlp_out of the candidate's tokens); empty for baselines",
        "kind": "representation or baseline",
        "baseline_name": "a baseline's name (label + length + slot, bag of words, sentence embedding); for a representation, the best baseline",
        "r2 / ci_low / ci_high": "out-of-fold R² of a ridge probe (5 folds, alpha by nested leave-one-out) and its bootstrap interval",
        "p_value": "permutation p (quality permuted within label, every fold refit)",
        "n / n_features": "candidates and feature columns",
        "gain / gain_low / gain_high": "R² minus the best baseline's, with a paired bootstrap interval (representations)",
        "target": "quality, or quality residualised on label, length and slot when the label explains most of it",
        "label_share": "in-sample share of quality's variance the label explains",
    },
    "masking": {
        "task / family / hook / positions / layer / statistic": "the cell",
        "n": "examples",
        "rho_full / rho_isolated": "ρ under each mask",
        "delta_rho": "ρ(full) − ρ(isolated)",
        "ci_low / ci_high": "paired-bootstrap CI of Δρ",
        "excludes_zero": "CI on one side of 0",
    },
    "comparison": {
        "task / metric / budget": "the comparison",
        "selector": "run label",
        "family": "selector family",
        "n_seeds": "seeds",
        "mean / sd": "over seeds",
        "ci_low / ci_high": "Student-t 95% CI of the mean, kept inside the metric's range",
        "mean_diff": "mean paired difference vs the baseline",
        "diff_ci_low / diff_ci_high": "its paired-t 95% CI (bounded)",
        "sd_diff": "its sd",
        "cohen_dz": "effect size d_z",
        "t_stat / p_ttest": "paired t-test",
        "p_wilcoxon": "Wilcoxon signed-rank test",
        "n_pairs": "paired seeds",
        "mde": "smallest difference the paired t-test detects at 80% power (observed sd, these seeds)",
        "better": "mean_diff > 0 and p_ttest < 0.05 (unadjusted)",
    },
    "summary": {
        "task / metric / budget": "the comparison",
        "selector": "a competing selector (every one of the family, none picked by its test mean)",
        "random_*": "baseline mean and CI",
        "mean / ci_*": "the selector's mean and CI",
        "mean_diff / diff_ci_* / p_ttest / p_wilcoxon / cohen_dz / mde": "its paired comparison with the baseline",
        "n_competing": "selectors of the family in this comparison",
        "cell / cell_rho / cell_rho_*": "the grid cell this selector read, its ρ and CI",
        "max_abs_rho / max_rho / max_rho_cell / max_rho_q": "the strongest cell of the task's grid (context, not the selector's cell)",
    },
}
TABLES["summary_sae"] = TABLES["summary"]


def _readme(names: list[str]) -> str:
    lines = ["# Result tables", "", "Written by `mechsel run` / `mechsel demo`; one parquet file per table.", ""]
    for name in names:
        if name not in TABLES:
            continue
        lines += [f"## {name}.parquet", "", "| column | meaning |", "|---|---|"]
        lines += [f"| {col} | {doc} |" for col, doc in TABLES[name].items()]
        lines.append("")
    lines += [
        "`verdict.json`: whether the paper's finding holds: `outcome` (holds / does_not_hold / inconclusive), `decided_by`, "
        "`text`, `settings` (alpha, margin, rho_bound, rho_adjust, power) and `parts` — `gain` (one line per comparison: task, "
        "budget, selector, diff with its 95% and TOST intervals, q, mde, margin, outcome) and `correlation` (one line per BH "
        "family); `baselines` per task: its 0-shot score, majority-class share, best line by mean and `below_majority` (true when no "
        "selector's 95% interval lies above the majority share: the model does not do the task, and the verdict's text says so); "
        "`sae` the same verdict for SAE selectors when they ran.",
        "`summary.txt`: the printed summary: random vs every activation selector, each task's baselines (flagged when no "
        "selector beats the majority share), the best of each selector family vs random (picked by test mean: optimistic), "
        "every selector, and the verdict.",
    ]
    return "\n".join(lines) + "\n"


def write_results(folder: str | Path, tables: Mapping[str, pd.DataFrame], verdict: Mapping[str, Any]) -> list[Path]:
    """Write every table as ``<name>.parquet``, ``verdict.json``, ``summary.txt`` and ``README.md``."""
    from mechsel.experiment.store import save_value

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [save_value(folder / name, frame) for name, frame in tables.items()]
    write_json(folder / "verdict.json", dict(verdict))
    atomic_write_text(folder / "summary.txt", f"{verdict['table']}\n\n{verdict['text']}\n")
    atomic_write_text(folder / "README.md", _readme(list(tables)))
    return written + [folder / "verdict.json", folder / "summary.txt", folder / "README.md"]


def load_results(run_dir: str | Path) -> dict[str, Any]:
    """Every table of ``<run_dir>/results`` (or of ``run_dir`` itself if it is the results folder)."""
    run_dir = Path(run_dir)
    folder = run_dir / "results" if (run_dir / "results").is_dir() else run_dir
    if not (folder / "verdict.json").is_file():
        raise DataError(f"{folder} holds no mechsel results (no verdict.json); pass the output directory of a finished run.")
    out: dict[str, Any] = {p.stem: pd.read_parquet(p) for p in sorted(folder.glob("*.parquet"))}
    out["verdict"] = json.loads((folder / "verdict.json").read_text())
    return out
