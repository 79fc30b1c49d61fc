"""Greedy decoding with a KV cache equals recomputing the whole sequence each step; stops and limits."""

from __future__ import annotations

import pytest
import torch

from mechsel.errors import ConfigError, DataError
from mechsel.icl import GenerationConfig, greedy_generate
from mechsel.icl.generation import cut_at_stop
from mechsel.models import CharTokenizer, tiny_model


def naive_greedy(model, prompt, n):
    """Independent reference: full forward over the growing sequence, argmax of the last logits."""
    seq, out = list(prompt), []
    with torch.inference_mode():
        for _ in range(n):
            t = int(model(torch.tensor([seq]))[0, -1].argmax())
            out.append(t)
            seq.append(t)
    return out


PREFIX = [1, *range(10, 22)]
PROMPTS = [PREFIX + tail for tail in ([30, 31, 32], [40], [50, 51, 52, 53, 54, 55, 56], [60, 61])] + [[1, 70, 71]]


@pytest.mark.parametrize("prefix_reuse", [True, False])
@pytest.mark.parametrize(
    "model_kwargs",
    [{}, {"attn_types": ["local", "global"], "window_size": 64}, {"attn_types": ["local", "global"], "window_size": 10}],
    ids=["global", "wide-window", "narrow-window"],
)
def test_cached_greedy_equals_recomputation(prefix_reuse, model_kwargs):
    model = tiny_model(n_layers=2, n_ctx=128, seed=3, **model_kwargs)
    cfg = GenerationConfig(max_new_tokens=8, stop=(), stop_at_eos=False, batch_size=2, prefix_reuse=prefix_reuse)
    shared = PROMPTS[:4]  # share PREFIX: prefix reuse applies (unless the narrow window forbids it)
    for prompts in (shared, PROMPTS):
        gens = greedy_generate(model, prompts, cfg)
        for p, g in zip(prompts, gens):
            assert list(g.token_ids) == naive_greedy(model, p, 8)
            assert g.stopped_by == "length"


class EosTokenizer(CharTokenizer):
    eos_token_id = 2


def test_stop_sequences_cut_the_text():
    model = tiny_model(n_layers=1, n_ctx=128, seed=4)
    free = greedy_generate(model, [PROMPTS[0]], GenerationConfig(max_new_tokens=12, stop=(), stop_at_eos=False))[0]
    tok = model.tokenizer
    full_text = tok.decode(list(free.token_ids))
    stop_char = full_text[5]
    first = full_text.index(stop_char)
    g = greedy_generate(model, [PROMPTS[0]], GenerationConfig(max_new_tokens=12, stop=(stop_char,), stop_at_eos=False))[0]
    assert g.stopped_by == "stop" and g.text == full_text[:first]
    assert list(g.token_ids) == list(free.token_ids[: first + 1])


def test_eos_stops_a_row():
    model = tiny_model(n_layers=1, n_ctx=128, seed=4)
    free = greedy_generate(model, [PROMPTS[0]], GenerationConfig(max_new_tokens=6, stop=(), stop_at_eos=False))[0]
    tok = EosTokenizer()
    tok.eos_token_id = free.token_ids[2]
    first = list(free.token_ids).index(tok.eos_token_id)
    g = greedy_generate(model, [PROMPTS[0]], GenerationConfig(max_new_tokens=6, stop=()), tokenizer=tok)[0]
    assert g.stopped_by == "eos" and len(g.token_ids) == first + 1 and g.text == tok.decode(list(free.token_ids[:first]))


def test_cut_at_stop_and_bad_input():
    assert cut_at_stop("abc\ndef.", ["\n", "."]) == ("abc", True)
    assert cut_at_stop("abc", ["\n"]) == ("abc", False)
    with pytest.raises(ConfigError, match="max_new_tokens"):
        GenerationConfig(max_new_tokens=0)
    with pytest.raises(ConfigError, match="non-empty strings"):
        GenerationConfig(stop=("",))
    with pytest.raises(DataError, match="empty prompt"):
        greedy_generate(tiny_model(n_layers=1), [[]], GenerationConfig(stop=()))
