"""``evaluate/<task>``: the test score of every selection (one run, budget and seed each).

A fixed set is put in the run's order (``random``: seeded by the seed) and shared by all test
queries, so its prefix is encoded once; retrieval sets are used in the order retrieved.
Identical prompts (e.g. a deterministic selector whose pool does not change with the seed) are
scored once: each evaluation is a unit of work (:class:`Evaluation`), checkpointed under a hash of
its demonstrations and ordering.

The task's baselines come last, so they never touch a selection's numbers: the 0-shot score (the
same test queries with no demonstration, scored the same way, checkpointed like the others) and,
for classification, the majority-class share (the accuracy of always answering the most frequent
test label). A selector that does not beat the majority share shows nothing about selection.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from mechsel.experiment import results
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.provenance import hash_json
from mechsel.tasks.prompts import OrderPolicy

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = [
    "EvaluateParams",
    "Evaluation",
    "evaluate_stage",
    "evaluation_units",
    "evaluation_unit",
    "zero_shot_unit",
    "majority_share",
    "BASELINE_COLUMNS",
    "score_tables",
]

SCORE_COLUMNS = list(results.SCORE_COLUMNS)
"""Columns of the ``scores`` output (defined once, in :mod:`mechsel.experiment.results`)."""
BASELINE_COLUMNS = list(results.BASELINE_COLUMNS)
"""Columns of the ``baselines`` output (one line per task; defined in :mod:`mechsel.experiment.results`)."""


def majority_share(labels: Sequence[int | None]) -> tuple[float, int | None]:
    """The share of the most frequent label among ``labels`` and that label (the smallest index on
    a tie); ``(nan, None)`` when there are none (generation tasks)."""
    known = [int(x) for x in labels if x is not None]
    if not known:
        return float("nan"), None
    counts = np.bincount(known)
    top = int(counts.argmax())
    return float(counts[top] / len(known)), top


@dataclass(frozen=True)
class EvaluateParams(TaskStageParams):
    """Settings of ``evaluate/<task>``."""

    orders: Mapping[str, OrderPolicy]
    """Each run's order of a fixed set in the prompt (``given``, ``reverse``, ``random``), by label."""
    calibrate: bool
    """Contextual calibration of test predictions (classification)."""
    n_boot: int
    """Bootstrap resamples of each run's test-score interval (over queries)."""


@dataclass(frozen=True)
class Evaluation:
    """One unit of ``evaluate/<task>``: a selection's demonstrations scored on the test queries."""

    fixed: tuple[str, ...] | None
    """Example ids of a fixed set, in the selection's rank order (``None`` for per-query sets)."""
    per_query: tuple[tuple[int, tuple[str, ...]], ...] | None
    """Retrieval: (test query index, example ids in rank order) per query (``None`` for a fixed set)."""
    order: OrderPolicy
    """Order of a fixed set in the prompt (per-query sets keep the retrieved order)."""
    seed: int
    """Seed of a ``random`` order (0 otherwise)."""


def evaluate_stage(ctx: StageContext[EvaluateParams]) -> dict[str, Any]:
    """Outputs ``scores`` — task, selector, selector_name, family, protocol, annotation_budget (B, the
    labels the run used), budget, seed, metric (headline:
    accuracy or bleu), score, ci_low, ci_high (bootstrap over queries), n_test, then one column per
    other metric (macro_f1 or rouge_l) — ``predictions`` (one row per run and test query) and
    ``baselines`` (one line: :data:`BASELINE_COLUMNS`; the 0-shot score of the headline metric with
    its bootstrap interval, the majority-class share and label for classification, NaN and an
    empty label for generation)."""
    p = ctx.params
    task = p.task
    res: Resources = ctx.resources
    splits = res.splits(task)
    test = list(splits.test)
    groups = list(ctx.inputs[f"select/{task}"]["selections"].groupby(["selector", "budget", "seed"], sort=False))
    units = evaluation_units(groups, splits, p)
    outs = ctx.map_units(evaluation_unit, units, p, desc=f"evaluate {task}")
    scores, predictions = score_tables(task, groups, outs, len(test))
    # the 0-shot baseline: no demonstration, same queries and scoring (after the selections, on purpose)
    key = hash_json({"demos": [], "calibrate": p.calibrate, "n_boot": p.n_boot})
    [zero] = ctx.map_units(zero_shot_unit, [(f"zero-shot-{key}", None)], p, desc=f"evaluate {task} (0-shot)")
    share, label = majority_share([e.label for e in test])
    names = splits.task.label_names
    baselines = pd.DataFrame(
        [
            {
                "task": task,
                "metric": zero["metric"],
                "zero_shot": zero["score"],
                "zero_shot_ci_low": zero["ci"][0],
                "zero_shot_ci_high": zero["ci"][1],
                "majority": share,
                "majority_label": "" if label is None else names[label],
                "n_test": len(test),
            }
        ],
        columns=BASELINE_COLUMNS,
    )
    return {"scores": scores, "predictions": predictions, "baselines": baselines}


