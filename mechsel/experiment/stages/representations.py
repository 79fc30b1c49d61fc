"""``representations/<task>``: each candidate's mean ``hook_mlp_out`` vector at every collected
layer and mask, for the ``probe`` selector and the decodability analysis.

The stage exists only when some run needs ``representations`` (a ``probe`` run). Candidates are
packed into the same prompts as ``collect/<task>`` (:func:`~mechsel.experiment.stages.collect.candidate_prompts`),
and each chunk of prompts per mask is one unit and one checkpoint. Each unit streams the prompts
once with ``collect(..., mean_vectors=True)`` (the vectors are reduced inside the hooks, as the
moments are); it is a second pass over the candidates, not shared with ``collect/<task>``, so a
run without a probe computes nothing more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.experiment.stages.collect import CollectChunk, CollectParams, _chunk_prompts
from mechsel.masks.strategies import MaskName

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["RepresentationsParams", "representations_stage", "representation_chunk"]


@dataclass(frozen=True)
class RepresentationsParams(TaskStageParams):
    """Settings of ``representations/<task>``: those of ``collect/<task>`` (same prompts, layers,
    hook, positions and masks)."""

    collect: CollectParams
    """The task's collection settings."""


def representations_stage(ctx: StageContext[RepresentationsParams]) -> dict[str, Any]:
    """Outputs ``representations``: ``{"example_ids": [n] str, "layers": [L], "<mask>": float32
    [n, L, d]}`` for every mask, rows in the candidates' order."""
    p = ctx.params
    c = p.collect.collect
    res: Resources = ctx.resources
    pool = list(res.splits(p.task).pool)
    n_prompts = math.ceil(len(pool) / c.context_size)
    units = [
        (f"{mask}-{start:06d}", CollectChunk("moments", mask, start)) for mask in c.masks for start in range(0, n_prompts, c.chunk_size)
    ]
    parts = ctx.map_units(representation_chunk, units, p.collect, desc=f"representations {p.task}")
    ids = [str(e.id) for e in pool]
    position = {x: i for i, x in enumerate(ids)}
    out: dict[str, np.ndarray] = {"example_ids": np.array(ids)}
    by_mask: dict[MaskName, list[dict[str, np.ndarray]]] = {}
    for (_, unit), part in zip(units, parts):
        by_mask.setdefault(unit.mask, []).append(part)
    for mask, mask_parts in by_mask.items():
        first = mask_parts[0]["mean"]
        full = np.full((len(ids), first.shape[1], first.shape[2]), np.nan, dtype=np.float32)
        for part in mask_parts:
            rows = [position[str(x)] for x in part["example_ids"]]
            full[rows] = part["mean"]
        out[mask] = full
        out["layers"] = mask_parts[0]["layers"]
    return {"representations": out}


def representation_chunk(res: Resources, p: CollectParams, unit: CollectChunk) -> dict[str, np.ndarray]:
    """The mean vectors of one chunk of packed prompts under one mask: ``example_ids`` (the
    demonstration rows), ``layers`` and ``mean`` ``[rows, L, d]``."""
    from mechsel.collection import run_collect

    config = p.collect.with_mask(unit.mask, statistics=("mean",), mean_vectors=True, progress=False)
    result = run_collect(res.model, _chunk_prompts(res, p, unit), config)
    demo = np.array([s == "demo" for s in result.segments])
    return {
        "example_ids": np.array([str(x) for x in result.example_ids])[demo],
        "layers": np.array(result.layers, dtype=np.int64),
        "mean": result.vectors["mean"][demo],
    }
