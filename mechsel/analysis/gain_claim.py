"""The gain part of the verdict: does any activation-based selector beat random?

See :mod:`mechsel.analysis.verdict` for the rules."""

from __future__ import annotations

from typing import cast

import numpy as np
import pandas as pd

from mechsel.analysis.claims import PartVerdict, VerdictSettings
from mechsel.analysis.comparison import Bounds, paired_interval
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.errors import DataError

__all__ = ["gain_part"]


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
