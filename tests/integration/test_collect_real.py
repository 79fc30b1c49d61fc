"""collect and the mask strategies on the real embedded Gemma 3 270M with real SST-2 sentences."""

import contextlib

import numpy as np
import pytest
import scipy.stats
import torch

from mechsel.collection import collect
from mechsel.masks import PromptBuilder, alone_segments, override_positions, strategy_hooks

pytestmark = pytest.mark.integration

LABELS = ("negative", "positive")


def _cache(model, tokens, names, ctx=None):
    t = torch.tensor([list(tokens)])
    with torch.inference_mode():
        with ctx if ctx is not None else contextlib.nullcontext():
            _, cache = model.run_with_cache(t, names_filter=names)
    return {n: cache[n][0].double() for n in names}


def _prompt(model, sentences):
    tok = model.tokenizer
    b = PromptBuilder(tok, bos_token_id=tok.bos_token_id)
    for i, s in enumerate(sentences[:-1]):
        b.segment("demo", i).add("Review: ", "template").add(s, "text").add("\nSentiment: ", "template").add(LABELS[i % 2], "label")
        b.segment("sep").add("\n\n", "sep")
    b.segment("query", "q").add("Review: ", "template").add(sentences[-1], "text").add("\nSentiment:", "template")
    return b.build()


def test_streaming_matches_run_with_cache(embedded_model, sst2_sentences):
    model = embedded_model
    texts = sst2_sentences[:8]
    result = collect(model, texts, batch_size=4, progress=False)
    names = [f"blocks.{layer}.hook_mlp_out" for layer in range(model.cfg.n_layers)]
    worst = 0.0
    for i, text in enumerate(texts):
        tokens = [model.tokenizer.bos_token_id, *model.tokenizer.encode(text, add_special_tokens=False)]
        cache = _cache(model, tokens, names)
        for layer, name in enumerate(names):
            v = cache[name][1:].numpy().reshape(-1)
            ref = {
                "mean": v.mean(),
                "variance": v.var(),
                "skewness": scipy.stats.skew(v),
                "kurtosis": scipy.stats.kurtosis(v),
                "max_abs": np.abs(v).max(),
                "l2_norm": np.linalg.norm(v),
            }
            for stat, value in ref.items():
                got = result.array(stat)[i, layer]
                # batched vs single-sequence float32 matmuls differ in the last bits; the
                # shift/scale-free statistics are compared relative to their own size.
                scale = {"mean": np.sqrt(v.var()), "variance": value}.get(stat, max(abs(value), 1.0))
                worst = max(worst, abs(got - value) / scale)
    assert worst <= 1e-4, worst


@pytest.fixture(scope="module")
def prompt(embedded_model, sst2_sentences):
    return _prompt(embedded_model, sst2_sentences[10:14])


def _segment_error(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


def test_isolated_equals_alone_on_real_model(embedded_model, prompt):
    model = embedded_model
    names = [f"blocks.{layer}.hook_mlp_out" for layer in (0, 5, 11, 17)]
    isolated = _cache(model, prompt.tokens, names, strategy_hooks(model, "isolated", [prompt], length=len(prompt)))
    for index, alone in alone_segments(prompt):
        seg = prompt.segments[index]
        ref = _cache(model, alone.tokens, names)
        for name in names:
            assert _segment_error(isolated[name][seg.start : seg.end], ref[name][1:]) <= 1e-4, (index, name)


def test_isolated_inplace_equals_alone_at_prompt_positions_on_real_model(embedded_model, prompt):
    model = embedded_model
    assert model.cfg.use_local_attn and model.cfg.window_size == 512 and len(prompt) < 512
    names = [f"blocks.{layer}.hook_mlp_out" for layer in (0, 5, 17)]
    iso = _cache(model, prompt.tokens, names, strategy_hooks(model, "isolated_inplace", [prompt], length=len(prompt)))
    for index, alone in alone_segments(prompt):
        seg = prompt.segments[index]
        pos = torch.tensor([[0, *range(seg.start, seg.end)]])
        ref = _cache(model, alone.tokens, names, override_positions(model, pos))
        for name in names:
            assert _segment_error(iso[name][seg.start : seg.end], ref[name][1:]) <= 1e-4, (index, name)


def test_collect_masks_on_real_prompts(embedded_model, prompt):
    isolated = collect(embedded_model, [prompt], mask="isolated", layers=[3, 9], progress=False)
    alone = collect(embedded_model, [prompt], mask="alone", layers=[3, 9], progress=False)
    full = collect(embedded_model, [prompt], mask="full", layers=[3, 9], progress=False)
    assert isolated.example_ids == alone.example_ids == (0, 1, 2, "q")
    for stat in ("mean", "variance", "kurtosis", "max_abs"):
        np.testing.assert_allclose(isolated.array(stat), alone.array(stat), rtol=1e-4, atol=1e-6)
    # The first demo has no earlier context, so full == alone there; later segments see context.
    np.testing.assert_allclose(full.array("variance")[0], alone.array("variance")[0], rtol=1e-4)
    assert not np.allclose(full.array("variance")[1:], alone.array("variance")[1:], rtol=1e-3)
