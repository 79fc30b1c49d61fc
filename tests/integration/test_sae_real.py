"""A very small SAE trained on the embedded Gemma 3 270M's hook_mlp_out with real SST-2 / AG News text.

One training run (module fixture, ~40k tokens of layer 3, a few hundred steps) serves three checks:
the SAE reconstructs held-out activations better than the mean-activation baseline, its sae-lens
folder round-trips, and the streaming SAE statistics on the real model equal the same statistics
computed directly from ``run_with_cache`` and ``sae.encode``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sae_lens import TopKSAE

from mechsel import train_sae
from mechsel.sae.activations import load_texts
from mechsel.sae.config import SAETrainConfig
from mechsel.sae.loading import check_sae_matches, load_sae
from mechsel.sae.reference import reference_of
from mechsel.sae.statistics import collect_sae

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LAYER = 3
HOOK = f"blocks.{LAYER}.hook_mlp_out"
TINY = [  # the quick demo shrunk for test_demo_with_a_trained_sae_runs_the_sae_selectors
    "tasks.0.n_candidates=8",
    "tasks.0.dev_size=4",
    "tasks.0.test_size=12",
    "tasks.0.seed_pool_size=6",
    "selection.budgets=[2]",
    "selection.seeds=[0,1]",
    "analysis.n_boot=100",
    "analysis.n_perm=100",
    "analysis.samples_per_example=200",
    "plots.formats=[]",
]


@pytest.fixture(scope="module")
def trained(embedded_model, shared_data_dir, tmp_path_factory):
    from mechsel.experiment import demo_config, dump_config, load_config
    from mechsel.serialize import to_dict

    folder = tmp_path_factory.mktemp("sae")
    shrunk = folder / "shrunk_quick.yaml"  # its examples are left out of the training texts, like the demo's
    shrunk.write_text(dump_config(load_config(to_dict(demo_config(quick=True)), TINY)))
    sst2 = load_texts(("sst2",), data_dir=str(shared_data_dir))[:3000]
    news = load_texts(("ag_news",), data_dir=str(shared_data_dir))[:600]
    config = SAETrainConfig(
        layers=(LAYER,),
        d_sae=512,
        k=16,
        n_train_tokens=300 * 128,
        n_eval_tokens=3000,
        batch_size=128,
        buffer_tokens=4096,
        lr=3e-3,
        lr_warm_up_steps=10,
        dead_feature_window=50,
        output_dir=str(folder / "run"),
        progress=False,
        exclude=("demo", "quick", str(shrunk)),
        n_loss_tokens=1000,
    )
    return train_sae(embedded_model, config, texts=sst2 + news)


def _held_out_acts(model, sentences):
    """Non-BOS hook_mlp_out activations of each sentence, run alone (no padding)."""
    out = []
    with torch.inference_mode():
        for text in sentences:
            tokens = torch.tensor([[model.tokenizer.bos_token_id, *model.tokenizer.encode(text, add_special_tokens=False)]])
            _, cache = model.run_with_cache(tokens, names_filter=[HOOK], stop_at_layer=LAYER + 1)
            out.append(cache[HOOK][0, 1:].to(torch.float64))
    return out


def test_reconstruction_beats_the_mean_activation_baseline(trained, embedded_model, sst2_sentences):
    metrics = trained.metrics[LAYER]
    assert metrics["n_tokens"] >= 3000
    # held-out texts of the training datasets, against the training mean ...
    assert metrics["fvu"] < 0.6 * metrics["baseline_fvu"], metrics
    assert metrics["l0"] <= 16 and metrics["dead_fraction"] < 0.5, metrics
    # ... and, independently, SST-2 validation sentences (another split) against their own mean,
    # the best constant predictor, computed here from run_with_cache.
    sae = trained.saes[LAYER]
    x = torch.cat(_held_out_acts(embedded_model, sst2_sentences[:32]))
    with torch.no_grad():
        recon = sae.decode(sae.encode(x.to(torch.float32))).to(torch.float64)
    sse = (x - recon).pow(2).sum()
    sst = (x - x.mean(0)).pow(2).sum()
    fvu = (sse / sst).item()
    assert fvu < 0.7, (fvu, metrics)


def test_saved_folder_round_trips_with_provenance(trained, embedded_model):
    folder = trained.path / f"layer_{LAYER}"
    cfg = json.loads((folder / "cfg.json").read_text())
    assert cfg["d_sae"] == 512 and cfg["k"] == 16 and cfg["metadata"]["hook_name"] == HOOK
    loaded = load_sae(path=folder)
    assert type(loaded) is TopKSAE
    for name, tensor in trained.saes[LAYER].state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], tensor, rtol=0, atol=0)
    assert check_sae_matches(loaded, embedded_model, "mlp_out", layer=LAYER) == LAYER
    meta = loaded.cfg.metadata.mechsel
    assert meta["weight_processing"] == "none" and meta["layer"] == LAYER and meta["data_hash"]
    report = json.loads((folder / "mechsel_training.json").read_text())
    assert report["metrics"] == pytest.approx(trained.metrics[LAYER])
    assert meta["disjoint_from"]["overlap_found"] == 0 and meta["reference"]["n_tokens"] == trained.metrics[LAYER]["n_tokens"]
    # the spliced-in loss: the reconstruction recovers more of the loss than mean ablation
    metrics = trained.metrics[LAYER]
    assert metrics["spliced_loss"] < metrics["ablated_loss"] and metrics["ce_loss_recovered"] > 0, metrics


def test_streaming_sae_statistics_match_direct_computation(trained, embedded_model, sst2_sentences):
    sae = trained.saes[LAYER]
    variance = reference_of(sae).variance  # the held-out tokens' per-token variance, stored by train_sae
    texts = sst2_sentences[:12]
    result = collect_sae(embedded_model, texts, {LAYER: sae}, moments=("mean",), top_k=4, batch_size=4, progress=False)
    acts = _held_out_acts(embedded_model, texts)
    for i, x in enumerate(acts):
        with torch.no_grad():
            f = sae.encode(x.to(torch.float32)).to(torch.float64)
            recon = sae.decode(f.to(torch.float32)).to(torch.float64)
        expected = {
            "sae_l0": (f > 0).sum(1).double().mean().item(),
            "sae_max_act": f.max().item(),
            "sae_n_active": (f > 0).any(0).sum().item(),
            "sae_cosine": torch.nn.functional.cosine_similarity(x, recon, dim=-1).mean().item(),
            "sae_explained_variance": 1 - ((x - recon).pow(2).sum() / (len(x) * variance)).item(),
        }
        for name, value in expected.items():
            got = result.array(name, [LAYER])[i, 0]
            # batched (padded) vs single-sequence float32 matmuls differ in the last bits, which
            # can swap a near-tied latent in or out of the top k: compare loosely but meaningfully.
            assert got == pytest.approx(value, rel=0.02, abs=0.02), (i, name, got, value)
        mean = result.array("mean", [LAYER])[i, 0]
        assert abs(mean - x.mean().item()) <= 1e-4 * x.std().item(), i
    top = result.array("sae_top1_act", [LAYER])[:, 0]
    assert np.allclose(top, result.array("sae_max_act", [LAYER])[:, 0], rtol=1e-9)


def test_demo_with_a_trained_sae_runs_the_sae_selectors(trained, tmp_path):
    """``mechsel demo --quick --sae FOLDER`` (shrunk by ``--set``): SAE statistics join the grid,
    the three SAE selectors run, and a second summary table compares them with random."""
    import contextlib
    import io

    from mechsel.cli import main
    from mechsel.experiment import load_results

    out = tmp_path / "quick-sae"
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        status = main(
            ["demo", "--quick", "--quiet", "--output", str(out), "--sae", str(trained.path / f"layer_{LAYER}")]
            + [a for o in TINY for a in ("--set", o)]
        )
    printed = buffer.getvalue()
    assert status == 0, printed
    tables = load_results(out)
    sae_scores = tables["scores"][tables["scores"]["family"] == "sae"]
    assert set(sae_scores["selector_name"]) == {"sae_coverage", "sae_diversity", "sae_topk"}
    grid = tables["grid"]
    assert set(grid[grid["family"] == "sae"]["layer"]) == {LAYER}
    assert not grid["statistic"].str.startswith("sae_top").any()  # latent indices are not correlated
    assert "SAE selector [95% CI]" in printed and "never enter the moments" in printed
