"""The decodability analysis of a run: is a candidate's quality linearly decodable from its mean
``hook_mlp_out``, beyond its label, length and slot, its sentence embedding and its words?

Reads the ``representations/<task>`` stage (present when a ``probe`` run needs it) and the
tables every run has; :func:`mechsel.analysis.decodability.decodability_table` does the
statistics. One table row per (task, mask, layer) and per baseline, every row on the same folds.

The target is the candidates' measured quality; when the label alone explains more than half of
its variance (in-sample R² of quality on label dummies), quality residualised on label, length
and slot is decoded instead, so a probe is not credited for reading the label (the table's
``target`` column says which); ``analysis.decodability_target`` fixes either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import numpy as np
import pandas as pd

from mechsel.analysis.decodability import bag_of_words, covariate_matrix, decodability_table, residualise
from mechsel.experiment.analysis_settings import DecodabilityTarget

__all__ = ["DECODABILITY_N_PERM", "LABEL_SHARE_FOR_RESIDUALS", "decodability_of_run", "format_decodability"]

DECODABILITY_N_PERM = 200
"""Permutations behind each row's p-value (floor 1/201)."""
LABEL_SHARE_FOR_RESIDUALS = 0.5
"""Above this share of quality's variance explained by the label, residualised quality is decoded."""


def decodability_of_run(
    inputs: Mapping[str, Mapping[str, Any]],
    reps: Mapping[str, Mapping[str, Any]],
    stats: pd.DataFrame,
    quality: pd.DataFrame,
    examples: pd.DataFrame,
    *,
    n_boot: int,
    level: float,
    seed: int,
    target: DecodabilityTarget = "auto",
) -> pd.DataFrame:
    """The decodability table of every task with representations (see the module docstring);
    ``target`` as :attr:`~mechsel.experiment.analysis_settings.AnalysisSettings.decodability_target`."""
    frames = []
    for task, out in reps.items():
        r = out["representations"]
        ids = [str(x) for x in r["example_ids"]]
        q = quality[quality["task"] == task].set_index("example_id")["quality"].reindex(ids).to_numpy(dtype=np.float64)
        cands = examples[(examples["task"] == task) & (examples["subset"] == "candidate")].set_index("example_id").reindex(ids)
        mine = cast(pd.DataFrame, stats[(stats["task"] == task) & (stats["family"] == "moments")])
        moments = mine.drop_duplicates(subset=["example_id"]).set_index("example_id")
        n_tokens = moments["n_tokens"].reindex(ids).to_numpy(dtype=np.float64)
        slot = moments["slot"].reindex(ids).to_numpy() if "slot" in moments.columns else None
        labels = cands["label"].to_numpy()
        ok = np.isfinite(q) & np.isfinite(n_tokens)
        cov = covariate_matrix(labels[ok], n_tokens[ok], None if slot is None else slot[ok])
        y = q[ok]
        _, label_share = residualise(y, covariate_matrix(labels[ok], np.zeros(int(ok.sum())))[:, 1:])
        decoded = "quality"
        if target == "residualised" or (target == "auto" and label_share > LABEL_SHARE_FOR_RESIDUALS):
            y, _ = residualise(y, cov)
            decoded = "quality | label, length, slot"
        baselines: dict[str, np.ndarray] = {
            "label + length + slot": cov,
            "bag of words": bag_of_words(cands["text"].astype(str).tolist())[ok],
        }
        emb = inputs.get(f"features/{task}", {}).get("embeddings")
        if emb is not None:
            baselines["sentence embedding"] = np.asarray(emb["candidates"], dtype=np.float64)[ok]
        layers = [int(x) for x in r["layers"]]
        masks = [m for m in r if m not in ("example_ids", "layers")]
        representations: dict[tuple[Any, ...], np.ndarray] = {
            ("mlp_out", mask, layer): np.asarray(r[mask][:, j], dtype=np.float64)[ok] for mask in masks for j, layer in enumerate(layers)
        }
        table = decodability_table(
            representations,
            y,
            baselines,
            strata=labels[ok],
            n_perm=DECODABILITY_N_PERM,
            n_boot=n_boot,
            level=level,
            seed=seed,
        )
        table.insert(0, "task", task)
        table["target"] = decoded
        table["label_share"] = label_share
        frames.append(table)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def format_decodability(table: pd.DataFrame) -> tuple[str, list[str]]:
    """A sentence (does any layer decode quality beyond the best baseline?) and one line per
    task and mask: the baselines' R² and the best layer's gain."""
    if table.empty:
        return "no representations were collected.", []
    reps = cast(pd.DataFrame, table[table["kind"] == "representation"])
    beyond = cast(pd.DataFrame, reps[reps["gain_low"] > 0])
    if beyond.empty:
        top = reps.loc[reps["gain"].idxmax()]
        sentence = (
            f"no layer decodes quality beyond the best baseline (largest gain {top['gain']:+.3f} "
            f"[{top['gain_low']:+.3f}, {top['gain_high']:+.3f}], {top['task']} layer {int(top['layer'])} ({top['mask']}), "
            f"over {top['baseline_name']})."
        )
    else:
        where = ", ".join(f"{t} layer {int(lay)} ({m})" for t, lay, m in zip(beyond["task"], beyond["layer"], beyond["mask"]))
        sentence = (
            f"{len(beyond)} of {len(reps)} layer × mask cells decode quality beyond the best baseline (interval of the gain in "
            f"out-of-fold R² above 0, per cell, not adjusted across cells): {where}."
        )
    lines = []
    for task, part in table.groupby("task", sort=False):
        base = cast(pd.DataFrame, part[part["kind"] == "baseline"])
        target = part["target"].iloc[0]
        lines.append(
            f"  {task} (target: {target}; label explains {part['label_share'].iloc[0]:.0%} of quality): baselines "
            + ", ".join(f"{b['baseline_name']} R² {b['r2']:+.3f} [{b['ci_low']:+.3f}, {b['ci_high']:+.3f}]" for _, b in base.iterrows())
        )
        for mask, m in cast(pd.DataFrame, part[part["kind"] == "representation"]).groupby("mask", sort=False):
            best = m.loc[m["r2"].idxmax()]
            lines.append(
                f"    mask {mask}: best layer {int(best['layer'])} R² {best['r2']:+.3f} [{best['ci_low']:+.3f}, {best['ci_high']:+.3f}] "
                f"p {best['p_value']:.3g}; gain over {best['baseline_name']} {best['gain']:+.3f} "
                f"[{best['gain_low']:+.3f}, {best['gain_high']:+.3f}]"
            )
    return sentence, lines
