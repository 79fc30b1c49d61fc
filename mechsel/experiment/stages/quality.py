"""``quality/<task>``: each candidate's 1-shot quality on the dev subset (the correlations' target).

The 1-shot matrix comes from :func:`mechsel.icl.quality_matrix`, checkpointed per block of
candidates in the stage's work folder; under an executor whose units run elsewhere (Ray) each block
is a unit of work and a checkpoint of its own, computed by the same :func:`mechsel.icl.quality.quality_block`.
Optionally the marginal gain over random k-shot contexts: one unit locally (checkpoint ``gain``),
one per seed and block of candidates elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mechsel.experiment.config import QualitySettings
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.icl.runner import PairMetric

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources
    from mechsel.icl.quality import QualityResult

__all__ = ["QualityParams", "quality_stage", "quality_provenance_unit", "quality_block_unit", "gain_unit", "gain_block_unit"]


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
    from mechsel.icl import quality_matrix

    p = ctx.params
    q = p.quality
    task = p.task
    res: Resources = ctx.resources
    splits = res.splits(task)
    metric = p.metric
    if ctx.executor.remote:
        result = _matrix_on_workers(ctx)
    else:
        result = quality_matrix(
            res.runner(task),
            list(splits.pool),
            list(splits.dev),
            metric=metric,
            block_size=q.block_size,
            checkpoint_dir=ctx.work_dir / "matrix",
            progress=ctx.progress,
        )
    table = result.table(metric).assign(metric=metric)
    if splits.task.kind == "classification" and metric != "accuracy":
        table["accuracy"] = result.pair_scores("accuracy").mean(axis=1)
    if q.marginal_gain:
        gains = _gain_on_workers(ctx) if ctx.executor.remote else ctx.map_units(gain_unit, [("gain", None)], p, desc=f"gain {task}")[0]
        table["gain"] = gains["gain"].to_numpy()
        table["gain_se"] = gains["se"].to_numpy()
    table["example_id"] = table["example_id"].astype(str)
    table.insert(0, "task", task)
    return {"quality": table, "pairs": np.asarray(result.pair_scores(metric), dtype=np.float64)}


def _matrix_on_workers(ctx: StageContext[QualityParams]) -> QualityResult:
    """The 1-shot matrix with each block of candidates a unit of work (:func:`quality_block_unit`),
    for executors whose units run elsewhere; the local engine keeps :func:`~mechsel.icl.quality_matrix`
    and its own block checkpoints. Both compute every block the same way."""
    from mechsel.icl.quality import quality_from_blocks
    from mechsel.provenance import Provenance

    p = ctx.params
    splits = ctx.resources.splits(p.task)
    pool, dev = list(splits.pool), list(splits.dev)
    [provenance] = ctx.map_units(quality_provenance_unit, [("matrix-provenance", None)], p, desc=f"quality {p.task} (provenance)")
    blocks = [(f"matrix-block-{start:06d}", start) for start in range(0, len(pool), p.quality.block_size)]
    outputs = ctx.map_units(quality_block_unit, blocks, p, desc=f"quality {p.task}")
    return quality_from_blocks(pool, dev, outputs, kind=splits.task.kind, metric=p.metric, provenance=Provenance.from_dict(provenance))


def _gain_on_workers(ctx: StageContext[QualityParams]) -> pd.DataFrame:
    """The marginal gains with each (seed, block of candidates) a unit of work
    (:func:`gain_block_unit`), for executors whose units run elsewhere; the local engine keeps the
    one ``gain`` checkpoint of :func:`gain_unit`. Both compute every gain the same way."""
    from mechsel.icl import quality_table

    p = ctx.params
    pool = list(ctx.resources.splits(p.task).pool)
    starts = range(0, len(pool), p.quality.block_size)
    units = [(f"gain-{seed}-{start:06d}", (seed, start)) for seed in p.quality.gain_seeds for start in starts]
    blocks = iter(ctx.map_units(gain_block_unit, units, p, desc=f"gain {p.task}"))
    columns = [np.concatenate([next(blocks) for _ in starts]) for _ in p.quality.gain_seeds]
    return quality_table([c.id for c in pool], np.stack(columns, axis=1), value="gain", count="n_seeds")


def quality_provenance_unit(res: Resources, p: QualityParams, unit: None) -> dict[str, Any]:
    """The provenance of the task's 1-shot matrix (:func:`~mechsel.icl.quality.quality_provenance`), as a dict."""
    from mechsel.icl.quality import quality_provenance

    splits = res.splits(p.task)
    return quality_provenance(res.runner(p.task), list(splits.pool), list(splits.dev), p.metric).to_dict()


def quality_block_unit(res: Resources, p: QualityParams, start: int) -> np.ndarray:
    """The raw 1-shot outputs of the candidates ``start .. start + quality.block_size`` (:func:`~mechsel.icl.quality.quality_block`)."""
    from mechsel.icl.quality import quality_block

    splits = res.splits(p.task)
    return quality_block(res.runner(p.task), list(splits.pool)[start : start + p.quality.block_size], list(splits.dev))


def gain_unit(res: Resources, p: QualityParams, unit: None) -> pd.DataFrame:
    """Every candidate's marginal gain (:func:`~mechsel.icl.marginal_gain`)."""
    from mechsel.icl import marginal_gain

    splits = res.splits(p.task)
    pool = list(splits.pool)
    q = p.quality
    return marginal_gain(
        res.runner(p.task), pool, list(splits.dev), pool, k=q.gain_k, seeds=tuple(q.gain_seeds), metric=p.metric, progress=False
    )


def gain_block_unit(res: Resources, p: QualityParams, unit: tuple[int, int]) -> np.ndarray:
    """The marginal gains of the candidates ``start .. start + quality.block_size`` over one seed's
    context (:func:`~mechsel.icl.quality.marginal_gain_block`); ``unit`` is ``(seed, start)``."""
    from mechsel.icl.quality import marginal_gain_block

    seed, start = unit
    splits = res.splits(p.task)
    pool = list(splits.pool)
    block = pool[start : start + p.quality.block_size]
    return marginal_gain_block(res.runner(p.task), block, list(splits.dev), pool, k=p.quality.gain_k, seed=seed, metric=p.metric)
