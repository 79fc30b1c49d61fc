"""``quality/<task>``: each candidate's 1-shot quality on the dev subset (the correlations' target).

The 1-shot matrix comes from :func:`mechsel.icl.quality_matrix`, checkpointed per block of
candidates in the stage's work folder. Optionally the marginal gain over random k-shot contexts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mechsel.experiment.config import QualitySettings
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.icl.runner import PairMetric

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["QualityParams", "quality_stage"]


@dataclass(frozen=True)
class QualityParams(TaskStageParams):
    """Settings of ``quality/<task>``."""

    metric: PairMetric
    """The quality metric (the task's, else :func:`mechsel.icl.runner.default_quality_metric`)."""
    quality: QualitySettings
    """Block size and the optional marginal gain."""


def quality_stage(ctx: StageContext[QualityParams]) -> dict[str, Any]:
    """Outputs ``quality`` — task, example_id, quality (mean dev score under the task's quality
    metric), se, n_dev, metric, plus ``accuracy`` (classification) and ``gain``/``gain_se`` when
    the marginal gain is asked for — and ``pairs`` (the ``[candidates, dev]`` score matrix)."""
    from mechsel.icl import marginal_gain, quality_matrix

    p = ctx.params
    q = p.quality
    task = p.task
    res: Resources = ctx.resources
    splits = res.splits(task)
    runner = res.runner(task)
    metric = p.metric
    result = quality_matrix(
        runner,
        list(splits.pool),
        list(splits.dev),
        metric=metric,
        block_size=q.block_size,
        checkpoint_dir=ctx.work_dir / "matrix",
        progress=ctx.progress,
    )
    table = result.table(metric).assign(metric=metric)
    if runner.task.kind == "classification" and metric != "accuracy":
        table["accuracy"] = result.pair_scores("accuracy").mean(axis=1)
    if q.marginal_gain:
        gains = ctx.checkpoint(
            "gain",
            lambda: marginal_gain(
                runner,
                list(splits.pool),
                list(splits.dev),
                list(splits.pool),
                k=q.gain_k,
                seeds=tuple(q.gain_seeds),
                metric=metric,
                progress=ctx.progress,
            ),
        )
        table["gain"] = gains["gain"].to_numpy()
        table["gain_se"] = gains["se"].to_numpy()
    table["example_id"] = table["example_id"].astype(str)
    table.insert(0, "task", task)
    return {"quality": table, "pairs": np.asarray(result.pair_scores(metric), dtype=np.float64)}
