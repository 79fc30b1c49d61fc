"""Mechanisms on the embedded Gemma 3 270M: induction heads stand out, the per-demonstration
attribution adds up to the model's logit difference, and the causal test of SAE latents runs on
SST-2 with an SAE trained on demonstration segments disjoint from the run's examples."""

from __future__ import annotations

import numpy as np
import pytest

from mechsel import train_sae
from mechsel.attribution import attribute_demonstrations
from mechsel.heads import induction_scores
from mechsel.icl import ICLRunner
from mechsel.sae.causal import CausalTestConfig, causal_test
from mechsel.sae.config import SAETrainConfig

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAYER = 6


@pytest.fixture(scope="module")
def splits():
    """The quick demo's SST-2 candidates (16) and test queries (48): the SAE below never saw them."""
    from mechsel.experiment import demo_config
    from mechsel.experiment.resources import Resources

    return Resources(demo_config(quick=True)).splits("sst2")


def test_induction_heads_stand_far_above_the_median_head(embedded_model):
    scores = induction_scores(embedded_model, cache=False)
    flat = scores.scores.ravel()
    top = [scores.scores[x] for x in scores.top(3)]
    median = float(np.median(flat))
    # measured 2026-12-01 (benchmarks/results/mechanisms.txt): the best heads attend to the
    # induction target with weight > 0.5 while the median head gives it ~0.01
    assert top[0] > 0.3 and np.mean(top) > 10 * median, (top, median)


def test_attribution_adds_up_to_the_models_logit_difference(embedded_model, splits):
    runner = ICLRunner(embedded_model, "sst2")
    result = attribute_demonstrations(runner, list(splits.pool[:4]), splits.test[0])
    assert abs(result.identity_error) <= 1e-4 * max(1.0, abs(result.logit_diff))
    shares = result.attention_frame().groupby(["layer", "head"])["share"].sum()
    assert np.allclose(shares, 1.0, atol=1e-4)


def test_causal_test_runs_on_sst2_with_a_trained_sae(embedded_model, splits, tmp_path, shared_data_dir):
    config = SAETrainConfig(
        layers=(LAYER,),
        d_sae=512,
        k=16,
        n_train_tokens=64 * 128,
        n_eval_tokens=1000,
        batch_size=128,
        buffer_tokens=2048,
        lr=3e-3,
        lr_warm_up_steps=5,
        datasets=("sst2",),
        exclude=("quick",),
        n_loss_tokens=0,
        output_dir=str(tmp_path / "sae"),
        data_dir=str(shared_data_dir),
        progress=False,
    )
    sae = train_sae(embedded_model, config).saes[LAYER]
    runner = ICLRunner(embedded_model, "sst2")
    cfg = CausalTestConfig(m_values=(4,), ablation=("zero",), n_random_draws=2, n_queries=12, k=2, progress=False)
    result = causal_test(runner, {LAYER: sae}, list(splits.pool), list(splits.test), cfg)
    comp = result.table[result.table["latent_set"] == "targeted - random"]
    assert set(comp["metric"]) == {"accuracy", "gold_logprob"} and (comp["n_queries"] == 12).all()
    assert np.isfinite(comp["effect"]).all() and (comp["ci_low"] <= comp["ci_high"]).all()
    acc = comp[comp["metric"] == "accuracy"]
    assert ((acc["ci_low"] >= -1) & (acc["ci_high"] <= 1)).all()
