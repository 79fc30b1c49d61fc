"""A three-way verdict on the paper's finding, decided from intervals against stated margins.

The finding has two parts, each decided on its own and never from a test that merely failed to
reject:

**Gain** — "activation-based selection gives no gain over random"
(:mod:`mechsel.analysis.gain_claim`). One line per (task, metric, budget, competing selector) of
:func:`~mechsel.analysis.summary_table`, each tested by the method that is valid at its number of
seeds (:mod:`mechsel.analysis.paired`: exact sign-flip below 10 seeds or without spread, the
seeds × test-queries bootstrap for accuracy, else the paired t):

* DOES NOT HOLD when some selector beats random: its mean paired difference is positive and its
  p-value, Benjamini–Hochberg-adjusted over all lines, is at most ``alpha``;
* HOLDS (``gain_claim: non_superiority``, the default and the paper's claim) when *every* line's
  one-sided ``1 − alpha`` upper bound lies below ``margin`` (intersection–union: level ``alpha``
  without adjustment). A reliably *worse* line satisfies it and is reported as a finding of its
  own. Under ``gain_claim: equivalence`` every line must also lie above ``−margin`` (TOST);
* INCONCLUSIVE otherwise — the design could not tell. Each line carries its minimum detectable
  effect (80% power; ∞ when its exact test cannot reject at its number of seeds, never 0).

Lines of a sequential design (:mod:`mechsel.analysis.sequential`) are decided by their repeated
bounds at the look where they stopped.

``margin`` is a fraction of the metric's range (0.03 → 0.03 accuracy, 3 BLEU points).

**Correlation** — "the statistics correlate with example quality at most weakly (|ρ| ≤ 0.33)".
Over the activation cells of the correlation grid, each multiplicity family on its own
(:mod:`mechsel.analysis.grid`):

* DOES NOT HOLD when some cell's |ρ| is shown above the bound. Under ``rho_adjust: max_t``
  (default) its max-T adjusted p-value of ``|ρ| > bound`` (:mod:`mechsel.analysis.simultaneous`,
  family-wise within its family) is ≤ ``alpha / F``; otherwise the one-sided test of
  ``|ρ| ≤ bound`` (:func:`~mechsel.analysis.correlation.exceeds_bound_p`), BH-adjusted within its
  family, has q ≤ ``alpha / F``. ``F`` is the number of families in the claim (e.g. one per
  task): the overall "some cell is above" is a union over families, so its error is split
  between them (Bonferroni across families), keeping it at ``alpha`` overall;
* HOLDS when every cell's interval lies inside ``(−bound, bound)``. ``rho_adjust`` says which:
  ``"max_t"`` the simultaneous ``1 − 2·alpha`` max-T band of its family (grid columns
  ``band_low`` / ``band_high``, which use the dependence between cells); ``"bonferroni"`` each
  cell's ``1 − 2·alpha/m`` interval, ``m`` the family's size; ``"intersection_union"`` each
  cell's ``1 − 2·alpha`` interval (valid for an all-cells claim: every cell must pass on its
  own). An all-cells claim over several families is an intersection too, so no split across
  families is needed there;
* INCONCLUSIVE otherwise, with the |ρ| the design would detect above the bound at 80% power.

**Overall**: DOES NOT HOLD if a part does not hold, HOLDS if both parts hold, else INCONCLUSIVE;
the sentence names the part that decided it.

**Baselines.** Given each task's 0-shot score and majority-class share
(:func:`~mechsel.analysis.baselines.baseline_check`), the verdict carries them, and for a task
where no selector is shown above the majority share it adds a caution naming the task: the model
does not do it, so its lines say nothing about selection. The outcome itself is decided as above.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from mechsel.analysis.claims import WORD, Outcome, PartVerdict, RhoAdjust, VerdictSettings, jsonable
from mechsel.analysis.comparison import Bounds
from mechsel.analysis.correlation_claim import correlation_part
from mechsel.analysis.gain_claim import gain_part

__all__ = ["Outcome", "RhoAdjust", "VerdictSettings", "PartVerdict", "Verdict", "verdict", "gain_part", "correlation_part"]


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
            "parts": jsonable(parts),
        }
        if self.baselines is not None:
            out["baselines"] = jsonable(self.baselines)
        return out


def verdict(
    summary: pd.DataFrame,
    grid: pd.DataFrame | None = None,
    *,
    settings: VerdictSettings | None = None,
    bounds: dict[str, Bounds] | None = None,
    model: str = "this model",
    basis: str = "ρ",
    baselines: pd.DataFrame | None = None,
    sequential: pd.DataFrame | None = None,
    n_looks: int | None = None,
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
        sequential: looks of the gain lines run under a sequential design
            (:func:`~mechsel.analysis.sequential.sequential_looks`), ``n_looks`` its looks.
    """
    settings = settings or VerdictSettings()
    gain = gain_part(summary, settings, bounds, sequential, n_looks)
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
    head = f"The paper's finding {WORD[outcome]} on {model}, decided by the {' and '.join(decided)} part{'s' if len(decided) > 1 else ''}"
    body = "; ".join(f"{name}: {WORD[p.outcome]} — {p.text}" for name, p in parts.items())
    if corr is None:
        body += "; correlation: not assessed (no grid)"
    text = f"{head}. {body}."
    per_task = None
    if baselines is not None:
        from mechsel.analysis.baselines import flag_sentence

        per_task = {str(r["task"]): {k: v for k, v in r.items() if k != "task"} for r in baselines.to_dict("records")}
        text += "".join(f" Caution, {flag_sentence(r)}" for r in baselines.to_dict("records") if r["below_majority"])
    return Verdict(outcome, gain, corr, " and ".join(decided), text, settings, per_task)
