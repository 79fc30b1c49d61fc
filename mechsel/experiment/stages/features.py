"""``features/<task>``: what the selectors read besides statistics — sentence embeddings of
candidates and test queries, the model's 0-shot label distribution on every candidate, and
NeuFS neuron sets. Only the features some configured selector needs are computed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["FeaturesParams", "FEATURES", "features_stage", "pack_neuron_sets", "unpack_neuron_sets"]

FEATURES = ("embeddings", "label_probs", "neuron_sets")
"""The selector needs (:data:`mechsel.selectors.Need`) this stage computes."""


@dataclass(frozen=True)
class FeaturesParams(TaskStageParams):
    """Settings of ``features/<task>``: which features, and how each is computed."""

    needs: tuple[str, ...]
    """The features some selector of the task needs (of :data:`FEATURES`), sorted."""
    embedder: str
    """Sentence embedder of ``embeddings``."""
    neuron_sets_top_n: int | None
    """Neurons per layer in each NeuFS neuron set (a selector's ``feature_settings``; ``None``:
    ``neuron_sets_fraction`` of ``d_mlp``)."""
    neuron_sets_fraction: float
    """Fraction of ``d_mlp`` kept per layer when ``neuron_sets_top_n`` is ``None``."""


def pack_neuron_sets(sets: list[frozenset[tuple[int, int]]], d_mlp: int) -> dict[str, np.ndarray]:
    """Neuron sets as flat arrays: ``values`` (``layer * d_mlp + neuron``, sorted per set) and ``offsets``."""
    flat = [np.sort(np.array([layer * d_mlp + n for layer, n in s], dtype=np.int64)) for s in sets]
    offsets = np.cumsum([0] + [len(f) for f in flat]).astype(np.int64)
    return {"values": np.concatenate(flat) if flat else np.zeros(0, np.int64), "offsets": offsets, "d_mlp": np.array([d_mlp])}


def unpack_neuron_sets(packed: dict[str, np.ndarray]) -> list[frozenset[tuple[int, int]]]:
    """Inverse of :func:`pack_neuron_sets`."""
    d_mlp = int(packed["d_mlp"][0])
    v, o = packed["values"], packed["offsets"]
    return [frozenset((int(x) // d_mlp, int(x) % d_mlp) for x in v[o[i] : o[i + 1]]) for i in range(len(o) - 1)]


def features_stage(ctx: StageContext[FeaturesParams]) -> dict[str, Any]:
    """Outputs (each only when needed): ``embeddings`` ({candidates, test} arrays), ``label_probs``
    (``[n_candidates, n_labels]``, 0-shot), ``neuron_sets`` (packed, see :func:`pack_neuron_sets`)."""
    p = ctx.params
    task = p.task
    res: Resources = ctx.resources
    splits = res.splits(task)
    out: dict[str, Any] = {"needs": sorted(p.needs)}
    if "embeddings" in p.needs:
        from mechsel.embeddings import embed_texts

        def embed() -> dict[str, np.ndarray]:
            return {
                name: np.asarray(embed_texts([e.text() for e in exs], model_name=p.embedder), dtype=np.float32)
                for name, exs in (("candidates", splits.pool), ("test", splits.test))
            }

        out["embeddings"] = ctx.checkpoint("embeddings", embed)
    if "label_probs" in p.needs:
        from mechsel.icl import label_probabilities

        runner = res.runner(task)
        out["label_probs"] = ctx.checkpoint("label_probs", lambda: label_probabilities(runner, list(splits.pool), []))
    if "neuron_sets" in p.needs:
        from mechsel.selectors import neuron_sets

        runner = res.runner(task)

        def neurons() -> dict[str, np.ndarray]:
            prompts = runner.prompts([[] for _ in splits.pool], list(splits.pool))
            answers = [ids[0] for ids in runner.encoder.label_token_ids]
            d_mlp = int(res.model.cfg.d_mlp)
            top_n = min(p.neuron_sets_top_n or max(1, round(p.neuron_sets_fraction * d_mlp)), d_mlp)
            sets = neuron_sets(res.model, prompts, answers, top_n=top_n)
            return pack_neuron_sets(sets, int(res.model.cfg.d_mlp))

        out["neuron_sets"] = ctx.checkpoint("neuron_sets", neurons)
    return out
