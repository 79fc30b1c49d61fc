"""``collect/<task>``: activation statistics of every candidate under every mask.

Candidates are shuffled (seeded by the split seed) and cut into prompts of
``collect.context_size`` demonstrations each (BOS, then demo/separator segments, every demo
with its answer). The same prompts are collected under each mask, so masks differ only in
attention. Each chunk of prompts is one checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mechsel.experiment.config import CollectSettings, SAESettings
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.masks.segments import SegmentedPrompt
from mechsel.masks.strategies import MaskName
from mechsel.tasks.prompts import PromptEncoder

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["CollectParams", "collect_stage", "candidate_prompts", "candidate_slots"]


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


def collect_stage(ctx: StageContext[CollectParams]) -> dict[str, Any]:
    """Outputs ``statistics`` — tidy: task, family (``moments`` / ``sae``), hook, positions, mask,
    layer, statistic, example_id, value, n_tokens, slot (the candidate's place in its packed
    prompt, :func:`candidate_slots`) — and ``provenance`` (per family/mask); with SAEs
    also ``sae_top_latents`` (same columns; statistics ``sae_top{i}_latent`` / ``sae_top{i}_act``),
    kept apart because latent indices are labels, not statistics to correlate with quality."""
    from mechsel.collection import run_collect

    p = ctx.params
    c = p.collect
    task = p.task
    res: Resources = ctx.resources
    splits = res.splits(task)
    encoder = res.runner(task).encoder
    prompts = candidate_prompts(encoder, list(splits.pool), c.context_size, p.split_seed)
    sae_reducer = None
    frames, provenance = [], {}
    kinds = ["moments"] + (["sae"] if p.sae.enabled else [])
    chunks: list[tuple[str, MaskName, int]] = [
        (kind, mask, start) for kind in kinds for mask in c.masks for start in range(0, len(prompts), c.chunk_size)
    ]
    for kind, mask, start in tqdm(chunks, desc=f"collect {task}", unit="chunk", disable=not ctx.progress):

        def compute(kind: str = kind, mask: MaskName = mask, start: int = start) -> pd.DataFrame:
            nonlocal sae_reducer
            if kind == "sae":
                if sae_reducer is None:
                    from mechsel.experiment.sae_glue import sae_reducers

                    sae_reducer = sae_reducers(res.model, p.sae.saes, p.sae.statistics, c.hook)
                config = c.with_mask(mask, layers=tuple(sae_reducer[0].layers), statistics=tuple(sae_reducer), progress=False)
            else:
                config = c.with_mask(mask, progress=False)
            result = run_collect(res.model, prompts[start : start + c.chunk_size], config)
            if start == 0:
                ctx.checkpoint(f"{kind}-{mask}-provenance", lambda: result.provenance.to_dict())
            frame = result.to_frame()
            frame = frame.assign(example_id=frame["example_id"].astype(str), family=kind)
            return cast(
                pd.DataFrame, frame[["family", "hook", "positions", "mask", "layer", "statistic", "example_id", "value", "n_tokens"]]
            )

        frames.append(ctx.checkpoint(f"{kind}-{mask}-{start:06d}", compute))
        if start == 0:
            provenance[f"{kind}/{mask}"] = ctx.checkpoint(f"{kind}-{mask}-provenance", lambda: None)
    stats = pd.concat(frames, ignore_index=True)
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
