"""``collect/<task>``: activation statistics of every candidate under every mask.

Candidates are shuffled (seeded by the split seed) and cut into prompts of
``collect.context_size`` demonstrations each (BOS, then demo/separator segments, every demo
with its answer). The same prompts are collected under each mask, so masks differ only in
attention. Each chunk of prompts (per kind and mask) is one unit of work and one checkpoint
(:meth:`~mechsel.experiment.engine.StageContext.map_units`); so is each kind and mask's provenance,
which is that of its first chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from mechsel.experiment.config import CollectSettings, SAESettings
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.masks.segments import SegmentedPrompt
from mechsel.masks.strategies import MaskName
from mechsel.tasks.prompts import PromptEncoder

if TYPE_CHECKING:
    from mechsel.collection.config import CollectConfig
    from mechsel.experiment.resources import Resources

__all__ = ["CollectParams", "CollectChunk", "collect_stage", "collect_chunk", "chunk_provenance", "candidate_prompts", "candidate_slots"]


def _order(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, 0xC011]).permutation(n)


def candidate_slots(n: int, context_size: int, seed: int) -> np.ndarray:
    """``[n]`` slot of each candidate in its packed prompt (0 = first demonstration), as
    :func:`candidate_prompts` packs them. Under ``full`` slot 0 sees no other demonstration (it
    equals ``isolated``), so the analysis controls for the slot."""
    slots = np.empty(n, dtype=np.int64)
    slots[_order(n, seed)] = np.arange(n) % context_size
    return slots


def candidate_prompts(encoder: PromptEncoder, candidates: Sequence[Any], context_size: int, seed: int) -> list[SegmentedPrompt]:
    """The candidates in a seeded random order, ``context_size`` per prompt."""
    order = _order(len(candidates), seed)
    shuffled = [candidates[i] for i in order]
    return [encoder.demonstrations(shuffled[i : i + context_size]) for i in range(0, len(shuffled), context_size)]


@dataclass(frozen=True)
class CollectParams(TaskStageParams):
    """Settings of ``collect/<task>``."""

    collect: CollectSettings
    """What is summarised, under which masks, and how candidates are packed into prompts."""
    sae: SAESettings
    """SAE latent statistics (off when no SAE is given)."""
    split_seed: int
    """Seed of the candidates' order when they are packed into prompts (the split seed)."""


@dataclass(frozen=True)
class CollectChunk:
    """One unit of ``collect/<task>``: one kind of statistics under one mask, over the packed
    prompts ``start .. start + collect.chunk_size``."""

    kind: Literal["moments", "sae"]
    """``moments`` (``collect.statistics``) or ``sae`` (the SAE reducers of ``sae.saes``)."""
    mask: MaskName
    """The attention-mask strategy."""
    start: int
    """Index of the chunk's first prompt."""


