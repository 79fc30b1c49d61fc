"""A three-way verdict on the paper's finding, decided from intervals against stated margins.

The finding has two parts, each decided on its own and never from a test that merely failed to
reject:

**Gain** — "activation-based selection gives no gain over random". One line per (task, metric,
budget, competing selector) of :func:`~mechsel.analysis.summary_table`:

* DOES NOT HOLD when some selector beats random: its mean paired difference is positive and its
  paired-t p-value, Benjamini–Hochberg-adjusted over all lines, is at most ``alpha``;
* HOLDS when *every* line is shown equivalent to random: the ``1 − 2·alpha`` paired-t interval of
  the difference lies inside ``±margin`` (two one-sided tests at ``alpha``; requiring it of every
  line is an intersection–union test, level ``alpha`` without adjustment);
* INCONCLUSIVE otherwise — the design could not tell. Each line carries its minimum detectable
  effect (80% power); when it exceeds the margin the text says so.

``margin`` is a fraction of the metric's range (0.03 → 0.03 accuracy, 3 BLEU points).

**Correlation** — "the statistics correlate with example quality at most weakly (|ρ| ≤ 0.33)".
Over the activation cells of the correlation grid, each multiplicity family on its own
(:mod:`mechsel.analysis.grid`):

* DOES NOT HOLD when some cell's |ρ| is shown above the bound: the one-sided test of
  ``|ρ| ≤ bound`` (:func:`~mechsel.analysis.correlation.exceeds_bound_p`), BH-adjusted within its
  family, has q ≤ ``alpha``;
* HOLDS when every cell's adjusted interval lies inside ``(−bound, bound)``. ``rho_adjust``
  says how it is adjusted: ``"bonferroni"`` (default) takes each cell's ``1 − 2·alpha/m``
  interval, ``m`` the family's size (simultaneous intervals); ``"intersection_union"`` takes
  ``1 − 2·alpha`` (valid for an all-cells claim, less conservative);
* INCONCLUSIVE otherwise, with the |ρ| the design would detect above the bound at 80% power.

**Overall**: DOES NOT HOLD if a part does not hold, HOLDS if both parts hold, else INCONCLUSIVE;
the sentence names the part that decided it.

**Baselines.** Given each task's 0-shot score and majority-class share
(:func:`~mechsel.analysis.baselines.baseline_check`), the verdict carries them, and for a task
where no selector is shown above the majority share it adds a caution naming the task: the model
does not do it, so its lines say nothing about selection. The outcome itself is decided as above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from mechsel.analysis.comparison import Bounds, paired_interval
from mechsel.analysis.correlation import exceeds_bound_p, fisher_interval, fisher_se
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.analysis.summary import PAPER_RHO_BOUND, describe_cell
from mechsel.errors import ConfigError, DataError

__all__ = ["Outcome", "RhoAdjust", "VerdictSettings", "PartVerdict", "Verdict", "verdict", "gain_part", "correlation_part"]

Outcome = Literal["holds", "does_not_hold", "inconclusive"]
"""The three ways a claim can come out."""
RhoAdjust = Literal["bonferroni", "intersection_union"]
"""How the correlation part's all-cells-below claim is adjusted for the number of cells."""

_WORD = {"holds": "HOLDS", "does_not_hold": "DOES NOT HOLD", "inconclusive": "is INCONCLUSIVE"}


