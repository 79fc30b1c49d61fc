"""Can the model do the task at all? Each task's 0-shot score and majority-class share beside its selectors.

A classification model that cannot do a task answers (nearly) always one label, so every selector
scores about the share of that label, and random and the competing selectors then tie for a
reason that has nothing to do with which demonstrations were chosen. :func:`baseline_check`
reads the evaluate stage's ``baselines`` (per task: the 0-shot score, the majority-class share)
beside the :func:`~mechsel.analysis.compare_selectors` table and flags a classification task
where **no selector is shown above the majority share**: no line (selector × budget, the
baseline's own included) has its 95% interval over seeds above it — or, for a line of a single
seed (no interval), its mean. The rule asks for evidence, not a mean that happens to lie above
the share. Generation tasks have no majority class and are never flagged.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd

from mechsel.errors import DataError

__all__ = ["baseline_check", "format_baselines", "flag_sentence"]

_NEEDED = ("task", "metric", "zero_shot", "majority", "n_test")


def _above(line: pd.Series, majority: float) -> bool:
    low = cast(float, line["ci_low"])
    return bool(low > majority) if np.isfinite(low) else bool(cast(float, line["mean"]) > majority)


def baseline_check(baselines: pd.DataFrame, comparison: pd.DataFrame) -> pd.DataFrame:
    """One line per task of ``baselines``: its columns, the task's best line by test mean
    (``best_selector``, ``best_budget``, ``best_mean``, ``best_ci_low``, ``best_ci_high``), how many
    lines are shown above the majority share (``lines_above_majority`` of ``n_lines``) and
    ``below_majority`` — True for a classification task where none is (module docstring).

    Args:
        baselines: the ``baselines`` table (task, metric, zero_shot, majority, n_test, ...).
        comparison: the ``comparison`` table (task, metric, budget, selector, mean, ci_low, ...);
            only its lines of the task's headline metric count.
    """
    missing = [c for c in _NEEDED if c not in baselines.columns]
    if missing:
        raise DataError(f"The baselines table lacks columns {missing}; it is the evaluate stage's 'baselines' output.")
    rows = []
    for _, b in baselines.iterrows():
        lines = cast(pd.DataFrame, comparison[(comparison["task"] == b["task"]) & (comparison["metric"] == b["metric"])])
        majority = cast(float, b["majority"])
        row: dict[str, Any] = dict(b)
        if lines.empty:
            row.update(best_selector="", best_budget=-1, best_mean=np.nan, best_ci_low=np.nan, best_ci_high=np.nan)
            above = 0
        else:
            best = lines.loc[lines["mean"].idxmax()]
            row.update(
                best_selector=str(best["selector"]),
                best_budget=int(cast(int, best["budget"])),
                best_mean=float(cast(float, best["mean"])),
                best_ci_low=float(cast(float, best["ci_low"])),
                best_ci_high=float(cast(float, best["ci_high"])),
            )
            above = sum(_above(line, majority) for _, line in lines.iterrows()) if np.isfinite(majority) else 0
        row.update(
            n_lines=len(lines),
            lines_above_majority=int(above),
            below_majority=bool(np.isfinite(majority) and len(lines) > 0 and above == 0),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def flag_sentence(row: pd.Series | dict[str, Any]) -> str:
    """The sentence on a task flagged by :func:`baseline_check` (the verdict leads it with
    "Caution,", the printed table with "FLAG")."""
    label = f", always answering {row['majority_label']!r}" if row.get("majority_label") else ""
    return (
        f"task {row['task']}: no selector is shown above its majority-class share {row['majority']:.3f}{label} "
        f"(best: {row['best_selector']} at k {row['best_budget']}, {row['best_mean']:.3f} [{row['best_ci_low']:.3f}, "
        f"{row['best_ci_high']:.3f}]; 0-shot {row['zero_shot']:.3f}): the model does not do this task at these budgets, "
        f"so its comparison with random says nothing about which demonstrations help."
    )


def format_baselines(checked: pd.DataFrame) -> str:
    """The :func:`baseline_check` table as aligned text, one line per task, and one ``FLAG`` line
    per flagged task."""
    from mechsel.analysis.summary import aligned

    columns = [
        ("task", "<"),
        ("metric", "<"),
        ("0-shot [95% CI]", "<"),
        ("majority", "<"),
        ("n_test", ">"),
        ("best line by mean [95% CI]", "<"),
        ("above majority", "<"),
    ]
    rows, flags = [], []
    for _, r in checked.iterrows():
        has_majority = bool(np.isfinite(cast(float, r["majority"])))
        label = str(r.get("majority_label") or "")
        majority = f"{r['majority']:.3f}" + (f" ({label})" if label else "") if has_majority else "—"
        best = (
            f"{r['best_selector']} k {r['best_budget']} {r['best_mean']:.3f} [{r['best_ci_low']:.3f}, {r['best_ci_high']:.3f}]"
            if str(r["best_selector"])
            else "—"
        )
        flagged = bool(r["below_majority"])
        above = "—" if not has_majority else "NO: FLAGGED" if flagged else f"{r['lines_above_majority']} of {r['n_lines']} lines"
        rows.append(
            [
                str(r["task"]),
                str(r["metric"]),
                f"{r['zero_shot']:.3f} [{r.get('zero_shot_ci_low', np.nan):.3f}, {r.get('zero_shot_ci_high', np.nan):.3f}]",
                majority,
                str(int(cast(int, r["n_test"]))),
                best,
                above,
            ]
        )
        if flagged:
            flags.append(f"FLAG {flag_sentence(r)}")
    return "\n".join([aligned(columns, rows), *flags])