def score_tables(
    task: str, groups: Sequence[tuple[Any, pd.DataFrame]], outs: Sequence[dict[str, Any]], n_test: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The ``scores`` and ``predictions`` tables of evaluated ``groups`` (``((selector, budget,
    seed), selection rows)``) from their units' outputs ``outs`` (:func:`evaluation_unit`)."""
    score_rows, predictions = [], []
    for ((label, budget, seed), sel), out in zip(groups, outs):
        first = sel.sort_values(["query", "rank"]).iloc[0]
        row = {
            "task": task,
            "selector": label,
            "selector_name": first["selector_name"],
            "family": first["family"],
            "protocol": first["protocol"],
            "annotation_budget": int(first["annotation_budget"]),
            "budget": int(budget),
            "seed": int(seed),
            "metric": out["metric"],
            "score": out["scores"][out["metric"]],
            "ci_low": out["cis"][out["metric"]][0],
            "ci_high": out["cis"][out["metric"]][1],
            "n_test": n_test,
        }
        row.update({name: value for name, value in out["scores"].items() if name != out["metric"]})
        score_rows.append(row)
        pred = pd.DataFrame(out["predictions"])
        pred["query_id"] = pred["query_id"].astype(str)
        predictions.append(pred.assign(task=task, selector=label, budget=int(budget), seed=int(seed)))
    scores = pd.DataFrame(score_rows)
    extra = [c for c in scores.columns if c not in SCORE_COLUMNS]
    return cast(pd.DataFrame, scores[SCORE_COLUMNS + extra]), pd.concat(predictions, ignore_index=True)


def evaluation_units(groups: Sequence[tuple[Any, pd.DataFrame]], splits: Any, p: EvaluateParams) -> list[tuple[str, Evaluation]]:
    """One ``(checkpoint name, unit)`` per ``((selector, budget, seed), selection rows)`` group; the
    name hashes the demonstrations and their ordering, so identical prompts share a checkpoint."""
    by_id = {str(e.id): e for e in splits.pool}
    test = list(splits.test)
    units = []
    for (label, _, seed), sel in groups:
        sel = sel.sort_values(["query", "rank"])
        if (sel["query"] < 0).all():
            ids = tuple(str(i) for i in sel["example_id"])
            order: OrderPolicy = p.orders[label]
            spec: Any = [by_id[i].id for i in ids]
            unit = Evaluation(ids, None, order, int(seed) if order == "random" else 0)
        else:
            per_query = tuple((int(q), tuple(str(i) for i in part["example_id"])) for q, part in sel.groupby("query"))  # pyright: ignore[reportArgumentType]  (query indices are integers)
            spec = {str(test[q].id): [str(by_id[i].id) for i in ids] for q, ids in per_query}
            unit = Evaluation(None, per_query, "given", 0)
        key = hash_json({"demos": spec, "order": unit.order, "seed": unit.seed, "calibrate": p.calibrate, "n_boot": p.n_boot})
        units.append((f"eval-{key}", unit))
    return units


def evaluation_unit(res: Resources, p: EvaluateParams, unit: Evaluation) -> dict[str, Any]:
    """The test scores, intervals and predictions of one selection (a unit of :func:`evaluate_stage`)."""
    from mechsel.icl import evaluate

    splits = res.splits(p.task)
    by_id = {str(e.id): e for e in splits.pool}
    test = list(splits.test)
    demos: Any
    if unit.per_query is None:
        demos = [by_id[i] for i in unit.fixed or ()]
    else:
        demos = {test[q].id: [by_id[i] for i in ids] for q, ids in unit.per_query}
    result = evaluate(res.runner(p.task), test, demos, order=unit.order, seed=unit.seed, calibrate=p.calibrate, n_boot=p.n_boot)
    frame = result.predictions.copy()
    frame["demo_ids"] = frame["demo_ids"].map(lambda ids: ";".join(str(i) for i in ids))
    if "references" in frame:
        frame["references"] = frame["references"].map(lambda refs: "\n".join(refs))
    return {
        "metric": result.metric,
        "scores": result.scores,
        "cis": {k: list(v) for k, v in result.cis.items()},
        "predictions": frame.to_dict(orient="list"),
    }


def zero_shot_unit(res: Resources, p: EvaluateParams, unit: None) -> dict[str, Any]:
    """The 0-shot score of the test queries (no demonstration, scored like every selection)."""
    from mechsel.icl import evaluate

    result = evaluate(res.runner(p.task), list(res.splits(p.task).test), [], calibrate=p.calibrate, n_boot=p.n_boot)
    return {"metric": result.metric, "score": result.score, "ci": list(result.ci)}