@dataclass(frozen=True)
class VerdictSettings:
    """How the verdict decides (module docstring)."""

    alpha: float = 0.05
    """Level of every test and FDR of every Benjamini–Hochberg correction."""
    margin: float = 0.03
    """Equivalence margin of the gain part, as a fraction of the metric's range."""
    rho_bound: float = PAPER_RHO_BOUND
    """|ρ| above which a correlation is stronger than the paper reports."""
    rho_adjust: RhoAdjust = "bonferroni"
    """Adjustment of the correlation part's intervals for the number of cells."""
    power: float = 0.8
    """Power at which minimum detectable effects are stated."""

    def __post_init__(self) -> None:
        for name in ("alpha", "margin", "rho_bound", "power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ConfigError(f"verdict {name} must lie in (0, 1), got {v!r}.")
        if self.power <= self.alpha:
            raise ConfigError(f"power ({self.power}) must exceed alpha ({self.alpha}); 0.8 is the convention.")
        if self.rho_adjust not in ("bonferroni", "intersection_union"):
            raise ConfigError(f"rho_adjust must be 'bonferroni' or 'intersection_union', got {self.rho_adjust!r}.")


@dataclass(frozen=True)
class PartVerdict:
    """One part of the finding (gain or correlation), decided."""

    outcome: Outcome
    """holds / does_not_hold / inconclusive."""
    text: str
    """Why, in one sentence."""
    lines: list[dict[str, Any]] = field(default_factory=list)
    """The evidence: one dict per comparison line (gain) or per family (correlation)."""


@dataclass(frozen=True)
class Verdict:
    """Whether the paper's finding holds, part by part, with the sentence that says so."""

    outcome: Outcome
    """Overall: does_not_hold if a part does not hold, holds if both hold, else inconclusive."""
    gain: PartVerdict
    """No gain of the competing selectors over random."""
    correlation: PartVerdict | None
    """Only weak correlations of the statistics with quality (None without a grid)."""
    decided_by: str
    """Which part(s) decided the overall outcome."""
    text: str
    """The plain-language verdict."""
    settings: VerdictSettings
    """How it was decided."""
    baselines: dict[str, dict[str, Any]] | None = None
    """Per task: its 0-shot score, majority-class share, best line and ``below_majority`` flag
    (:func:`~mechsel.analysis.baselines.baseline_check`); ``None`` when not given."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``outcome``, ``decided_by``, ``text``, ``settings``, per part ``outcome``,
        ``text`` and its lines, and ``baselines`` when given (``verdict.json``)."""
        parts = {"gain": asdict(self.gain)}
        if self.correlation is not None:
            parts["correlation"] = asdict(self.correlation)
        out = {
            "outcome": self.outcome,
            "decided_by": self.decided_by,
            "text": self.text,
            "settings": asdict(self.settings),
            "parts": _jsonable(parts),
        }
        if self.baselines is not None:
            out["baselines"] = _jsonable(self.baselines)
        return out


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    return obj


def _where(row: pd.Series) -> str:
    return ", ".join(f"{k} {row[k]}" for k in ("task", "budget") if k in row and bool(pd.notna(row[k])))


def gain_part(summary: pd.DataFrame, settings: VerdictSettings, bounds: dict[str, Bounds] | None = None) -> PartVerdict:
    """Decide the gain part from a :func:`~mechsel.analysis.summary_table` (module docstring).

    ``bounds`` maps metric names to their ranges (default: unbounded, margin in metric units).
    """
    need = ["selector", "mean_diff", "sd_diff", "n_pairs", "p_ttest", "mde"]
    missing = [c for c in need if c not in summary.columns]
    if missing:
        raise DataError(f"The summary table lacks columns {missing}; build it with summary_table(compare_selectors(...)).")
    if summary.empty:
        raise DataError("The summary table is empty: no budget had both the baseline and a competing selector.")
    a = settings.alpha
    q, _ = benjamini_hochberg(summary["p_ttest"].to_numpy(dtype=float), alpha=a)
    lines = []
    for i, (_, r) in enumerate(summary.reset_index(drop=True).iterrows()):
        rng = (bounds or {}).get(str(r.get("metric")))
        width = None if rng is None else rng[1] - rng[0]
        margin = settings.margin * (width if width is not None else 1.0)
        span = None if width is None else (-width, width)
        diff, n = float(cast(float, r["mean_diff"])), int(cast(float, r["n_pairs"]))
        lo, hi = paired_interval(diff, float(cast(float, r["sd_diff"])), n, 1.0 - 2.0 * a, span)
        beats = bool(diff > 0 and np.isfinite(q[i]) and q[i] <= a)
        worse = bool(diff < 0 and np.isfinite(q[i]) and q[i] <= a)
        equivalent = bool(np.isfinite(lo) and -margin < lo and hi < margin)
        lines.append(
            {
                "task": r.get("task"),
                "metric": r.get("metric"),
                "budget": r.get("budget"),
                "selector": r["selector"],
                "cell": r.get("cell", ""),
                "diff": diff,
                "ci_low": r.get("diff_ci_low", np.nan),
                "ci_high": r.get("diff_ci_high", np.nan),
                "tost_low": lo,
                "tost_high": hi,
                "p_ttest": r["p_ttest"],
                "q_bh": q[i],
                "mde": r["mde"],
                "margin": margin,
                "n_seeds": n,
                "beats_random": beats,
                "worse_than_random": worse,
                "equivalent": equivalent,
                "mde_exceeds_margin": bool(np.isfinite(r["mde"]) and r["mde"] > margin),
                "outcome": "does_not_hold" if beats else "holds" if equivalent else "inconclusive",
            }
        )
    if any(x["beats_random"] for x in lines):
        best = max((x for x in lines if x["beats_random"]), key=lambda x: x["diff"])
        return PartVerdict(
            "does_not_hold",
            (
                f"{best['selector']} beats random ({best['task']}, k {best['budget']}: {best['diff']:+.3f} "
                f"[{best['ci_low']:+.3f}, {best['ci_high']:+.3f}], BH q = {best['q_bh']:.2g} over {len(lines)} lines)"
            ),
            lines,
        )
    if all(x["equivalent"] for x in lines):
        widest = max(lines, key=lambda x: max(abs(x["tost_low"]), abs(x["tost_high"])))
        return PartVerdict(
            "holds",
            (
                f"every competing selector is equivalent to random within ±{widest['margin']:.3g} (all {len(lines)} "
                f"{100 * (1 - 2 * a):.0f}% intervals inside the margin; widest {widest['tost_low']:+.3f} to "
                f"{widest['tost_high']:+.3f})"
            ),
            lines,
        )
    undecided = [x for x in lines if not x["equivalent"]]
    over = [x for x in undecided if x["mde_exceeds_margin"]]
    text = (
        f"no selector is shown to beat random, but {len(undecided)} of {len(lines)} lines are not shown equivalent "
        f"within ±{undecided[0]['margin']:.3g}"
    )
    if over:
        mdes = [x["mde"] for x in over]
        text += (
            f"; the design could only detect gains of {min(mdes):.3f}–{max(mdes):.3f} at "
            f"{settings.power:.0%} power on {len(over)} of them, more than the margin — more seeds would decide"
        )
    worse = [x for x in lines if x["worse_than_random"]]
    if worse:
        text += f"; {len(worse)} line(s) are reliably worse than random"
    return PartVerdict("inconclusive", text, lines)


def correlation_part(grid: pd.DataFrame, settings: VerdictSettings, basis: str = "ρ") -> PartVerdict:
    """Decide the correlation part from the activation lines of a correlation grid (module docstring).

    The grid needs ``rho``, ``n`` and ``fdr_family`` (as :func:`~mechsel.analysis.correlation_grid`
    writes it); pass only the cells the claim is about (e.g. the moments, not SAE latents). For a
    partial ρ pass ``n`` as the effective size ``n − q`` (``q`` covariate columns) and name it in
    ``basis`` (e.g. ``"partial ρ given n_tokens, label"``), which the sentence then uses.
    """
    missing = [c for c in ("rho", "n", "fdr_family") if c not in grid.columns]
    if missing:
        raise DataError(f"The correlation grid lacks columns {missing}; build it with correlation_grid(...).")
    g = grid[np.isfinite(grid["rho"].to_numpy(dtype=float)) & (grid["n"] > 3)].copy()
    if g.empty:
        return PartVerdict("inconclusive", f"no cell of the grid had more than 3 examples with a finite {basis}")
    a, b = settings.alpha, settings.rho_bound
    families = []
    for fam, cells in g.groupby("fdr_family", sort=True):
        m = len(cells)
        rho, n = cells["rho"].to_numpy(dtype=float), cells["n"].to_numpy(dtype=float)
        q, shown = benjamini_hochberg(exceeds_bound_p(rho, n, b), alpha=a)
        level = 1.0 - 2.0 * a / m if settings.rho_adjust == "bonferroni" else 1.0 - 2.0 * a
        lo, hi = fisher_interval(rho, n, level)
        below = (lo > -b) & (hi < b)
        top = int(np.argmax(np.abs(rho)))
        # |ρ| detected above the bound at the stated power, one-sided at the Bonferroni level
        z_needed = sps.norm.isf(a / m) + sps.norm.isf(1.0 - settings.power)
        detectable = float(np.tanh(np.arctanh(b) + z_needed * float(np.median(fisher_se(np.full(m, b), n)))))
        top_row = cells.iloc[top]
        families.append(
            {
                "family": fam,
                "cells": m,
                "n": int(np.median(n)),
                "max_abs_rho": float(abs(rho[top])),
                "max_rho_cell": describe_cell(top_row),
                "max_rho_q_above": float(q[top]),
                "cells_shown_above": int(shown.sum()),
                "shown_above": [describe_cell(cells.iloc[i]) for i in np.flatnonzero(shown)],
                "cells_shown_below": int(below.sum()),
                "interval_level": level,
                "widest_abs_bound": float(np.max(np.maximum(np.abs(lo), np.abs(hi)))),
                "detectable_rho": detectable,
                "outcome": "does_not_hold" if shown.any() else "holds" if below.all() else "inconclusive",
            }
        )
    above = [f for f in families if f["cells_shown_above"]]
    if above:
        f = max(above, key=lambda f: f["max_abs_rho"])
        return PartVerdict(
            "does_not_hold",
            (
                f"{sum(x['cells_shown_above'] for x in above)} cell(s) correlate with quality more strongly than |{basis}| = {b:.2f}, "
                f"e.g. {f['max_rho_cell']} in {f['family']} (|{basis}| = {f['max_abs_rho']:.2f}, BH q of |{basis}| > {b:.2f}: "
                f"{f['max_rho_q_above']:.2g} over {f['cells']} cells)"
            ),
            families,
        )
    if all(f["outcome"] == "holds" for f in families):
        return PartVerdict(
            "holds",
            (
                f"every cell's {settings.rho_adjust} interval of {basis} lies inside ±{b:.2f} (largest bound "
                f"{max(f['widest_abs_bound'] for f in families):.2f})"
            ),
            families,
        )
    per_family = "; ".join(
        f"{f['family']}: max |{basis}| {f['max_abs_rho']:.2f} ({f['max_rho_cell']}), n = {f['n']}, detectable ≥ {f['detectable_rho']:.2f}"
        for f in families
    )
    return PartVerdict(
        "inconclusive",
        (
            f"no cell is shown above |{basis}| = {b:.2f}, but not every cell is shown below it "
            f"(intervals at {settings.rho_adjust} level reach up to {max(f['widest_abs_bound'] for f in families):.2f}); "
            f"per family ({families[0]['cells']} cells each, n effective, |{basis}| the design detects above {b:.2f} at "
            f"{settings.power:.0%} power): {per_family}"
        ),
        families,
    )


def verdict(
    summary: pd.DataFrame,
    grid: pd.DataFrame | None = None,
    *,
    settings: VerdictSettings | None = None,
    bounds: dict[str, Bounds] | None = None,
    model: str = "this model",
    basis: str = "ρ",
    baselines: pd.DataFrame | None = None,
) -> Verdict:
    """Decide the paper's finding from a summary table and (optionally) the activation cells of
    the correlation grid; see the module docstring for every rule.

    Args:
        summary: :func:`~mechsel.analysis.summary_table` of the competing family.
        grid: the grid lines the correlation claim is about (e.g. ``grid[grid.family == "moments"]``).
        settings: alpha, margin, bound, adjustment, power.
        bounds: metric ranges (e.g. :data:`mechsel.icl.metrics.METRIC_RANGES`), for bounded
            intervals and margins stated as a fraction of the range.
        model: named in the sentence.
        basis: what the grid's ``rho`` is (see :func:`correlation_part`).
        baselines: :func:`~mechsel.analysis.baselines.baseline_check` of the tasks; a flagged
            task adds a caution to the sentence.
    """
    settings = settings or VerdictSettings()
    gain = gain_part(summary, settings, bounds)
    corr = correlation_part(grid, settings, basis) if grid is not None else None
    parts = {"gain": gain, **({"correlation": corr} if corr is not None else {})}
    failing = [name for name, p in parts.items() if p.outcome == "does_not_hold"]
    if failing:
        outcome: Outcome = "does_not_hold"
        decided = failing
    elif all(p.outcome == "holds" for p in parts.values()):
        outcome, decided = "holds", list(parts)
    else:
        outcome = "inconclusive"
        decided = [name for name, p in parts.items() if p.outcome == "inconclusive"]
    head = f"The paper's finding {_WORD[outcome]} on {model}, decided by the {' and '.join(decided)} part{'s' if len(decided) > 1 else ''}"
    body = "; ".join(f"{name}: {_WORD[p.outcome]} — {p.text}" for name, p in parts.items())
    if corr is None:
        body += "; correlation: not assessed (no grid)"
    text = f"{head}. {body}."
    per_task = None
    if baselines is not None:
        from mechsel.analysis.baselines import flag_sentence

        per_task = {str(r["task"]): {k: v for k, v in r.items() if k != "task"} for r in baselines.to_dict("records")}
        text += "".join(f" Caution, {flag_sentence(r)}" for r in baselines.to_dict("records") if r["below_majority"])
    return Verdict(outcome, gain, corr, " and ".join(decided), text, settings, per_task)
