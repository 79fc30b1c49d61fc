"""Tiny random-weight models of the paper's architecture families (Llama 3.2, Qwen 2.5) through
every stage the study runs: collection under every mask, quality, evaluation and SAE statistics.

TransformerLens's ``convert_hf_model_config`` needs the hub, so each family's config is written
here from its published features: RMSNorm (also before the unembedding), rotary embeddings,
a gated SiLU MLP and grouped-query attention with fewer key/value heads than query heads; Llama
3.2 adds its NTK-by-parts rotary scaling, Qwen 2.5 biases on the query, key and value projections
(random here, so they matter). Each model is checked against straightforward references, and
``isolated`` against re-encoding each segment ``alone`` (≤ 1e-4).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.stats
import torch
from sae_lens import TopKSAE, TopKSAEConfig
from sae_lens.saes.sae import SAEMetadata

from mechsel.collection import collect
from mechsel.icl import ICLRunner, ScoringConfig, evaluate, naive_label_logprobs, quality_matrix
from mechsel.masks import PromptBuilder, alone_segments, strategy_hooks
from mechsel.models import tiny_model, weight_fingerprint
from mechsel.sae.statistics import collect_sae
from mechsel.tasks import Example, PromptEncoder

FAMILIES = {
    "llama-3.2": {
        "original_architecture": "LlamaForCausalLM",
        "rotary_base": 500000.0,
        "eps": 1e-5,
        "use_NTK_by_parts_rope": True,
        "NTK_by_parts_factor": 32.0,
        "NTK_by_parts_low_freq_factor": 1.0,
        "NTK_by_parts_high_freq_factor": 4.0,
        "NTK_original_ctx_len": 64,
    },
    "qwen-2.5": {"original_architecture": "Qwen2ForCausalLM", "rotary_base": 1000000.0, "eps": 1e-6},
}


def family_model(family: str, n_ctx: int = 256):
    """A 3-layer random model of ``family``: RMSNorm, rotary, gated SiLU MLP, 4 query and 2 key/value heads."""
    model = tiny_model(
        n_layers=3,
        d_model=32,
        n_heads=4,
        d_mlp=64,
        n_ctx=n_ctx,
        act_fn="silu",
        gated_mlp=True,
        n_key_value_heads=2,
        rotary_dim=8,
        final_rms=True,
        seed=3,
        **FAMILIES[family],
    )
    if family == "qwen-2.5":
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith(("attn.b_Q", "attn._b_K", "attn._b_V")):
                    p.normal_(0.0, 0.5)
    model.mechsel_info = dataclasses.replace(model.mechsel_info, name=f"tiny-{family}", weight_hash=weight_fingerprint(model))
    return model


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def model(request):
    return family_model(request.param)


def test_the_models_have_the_familys_features(model):
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    assert type(attn).__name__ == "GroupedQueryAttention" and attn.cfg.n_key_value_heads == 2 and attn.cfg.n_heads == 4
    assert hasattr(mlp, "W_gate") and model.cfg.act_fn == "silu"
    assert type(model.blocks[0].ln1).__name__.startswith("RMSNorm") and type(model.ln_final).__name__.startswith("RMSNorm")
    if model.cfg.original_architecture == "Qwen2ForCausalLM":
        assert attn._b_K.abs().sum() > 0 and attn.b_Q.abs().sum() > 0
    else:
        assert model.cfg.use_NTK_by_parts_rope


def _prompts(tok):
    out = []
    for k, texts in enumerate([("good movie", "awful"), ("meh at best", "loved it", "fine")]):
        b = PromptBuilder(tok, bos_token_id=tok.bos_token_id)
        for i, t in enumerate(texts):
            b.segment("demo", f"{k}-{i}").add("R: ", "template").add(t, "text").add(" S: ", "template").add("pos", "label")
            b.segment("sep").add("\n", "sep")
        b.segment("query", f"{k}-q").add("R: ", "template").add("so so", "text").add(" S: ", "template")
        out.append(b.build())
    return out


def _cache(model, tokens, ctx=None):
    names = [f"blocks.{layer}.hook_mlp_out" for layer in range(model.cfg.n_layers)]
    t = torch.tensor([list(tokens)])
    with torch.inference_mode():
        if ctx is None:
            _, cache = model.run_with_cache(t, names_filter=names)
        else:
            with ctx:
                _, cache = model.run_with_cache(t, names_filter=names)
    return np.stack([cache[n][0].double().numpy() for n in names])


def _own(prompt, seg):
    return [i for i in range(seg.start, seg.end) if prompt.roles[i] in ("text", "label")]


@pytest.mark.parametrize("mask", ["full", "isolated_inplace", "isolated", "alone"])
def test_collect_under_every_mask_matches_run_with_cache(model, mask):
    prompts = _prompts(model.tokenizer)
    result = collect(model, prompts, mask=mask, batch_size=2, progress=False)
    row = 0
    for p in prompts:
        if mask in ("full", "isolated_inplace"):
            ctx = None if mask == "full" else strategy_hooks(model, "isolated_inplace", [p], length=len(p))
            acts = _cache(model, p.tokens, ctx)
            refs = [acts[:, _own(p, s)] for _, s in p.example_segments()]
        else:  # isolated must equal alone: both against the segments encoded alone
            refs = [_cache(model, alone.tokens)[:, _own(alone, alone.segments[-1])] for _, alone in alone_segments(p)]
        for ref in refs:
            for layer in range(model.cfg.n_layers):
                v = ref[layer].reshape(-1)
                for name, want in (("mean", v.mean()), ("variance", v.var()), ("kurtosis", scipy.stats.kurtosis(v))):
                    got = result.array(name)[row, layer]
                    assert abs(got - want) <= 1e-4 * max(1.0, abs(want)), (mask, name, row, layer, got, want)
            row += 1


def test_isolated_equals_alone(model):
    prompts = _prompts(model.tokenizer)
    for p in prompts:
        acts = _cache(model, p.tokens, strategy_hooks(model, "isolated", [p], length=len(p)))
        for index, alone in alone_segments(p):
            seg = p.segments[index]
            ref = _cache(model, alone.tokens)[:, 1:]
            assert np.abs(acts[:, seg.start : seg.end] - ref).max() <= 1e-4, index
    isolated = collect(model, prompts, mask="isolated", batch_size=2, progress=False)
    alone = collect(model, prompts, mask="alone", batch_size=2, progress=False)
    for name in ("mean", "variance", "skewness", "kurtosis", "max_abs"):
        np.testing.assert_allclose(isolated.array(name), alone.array(name), atol=1e-4, rtol=1e-4)


def sst(i, text, label):
    return Example(id=i, inputs={"sentence": text}, label=label, split="toy")


POOL = [sst(i, t, i % 2) for i, t in enumerate(["great fun", "so dull", "loved it"])]
DEV = [sst(100 + i, t, i % 2) for i, t in enumerate(["moving", "tedious", "charming"])]
TEST = [sst(200 + i, t, (i + 1) % 2) for i, t in enumerate(["fresh", "stale", "witty", "flat"])]


def test_quality_and_evaluation_equal_plain_forward_passes(model):
    runner = ICLRunner(model, "sst2", scoring=ScoringConfig(batch_size=2))
    enc = PromptEncoder("sst2", runner.tokenizer, bos_token_id=runner.tokenizer.bos_token_id)

    def naive(demos, query):
        return naive_label_logprobs(model, [enc.build(demos, query)], enc.label_token_ids)[0].numpy()

    res = quality_matrix(runner, POOL, DEV, block_size=2, progress=False)
    np.testing.assert_allclose(res.label_logprobs, np.array([[naive([c], q) for q in DEV] for c in POOL]), atol=1e-4)
    result = evaluate(runner, TEST, POOL[:2], n_boot=50)
    predicted = np.array([naive(POOL[:2], q).argmax() for q in TEST])
    assert result.score == pytest.approx(float((predicted == np.array([q.label for q in TEST])).mean()))


def test_sae_statistics_equal_a_direct_encode(model):
    torch.manual_seed(1)
    meta = SAEMetadata(hook_name="blocks.1.hook_mlp_out", model_name=model.mechsel_info.name, model_from_pretrained_kwargs={})
    sae = TopKSAE(TopKSAEConfig(d_in=32, d_sae=48, k=5, metadata=meta))
    with torch.no_grad():
        for p in sae.parameters():
            p.add_(0.1 * torch.randn_like(p))
    sae.eval()
    texts = ["a fine film", "dull", "the plot was thin"]
    result = collect_sae(model, texts, {1: sae}, statistics=["sae_l0", "sae_max_act"], top_k=0, batch_size=2, progress=False)
    for row, text in enumerate(texts):
        tokens = torch.tensor([[model.tokenizer.bos_token_id, *model.tokenizer.encode(text)]])
        _, cache = model.run_with_cache(tokens, names_filter="blocks.1.hook_mlp_out")
        with torch.no_grad():
            f = sae.encode(cache["blocks.1.hook_mlp_out"][0, 1:]).double().numpy()
        np.testing.assert_allclose(result.array("sae_l0", [1])[row, 0], (f > 0).sum(1).mean(), rtol=1e-5)
        np.testing.assert_allclose(result.array("sae_max_act", [1])[row, 0], f.max(), rtol=1e-5)
