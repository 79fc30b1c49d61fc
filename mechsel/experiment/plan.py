"""``mechsel plan RUN``: what a finished run (or a pilot) would need to decide each part.

**Gain lines.** For every gain line of the verdict that is not decided, from the run's own
per-query results:

* the variance components of its paired differences: set-to-set (between seeds, ``sd_set``) and
  query-level (within a seed, ``sd_query``), so that ``Var(seed difference) = sd_set² +
  sd_query² / n_test`` — the estimates of a one-way random-effects decomposition;
* the paired seeds that would give the non-superiority test (if the observed difference is below
  the margin) or the "beats random" test (if it is above) ``power`` at the observed difference,
  ``n = ((z_{1−α} + z_power) · sd / gap)²`` with ``gap`` the distance from the observed difference to
  the margin (or to 0), multiplied by :data:`SEQUENTIAL_INFLATION` for a group-sequential design;
* the same with twice the test queries (set-to-set spread dominating means that barely helps);
* the time the added seeds cost on this machine: two evaluations per seed (the line's run and
  the baseline) at the run's measured seconds per evaluation (``evaluate/<task>`` stage time over
  its evaluations).

**Correlation.** Per family, the candidates at which every cell's band would lie inside the bound
if the strongest |ρ| stayed what it is (:func:`mechsel.analysis.correlation_claim.candidates_needed`
when that exists; otherwise the Fisher-z half-width scaled by ``1/√(n − 3)``).

Planning numbers are estimates at the observed effects, not promises: the sequential mode
(``selection.sequential``) is what spends seeds until the answer is in.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from mechsel.analysis.summary import aligned
from mechsel.errors import DataError

__all__ = ["SEQUENTIAL_INFLATION", "gain_plan", "correlation_plan", "format_plan", "plan_run"]

SEQUENTIAL_INFLATION = 1.1
"""Seeds a group-sequential design with O'Brien–Fleming-like spending needs over the fixed design
at the same power (about 1.03–1.1 for 4–8 looks): the larger, to be safe."""


def _components(pred: pd.DataFrame, line: dict[str, Any]) -> tuple[float, float, int] | None:
    """``(sd_set, sd_query, n_test)`` of a line's per-query paired differences, or None."""
    if pred.empty or "correct" not in pred.columns:
        return None
    where = (pred["task"] == line["task"]) & (pred["budget"] == line["budget"])

    def table(sel: str) -> pd.DataFrame:
        part = pred[where & (pred["selector"] == sel)]
        return part.pivot_table(index="seed", columns="query_id", values="correct", aggfunc="first").astype(float)

    a, b = table(str(line["selector"])), table(str(line.get("baseline", "random")))
    seeds, queries = a.index.intersection(b.index), a.columns.intersection(b.columns)
    if len(seeds) < 2 or len(queries) < 2:
        return None
    d = a.loc[seeds, queries].to_numpy() - b.loc[seeds, queries].to_numpy()
    nq = d.shape[1]
    within = float(d.var(axis=1, ddof=1).mean())
    between = float(d.mean(axis=1).var(ddof=1))
    return float(np.sqrt(max(between - within / nq, 0.0))), float(np.sqrt(within)), nq


def _seeds_needed(gap: float, sd: float, alpha: float, power: float) -> float:
    if not (np.isfinite(gap) and gap > 0 and np.isfinite(sd) and sd > 0):
        return float("inf")
    return float(np.ceil(SEQUENTIAL_INFLATION * ((sps.norm.isf(alpha) + sps.norm.isf(1 - power)) * sd / gap) ** 2))


def _seconds_per_evaluation(run: Path, scores: pd.DataFrame) -> dict[str, float]:
    """Per task: seconds per evaluation, the evaluate and sequential stages' seconds over every
    evaluation the scores hold (the sequential stage's added seeds are rows of ``scores`` too).
    NaN when a stage that wrote rows was only read from the cache (its time is not this run's)."""
    manifest = json.loads((run / "manifest.json").read_text()) if (run / "manifest.json").is_file() else {}
    stages = manifest.get("stages", {})
    out = {}
    for task, part in scores.groupby("task"):
        recs = [stages[name] for name in (f"evaluate/{task}", f"sequential/{task}") if name in stages]
        n = len(part)
        timed = recs and all(not rec.get("cached") for rec in recs)
        out[str(task)] = sum(float(rec["seconds"]) for rec in recs) / n if timed and n else float("nan")
    return out