def collect_stage(ctx: StageContext[CollectParams]) -> dict[str, Any]:
    """Outputs ``statistics`` — tidy: task, family (``moments`` / ``sae``), hook, positions, mask,
    layer, statistic, example_id, value, n_tokens, slot (the candidate's place in its packed
    prompt, :func:`candidate_slots`) — and ``provenance`` (per family/mask); with SAEs
    also ``sae_top_latents`` (same columns; statistics ``sae_top{i}_latent`` / ``sae_top{i}_act``),
    kept apart because latent indices are labels, not statistics to correlate with quality."""
    p = ctx.params
    c = p.collect
    task = p.task
    res: Resources = ctx.resources
    splits = res.splits(task)
    n_prompts = math.ceil(len(splits.pool) / c.context_size)  # as candidate_prompts packs them
    kinds: tuple[Literal["moments", "sae"], ...] = ("moments", "sae") if p.sae.enabled else ("moments",)
    sae_data: dict[str, Any] = {}
    if p.sae.enabled:  # before any model work: an SAE trained on these examples is refused
        from mechsel.experiment.sae_glue import training_data_check

        texts = [e.text() for e in splits.examples]
        sae_data = {"sae/training_data": training_data_check(p.sae.saes, task, texts)}
    firsts = [(f"{kind}-{mask}-provenance", CollectChunk(kind, mask, 0)) for kind in kinds for mask in c.masks]
    chunks = [
        (f"{kind}-{mask}-{start:06d}", CollectChunk(kind, mask, start))
        for kind in kinds
        for mask in c.masks
        for start in range(0, n_prompts, c.chunk_size)
    ]
    provenance = {
        f"{unit.kind}/{unit.mask}": value
        for (_, unit), value in zip(firsts, ctx.map_units(chunk_provenance, firsts, p, desc=f"collect {task} (provenance)"))
    }
    provenance.update(sae_data)
    stats = pd.concat(ctx.map_units(collect_chunk, chunks, p, desc=f"collect {task}"), ignore_index=True)
    stats.insert(0, "task", task)
    slots = candidate_slots(len(splits.pool), c.context_size, p.split_seed)
    stats["slot"] = stats["example_id"].map({str(e.id): int(s) for e, s in zip(splits.pool, slots)}).astype("int64")
    top = pd.Series(False, index=stats.index)
    if p.sae.enabled:
        from mechsel.experiment.sae_glue import TOP_LATENTS
        from mechsel.sae.statistics import top_latent_columns

        top = stats["statistic"].isin(top_latent_columns(TOP_LATENTS))
    out = {"statistics": stats[~top].reset_index(drop=True), "provenance": provenance}
    if top.any():
        out["sae_top_latents"] = stats[top].reset_index(drop=True)
    return out


def collect_chunk(res: Resources, p: CollectParams, unit: CollectChunk) -> pd.DataFrame:
    """The statistics of one chunk (a unit of :func:`collect_stage`): family, hook, positions,
    mask, layer, statistic, example_id, value, n_tokens."""
    from mechsel.collection import run_collect

    result = run_collect(res.model, _chunk_prompts(res, p, unit), _chunk_config(res, p, unit))
    frame = result.to_frame()
    frame = frame.assign(example_id=frame["example_id"].astype(str), family=unit.kind)
    return cast(pd.DataFrame, frame[["family", "hook", "positions", "mask", "layer", "statistic", "example_id", "value", "n_tokens"]])


def chunk_provenance(res: Resources, p: CollectParams, unit: CollectChunk) -> dict[str, Any]:
    """The provenance :func:`collect_chunk` records for ``unit`` (prompts planned, not run)."""
    from mechsel.collection.run import collect_provenance

    return collect_provenance(res.model, _chunk_prompts(res, p, unit), _chunk_config(res, p, unit)).to_dict()


def _chunk_prompts(res: Resources, p: CollectParams, unit: CollectChunk) -> list[SegmentedPrompt]:
    """The prompts of ``unit``; the task's packed prompts are built once per :class:`Resources`."""
    c = p.collect
    prompts = res.memo(
        ("collect-prompts", p.task, c.context_size, p.split_seed),
        lambda: candidate_prompts(res.runner(p.task).encoder, list(res.splits(p.task).pool), c.context_size, p.split_seed),
    )
    return prompts[unit.start : unit.start + c.chunk_size]


def _chunk_config(res: Resources, p: CollectParams, unit: CollectChunk) -> CollectConfig:
    """The collection settings of ``unit``; SAEs are loaded once per :class:`Resources`."""
    c = p.collect
    if unit.kind == "sae":
        from mechsel.experiment.sae_glue import sae_reducers

        reducers = res.memo(
            ("sae-reducers", tuple(sorted(p.sae.saes.items())), p.sae.statistics, c.hook),
            lambda: sae_reducers(res.model, p.sae.saes, p.sae.statistics, c.hook),
        )
        return c.with_mask(unit.mask, layers=tuple(reducers[0].layers), statistics=tuple(reducers), progress=False)
    return c.with_mask(unit.mask, progress=False)
