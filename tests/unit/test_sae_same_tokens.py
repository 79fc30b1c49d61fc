"""In an experiment, the SAE statistics read exactly the tokens the moments read (same prompts,
mask, positions, BOS and template exclusion), and an SAE trained on the run's examples is refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata
from shared_helpers import write_synthetic_task

from mechsel.collection import run_collect
from mechsel.errors import DataError
from mechsel.experiment import load_config
from mechsel.experiment.resources import Resources
from mechsel.experiment.stages.base import ModelKey
from mechsel.experiment.stages.collect import CollectChunk, CollectParams, _chunk_config, _chunk_prompts, collect_chunk
from mechsel.models import tiny_model
from mechsel.sae.demonstrations import save_training_hashes
from mechsel.sae.reference import ActivationReference, attach_reference
from mechsel.stats.base import Reducer

LAYER = 1


class Spy(Reducer):
    """Records every activation row it is handed, by output row."""

    family = "spy"

    def __init__(self) -> None:
        self.rows: dict[int, list[torch.Tensor]] = {}

    def statistic_names(self):
        return ("spy",)

    def reduce(self, acts, groups, n_groups, layer):
        if layer == LAYER:
            for g in range(n_groups):
                self.rows.setdefault(len(self.rows), []).append(acts[groups == g].clone())
        return {"spy": torch.zeros(n_groups, dtype=torch.float64)}


def _sae_folder(tmp_path: Path, model, trained_on=()) -> str:
    torch.manual_seed(0)
    meta = SAEMetadata(hook_name=f"blocks.{LAYER}.hook_mlp_out", model_name="tiny-random", model_from_pretrained_kwargs={})
    sae = TopKSAE(TopKSAEConfig(d_in=model.cfg.d_model, d_sae=40, k=4, metadata=meta))
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    attach_reference(sae, ActivationReference((0.0,) * model.cfg.d_model, 1.0, 100, "test"))
    folder = tmp_path / f"sae{len(trained_on)}"
    sae.save_model(folder)
    save_training_hashes(folder, trained_on)
    return str(folder)


def _setup(tmp_path, trained_on=()):
    model = tiny_model(n_ctx=256)
    folder = _sae_folder(tmp_path, model, trained_on)
    config = load_config(
        {
            "model": {"name": "tiny-random"},
            "tasks": [
                {"name": "reviews", "define": write_synthetic_task(tmp_path / "data"), "n_candidates": 12, "dev_size": 3, "test_size": 6}
            ],
            "collect": {"masks": ["full", "isolated"], "statistics": ["mean"], "context_size": 3, "chunk_size": 8, "batch_size": 4},
            "sae": {"saes": {LAYER: folder}},
            "selection": {"runs": [{"selector": "random"}, {"selector": "activation", "choose_statistic": True}], "budgets": [2]},
            "progress": False,
            "output_dir": str(tmp_path / "out"),
        }
    )
    res = Resources(config, model=model)
    params = CollectParams(
        task="reviews",
        model=ModelKey.of(config.model),
        max_tokens=None,
        collect=config.collect,
        sae=config.sae,
        split_seed=config.split_seed,
    )
    return res, params


@pytest.mark.parametrize("mask", ["full", "isolated"])
def test_sae_statistics_read_the_same_tokens_as_the_moments(tmp_path, mask):
    res, p = _setup(tmp_path)
    seen = {}
    counts = {}
    for kind in ("moments", "sae"):
        unit = CollectChunk(kind, mask, 0)
        frame = collect_chunk(res, p, unit)
        rows = frame[frame["layer"] == LAYER].drop_duplicates("example_id")
        counts[kind] = dict(zip(rows["example_id"], rows["n_tokens"]))
        spy = Spy()
        config = dataclasses.replace(_chunk_config(res, p, unit), layers=(LAYER,), statistics=(spy,))
        result = run_collect(res.model, _chunk_prompts(res, p, unit), config)
        seen[kind] = (list(result.example_ids), [torch.cat(spy.rows[i]) for i in range(len(spy.rows))])
    assert counts["moments"] == counts["sae"] and len(counts["sae"]) == 12
    ids_m, acts_m = seen["moments"]
    ids_s, acts_s = seen["sae"]
    assert ids_m == ids_s
    for a, b in zip(acts_m, acts_s):
        assert torch.equal(a, b)  # same token positions, same activations, bit for bit


def test_an_sae_trained_on_the_runs_examples_is_refused(tmp_path):
    res, p = _setup(tmp_path)
    pool_text = res.splits("reviews").pool[0].text()
    res2, p2 = _setup(tmp_path / "again", trained_on=[pool_text.upper()])  # compared case-folded
    from mechsel.experiment.sae_glue import training_data_check

    with pytest.raises(DataError, match="trained on 1 of task 'reviews'"):
        training_data_check(p2.sae.saes, "reviews", [pool_text])
    assert training_data_check(p.sae.saes, "reviews", [pool_text]) == {str(LAYER): {"overlap": 0, "n_examples_checked": 1}}
    assert training_data_check({LAYER: "release/id"}, "reviews", [pool_text]) == {str(LAYER): "not recorded"}
