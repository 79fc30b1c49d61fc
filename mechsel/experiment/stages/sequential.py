"""``sequential/<task>``: seeds added in batches to the gain lines still undecided.

A line is one competing run of the activation family against the baseline at one budget. After
``evaluate/<task>`` the stage looks at every line (:func:`mechsel.analysis.sequential.sequential_looks`);
for each line still undecided it selects and evaluates the next seeds — the line's run and the
baseline, at that budget only — up to the line's next look, then looks again, until every line is
decided or has the design's last look. Selections and evaluations are the same units as in
``select`` and ``evaluate`` (:class:`~mechsel.experiment.stages.select.Selecting`,
:func:`~mechsel.experiment.stages.evaluate.evaluation_unit`), each checkpointed, so an interrupted
stage resumes where it stopped and its numbers do not depend on the interruption.

Outputs ``selections``, ``scores`` and ``predictions`` of the added seeds only (the analysis joins
them to evaluate's) and ``looks``: every look of every line, with its repeated bounds and the
decision where it stopped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import pandas as pd

from mechsel.analysis.sequential import LINE_KEYS, SequentialDesign, pending, sequential_looks
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.experiment.stages.evaluate import EvaluateParams, evaluation_unit, evaluation_units, score_tables
from mechsel.experiment.stages.select import SELECTION_COLUMNS, Selecting, SelectParams

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["SequentialParams", "sequential_stage"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SequentialParams(TaskStageParams):
    """Settings of ``sequential/<task>``."""

    select: SelectParams
    """How the task's selections are made (as in ``select/<task>``)."""
    evaluate: EvaluateParams
    """How they are scored (as in ``evaluate/<task>``)."""
    baseline: str
    """Label of the baseline run."""
    competing: tuple[str, ...]
    """Labels of the runs whose lines the design decides (the activation family)."""
    design: SequentialDesign
    """The looks and the alpha spending."""
    margin: float
    """Non-superiority margin as a fraction of the metric's range."""
    new_seeds: tuple[int, ...]
    """Seeds the design may add, in the order it adds them."""
    analysis_n_boot: int
    """Resamples of each look's seeds × queries bootstrap."""
    analysis_seed: int
    """Seed of that bootstrap."""


def design_lines(scores: pd.DataFrame, p: SequentialParams) -> pd.DataFrame:
    """The lines the design decides: every competing run at every budget, with the task's metric."""
    metric = str(scores["metric"].iloc[0])
    rows = [
        {"task": p.task, "metric": metric, "budget": int(k), "selector": label, "baseline": p.baseline}
        for k in p.select.budgets
        for label in p.competing
    ]
    return pd.DataFrame(rows, columns=list(LINE_KEYS))


def margins_of(metric: str, fraction: float) -> dict[str, float]:
    """The margin in metric units (``fraction`` of the metric's range)."""
    from mechsel.icl.metrics import METRIC_RANGES

    lo, hi = METRIC_RANGES.get(metric, (0.0, 1.0))
    return {metric: fraction * (hi - lo)}


def _select(ctx: StageContext[SequentialParams], selecting: Selecting, label: str, k: int, seed: int) -> pd.DataFrame:
    """One run's selections at budget ``k`` for ``seed``, checkpointed under the run's position
    (labels hold spaces and brackets, which checkpoint names may not)."""
    j = list(selecting.runs).index(label)
    return ctx.checkpoint(f"select-run{j:02d}-k{k}-s{seed}", lambda: selecting.one_run(selecting.runs[label], seed, (k,)))


def sequential_stage(ctx: StageContext[SequentialParams]) -> dict[str, Any]:
    """See the module docstring."""
    p = ctx.params
    task = p.task
    res: Resources = ctx.resources
    evaluated = ctx.inputs[f"evaluate/{task}"]
    scores, predictions = evaluated["scores"], evaluated["predictions"]
    lines = design_lines(scores, p)
    margins = margins_of(str(lines["metric"].iloc[0]), p.margin)
    selecting: Selecting | None = None
    order = list(p.select.seeds) + [s for s in p.new_seeds if s not in p.select.seeds]
    added_sel: list[pd.DataFrame] = []
    added_scores: list[pd.DataFrame] = []
    added_pred: list[pd.DataFrame] = []
    all_scores, all_pred = scores, predictions
    while True:
        looks = sequential_looks(all_scores, all_pred, lines, p.design, margins=margins, n_boot=p.analysis_n_boot, seed=p.analysis_seed)
        todo = pending(looks, lines, p.design)
        jobs: list[tuple[str, int, int]] = []
        for _, line in todo.iterrows():
            want = order[: int(cast(int, line["next_n"]))]
            budget = int(cast(int, line["budget"]))
            for label in (str(line["selector"]), p.baseline):
                have = set(all_scores[(all_scores["selector"] == label) & (all_scores["budget"] == budget)]["seed"])
                jobs += [(label, budget, s) for s in want if s not in have]
        jobs = sorted(set(jobs), key=lambda j: (j[1], order.index(j[2]), j[0]))
        if not jobs:
            break
        logger.info("sequential %s: %d line(s) undecided; adding %d selection(s)", task, len(todo), len(jobs))
        if selecting is None:
            selecting = Selecting(ctx.inputs, p.select, res)
        frames = [_select(ctx, selecting, label, k, seed) for label, k, seed in jobs]
        sel = cast(pd.DataFrame, pd.concat(frames, ignore_index=True)[SELECTION_COLUMNS])
        groups = [(key, cast(pd.DataFrame, g)) for key, g in sel.groupby(["selector", "budget", "seed"], sort=False)]
        outs = ctx.map_units(evaluation_unit, evaluation_units(groups, res.splits(task), p.evaluate), p.evaluate, desc=f"sequential {task}")
        new_scores, new_pred = score_tables(task, groups, outs, len(res.splits(task).test))
        added_sel.append(sel)
        added_scores.append(new_scores)
        added_pred.append(new_pred)
        all_scores = pd.concat([all_scores, new_scores], ignore_index=True)
        all_pred = pd.concat([all_pred, new_pred], ignore_index=True)
    empty = pd.DataFrame(columns=scores.columns)
    return {
        "selections": pd.concat(added_sel, ignore_index=True) if added_sel else pd.DataFrame(columns=SELECTION_COLUMNS),
        "scores": pd.concat(added_scores, ignore_index=True) if added_scores else empty,
        "predictions": pd.concat(added_pred, ignore_index=True) if added_pred else pd.DataFrame(columns=predictions.columns),
        "looks": looks,
    }