def gain_plan(tables: dict[str, Any], run: Path) -> pd.DataFrame:
    """One line per undecided gain line: variance components, seeds needed, their cost (module docstring)."""
    v = tables["verdict"]
    settings = v["settings"]
    alpha, power = float(settings["alpha"]), float(settings["power"])
    pred = tables.get("predictions", pd.DataFrame())
    per_eval = _seconds_per_evaluation(run, tables["scores"])
    rows = []
    for line in v["parts"]["gain"]["lines"]:
        if line["outcome"] != "inconclusive":
            continue
        diff, margin, n = float(line["diff"]), float(line["margin"]), int(line["n_seeds"])
        comp = _components(pred, line)
        sd_set, sd_query, nq = comp if comp is not None else (float("nan"), float("nan"), 0)
        sd = float(np.hypot(sd_set, sd_query / np.sqrt(nq))) if comp is not None else float("nan")
        if not np.isfinite(sd):
            mde = line.get("mde")
            sd = float(mde) * np.sqrt(n) / 2.8 if mde is not None and np.isfinite(float(mde)) else float("nan")
        target = "no gain (upper bound < margin)" if diff < margin else "beats random (lower bound > 0)"
        gap = margin - diff if diff < margin else diff
        need = _seeds_needed(gap, sd, alpha, power)
        need2 = _seeds_needed(gap, float(np.hypot(sd_set, sd_query / np.sqrt(2 * nq))), alpha, power) if comp else float("nan")
        extra = max(need - n, 0.0)
        rows.append(
            {
                "task": line["task"],
                "budget": line["budget"],
                "selector": line["selector"],
                "diff": diff,
                "n_seeds": n,
                "sd_set": sd_set,
                "sd_query": sd_query,
                "n_test": nq,
                "target": target,
                "seeds_needed": need,
                "seeds_needed_2x_queries": need2,
                "minutes_to_add": extra * 2 * per_eval.get(str(line["task"]), float("nan")) / 60.0,
            }
        )
    return pd.DataFrame(rows)


def correlation_plan(tables: dict[str, Any]) -> pd.DataFrame:
    """Per undecided correlation family: the candidates at which its bands would sit inside the bound."""
    part = tables["verdict"]["parts"].get("correlation")
    if not part:
        return pd.DataFrame()
    bound = float(tables["verdict"]["settings"]["rho_bound"])
    rows = []
    for fam in part["lines"]:
        if fam.get("outcome") != "inconclusive":
            continue
        n = float(fam["n"])
        rho = float(fam["max_abs_rho"])
        half_z = float(np.arctanh(min(fam["widest_abs_bound"], 0.999999))) - float(np.arctanh(rho))
        room = float(np.arctanh(bound) - np.arctanh(rho))
        if rho >= bound or room <= 0:
            need = float("inf")
        else:
            need = float(np.ceil(3 + (n - 3) * (half_z / room) ** 2))
        rows.append(
            {
                "family": fam["family"],
                "n": int(n),
                "max_abs_rho": rho,
                "widest_abs_bound": fam["widest_abs_bound"],
                "candidates_needed": need,
            }
        )
    return pd.DataFrame(rows)


def _num(x: float, fmt: str = ".0f") -> str:
    return "∞" if not np.isfinite(x) else f"{x:{fmt}}"


def format_plan(gain: pd.DataFrame, corr: pd.DataFrame) -> str:
    """The plan as plain text."""
    out = []
    if gain.empty:
        out.append("Gain part: every line is decided.")
    else:
        out.append("Gain part: seeds each undecided line needs (80% power at its observed difference; sequential design):")
        cols = [
            (c, "<" if c in ("task", "selector", "target") else ">")
            for c in (
                "task",
                "k",
                "selector",
                "diff",
                "seeds",
                "sd set",
                "sd query",
                "queries",
                "target",
                "seeds needed",
                "with 2× queries",
                "minutes",
            )
        ]
        rows = [
            [
                str(r["task"]),
                str(int(r["budget"])),
                str(r["selector"]),
                f"{r['diff']:+.3f}",
                str(int(r["n_seeds"])),
                _num(r["sd_set"], ".3f"),
                _num(r["sd_query"], ".3f"),
                str(int(r["n_test"])),
                str(r["target"]),
                _num(r["seeds_needed"]),
                _num(r["seeds_needed_2x_queries"]),
                _num(r["minutes_to_add"], ".1f"),
            ]
            for r in gain.to_dict("records")
        ]
        out.append(aligned(cols, rows))
        out.append(
            "sd set / sd query: spread of a seed's paired difference between seeds (the demonstrations drawn) and between test "
            "queries within a seed. minutes: the added seeds × 2 evaluations at this run's measured cost per evaluation. Run it "
            "with selection.sequential (enabled: true, max_seeds: N) to add them with the error kept at alpha."
        )
    if corr.empty:
        out.append("Correlation part: decided (or not assessed).")
    else:
        out.append(
            "Correlation part: candidates each undecided family needs for its bands to sit inside the bound (at its observed largest |ρ|):"
        )
        out.append(
            aligned(
                [("family", "<"), ("n", ">"), ("max |ρ|", ">"), ("widest bound", ">"), ("candidates needed", ">")],
                [
                    [str(r["family"]), str(r["n"]), f"{r['max_abs_rho']:.2f}", f"{r['widest_abs_bound']:.2f}", _num(r["candidates_needed"])]
                    for r in corr.to_dict("records")
                ],
            )
        )
    return "\n".join(out)


def plan_run(run_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The gain and correlation plans of a finished run and their text."""
    from mechsel.experiment.results import load_results

    run = Path(run_dir)
    if not run.is_dir():
        raise DataError(f"No run directory {run}; pass the output directory of a finished run (e.g. results/demo).")
    tables = load_results(run)
    gain, corr = gain_plan(tables, run), correlation_plan(tables)
    return gain, corr, format_plan(gain, corr)
