"""``samples/<task>``: raw ``hook_mlp_out`` values of the best and worst candidates (by quality),
sampled per layer, for the activation-distribution figure. Each candidate is encoded as BOS +
its demonstration (with answer), the same tokens the statistics summarise."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mechsel.collection.config import SummaryConfig
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["SamplesParams", "samples_stage"]


@dataclass(frozen=True)
class SamplesParams(TaskStageParams):
    """Settings of ``samples/<task>``."""

    summary: SummaryConfig
    """Which activations the statistics summarise (layers, hook, positions, BOS / template tokens)."""
    n_extreme: int
    """Best and worst candidates sampled."""
    samples_per_example: int
    """Activation values sampled per (example, layer)."""
    seed: int
    """Seed of the sampling."""


def samples_stage(ctx: StageContext[SamplesParams]) -> dict[str, Any]:
    """Outputs ``activation_samples``: task, group (best / worst), example_id, quality, layer, value."""
    from mechsel.collection import load_activations, run_collect

    p = ctx.params
    task = p.task
    res: Resources = ctx.resources
    splits = res.splits(task)
    by_id = {str(e.id): e for e in splits.pool}
    quality = ctx.inputs[f"quality/{task}"]["quality"].dropna(subset=["quality"]).sort_values(["quality", "example_id"])
    n = min(p.n_extreme, len(quality) // 2)
    chosen = [("worst", r) for _, r in quality.head(n).iterrows()] + [("best", r) for _, r in quality.tail(n).iloc[::-1].iterrows()]

    def compute() -> pd.DataFrame:
        encoder = res.runner(task).encoder
        prompts = [encoder.demonstrations([by_id[str(r["example_id"])]]) for _, r in chosen]
        with tempfile.TemporaryDirectory(dir=ctx.work_dir) as tmp:
            config = p.summary.with_mask(
                "full", statistics=("mean",), batch_size=len(prompts), save_activations=f"{tmp}/acts", progress=False
            )
            result = run_collect(res.model, prompts, config)
            rows = []
            for layer in result.layers:
                acts, row, _ = load_activations(f"{tmp}/acts", layer)
                acts, row = acts.double().numpy(), row.numpy()
                for r, (group, q) in enumerate(chosen):
                    values = acts[row == r].reshape(-1)
                    rng = np.random.default_rng([p.seed, r, layer])
                    take = values if values.size <= p.samples_per_example else rng.choice(values, p.samples_per_example, replace=False)
                    rows.append(
                        pd.DataFrame(
                            {
                                "group": group,
                                "example_id": str(q["example_id"]),
                                "quality": float(q["quality"]),
                                "layer": int(layer),
                                "value": take,
                            }
                        )
                    )
        return pd.concat(rows, ignore_index=True)

    frame = ctx.checkpoint("samples", compute)
    frame.insert(0, "task", task)
    return {"activation_samples": frame}
