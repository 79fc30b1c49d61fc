"""The gain part of the verdict: does any activation-based selector beat random?

One line per (task, metric, budget, competing selector) of
:func:`~mechsel.analysis.summary_table`, each with the test and interval method
:func:`~mechsel.analysis.paired.paired_inference` chose for it (named in ``test`` and
``interval``). The claim is the paper's "no gain over random" (``gain_claim:
non_superiority``, the default), or optionally equivalence:

* DOES NOT HOLD when some line reliably beats random: positive mean difference and its
  two-sided p-value, Benjamini–Hochberg-adjusted over all lines, at most ``alpha``;
* HOLDS, under ``non_superiority``, when *every* line's one-sided ``1 − alpha`` upper bound lies
  below the margin (an intersection–union test: level ``alpha`` without adjustment). A line that
  is reliably *worse* than random satisfies it and is reported as its own finding;
* HOLDS, under ``equivalence``, when every line's one-sided bounds lie inside ``±margin`` (two
  one-sided tests);
* INCONCLUSIVE otherwise, naming the undecided lines with their minimum detectable effects.

Lines of a sequential design (``sequential`` looks, :mod:`mechsel.analysis.sequential`) are
decided by their repeated bounds at the look where they stopped instead: there "beats random"
is Bonferroni over lines inside the boundaries, and the fixed-design bounds are not used.

``margin`` is a fraction of the metric's range (0.03 → 0.03 accuracy, 3 BLEU points).
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from mechsel.analysis.claims import PartVerdict, VerdictSettings
from mechsel.analysis.comparison import Bounds, paired_interval
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.analysis.sequential import MIN_DECIDING_PAIRS
from mechsel.errors import DataError

__all__ = ["gain_part"]

_NEED = ["selector", "mean_diff", "sd_diff", "n_pairs", "mde"]


def _bounds_of(r: pd.Series, a: float, span: tuple[float, float] | None) -> tuple[float, float, str]:
    """One-sided ``1 − a`` bounds of a line: from its own method when the summary carries them,
    else the paired t interval at ``1 − 2a`` (an older summary)."""
    if "diff_upper" in r and np.isfinite(float(cast(float, r.get("diff_upper", np.nan)))):
        return float(cast(float, r["diff_lower"])), float(cast(float, r["diff_upper"])), str(r.get("interval", ""))
    lo, hi = paired_interval(
        float(cast(float, r["mean_diff"])), float(cast(float, r["sd_diff"])), int(cast(float, r["n_pairs"])), 1.0 - 2.0 * a, span
    )
    return lo, hi, "t"


def _sequential_line(looks: pd.DataFrame | None, r: pd.Series) -> pd.Series | None:
    """The last look of the line ``r`` in a sequential design, if it has one."""
    if looks is None or looks.empty:
        return None
    mine = looks
    for k in ("task", "metric", "budget", "selector"):
        if k in mine.columns and k in r:
            mine = cast(pd.DataFrame, mine[mine[k] == r[k]])
    return None if mine.empty else mine.sort_values("look").iloc[-1]


def gain_part(
    summary: pd.DataFrame,
    settings: VerdictSettings,
    bounds: dict[str, Bounds] | None = None,
    sequential: pd.DataFrame | None = None,
    n_looks: int | None = None,
) -> PartVerdict:
    """Decide the gain part from a :func:`~mechsel.analysis.summary_table` (module docstring).

    ``bounds`` maps metric names to their ranges (default: unbounded, margin in metric units).
    ``sequential``: the looks of the lines run under a sequential design
    (:func:`~mechsel.analysis.sequential.sequential_looks`), ``n_looks`` its number of looks.
    The one-sided bounds in ``summary`` must be at ``settings.alpha`` (``compare_selectors(alpha=...)``).
    """
    missing = [c for c in _NEED if c not in summary.columns]
    if missing:
        raise DataError(f"The summary table lacks columns {missing}; build it with summary_table(compare_selectors(...)).")
    if summary.empty:
        raise DataError("The summary table is empty: no budget had both the baseline and a competing selector.")
    if "bound_alpha" in summary.columns and not np.allclose(summary["bound_alpha"].dropna().to_numpy(dtype=float), settings.alpha):
        raise DataError(
            f"The summary's one-sided bounds are at alpha {sorted(set(summary['bound_alpha']))}, the verdict's alpha is "
            f"{settings.alpha}: build the comparison with compare_selectors(..., alpha={settings.alpha})."
        )
    a = settings.alpha
    pcol = "p_value" if "p_value" in summary.columns else "p_ttest"
    q, _ = benjamini_hochberg(summary[pcol].to_numpy(dtype=float), alpha=a)
    equivalence = settings.gain_claim == "equivalence"
    lines: list[dict[str, Any]] = []
    for i, (_, r) in enumerate(summary.reset_index(drop=True).iterrows()):
        rng = (bounds or {}).get(str(r.get("metric")))
        width = None if rng is None else rng[1] - rng[0]
        margin = settings.margin * (width if width is not None else 1.0)
        span = None if width is None else (-width, width)
        diff, n = float(cast(float, r["mean_diff"])), int(cast(float, r["n_pairs"]))
        lo, hi, method = _bounds_of(r, a, span)
        seq = _sequential_line(sequential, r)
        design = "fixed"
        if seq is not None:
            look, pairs = int(cast(int, seq["look"])), int(cast(int, seq["n_pairs"]))
            design = f"sequential, look {look} of {n_looks or '?'} ({pairs} seeds)"
        if seq is not None and int(cast(int, seq["n_pairs"])) >= MIN_DECIDING_PAIRS:
            lo, hi = float(cast(float, seq["seq_lower"])), float(cast(float, seq["seq_upper"]))
            beats, worse = bool(seq["beats"]), bool(seq["worse"])
            method = "repeated bounds (alpha spending)"
        else:  # the fixed design's test (also a sequential line whose looks had too few seeds to decide)
            beats = bool(diff > 0 and np.isfinite(q[i]) and q[i] <= a)
            worse = bool(diff < 0 and np.isfinite(q[i]) and q[i] <= a)
        non_superior = bool(np.isfinite(hi) and hi < margin)
        holds = non_superior and (not equivalence or bool(np.isfinite(lo) and lo > -margin))
        mde = float(cast(float, r["mde"]))
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
                "bound_low": lo,
                "bound_high": hi,
                "test": r.get("test", "paired t"),
                "interval": method,
                "design": design,
                "p_value": r[pcol],
                "q_bh": q[i],
                "mde": mde,
                "margin": margin,
                "n_seeds": n,
                "beats_random": beats,
                "worse_than_random": worse,
                "non_superior": non_superior,
                "equivalent": bool(non_superior and np.isfinite(lo) and lo > -margin),
                "mde_exceeds_margin": bool(not np.isfinite(mde) or mde > margin),
                "outcome": "does_not_hold" if beats else "holds" if holds else "inconclusive",
            }
        )
    worse_lines = [x for x in lines if x["worse_than_random"]]
    worse_text = (
        "; reliably worse than random: "
        + ", ".join(f"{x['selector']} ({x['task']}, k {x['budget']}: {x['diff']:+.3f})" for x in worse_lines)
        if worse_lines
        else ""
    )
    if any(x["beats_random"] for x in lines):
        best = max((x for x in lines if x["beats_random"]), key=lambda x: x["diff"])
        how = f"BH q = {best['q_bh']:.2g} over {len(lines)} lines" if best["design"] == "fixed" else best["design"]
        return PartVerdict(
            "does_not_hold",
            (
                f"{best['selector']} beats random ({best['task']}, k {best['budget']}: {best['diff']:+.3f} "
                f"[{best['ci_low']:+.3f}, {best['ci_high']:+.3f}], {how})"
            ),
            lines,
        )
    if all(x["outcome"] == "holds" for x in lines):
        widest = max(lines, key=lambda x: x["bound_high"])
        what = (
            f"every competing selector is equivalent to random within ±{widest['margin']:.3g}"
            if equivalence
            else f"no competing selector gains {widest['margin']:.3g} or more over random"
        )
        return PartVerdict(
            "holds",
            (
                f"{what} (all {len(lines)} one-sided {100 * (1 - a):.0f}% upper bounds below the margin; highest "
                f"{widest['bound_high']:+.3f}, {widest['selector']} {widest['task']} k {widest['budget']}){worse_text}"
            ),
            lines,
        )
    undecided = [x for x in lines if x["outcome"] == "inconclusive"]
    shown = "equivalent within ±" if equivalence else "below a gain of "
    text = (
        f"no selector is shown to beat random, but {len(undecided)} of {len(lines)} lines are not shown {shown}{undecided[0]['margin']:.3g}"
    )
    text += " (" + "; ".join(f"{x['task']} k {x['budget']}: upper bound {x['bound_high']:+.3f}" for x in undecided) + ")"
    over = [x for x in undecided if x["mde_exceeds_margin"]]
    if over:
        mdes = [x["mde"] for x in over]
        span_text = f"{min(mdes):.3f}–{max(mdes):.3f}" if all(np.isfinite(mdes)) else "no effect at all (too few seeds for its exact test)"
        text += (
            f"; the design could only detect gains of {span_text} at {settings.power:.0%} power on {len(over)} of them, "
            f"more than the margin — more seeds would decide (mechsel plan RUN says how many)"
        )
    return PartVerdict("inconclusive", text + worse_text, lines)
