"""Mask strategies are exact: isolated segments against the same segment encoded alone.

What is exact (see mechsel.masks.strategies): ``isolated`` == ``alone`` (≤ 1e-4, rotary and
absolute positions); ``isolated_inplace`` == ``alone`` run at the segment's prompt positions;
``isolated_inplace`` != ``alone`` on rotary models (BOS distance).
"""

import pytest
import torch

from mechsel.errors import ConfigError
from mechsel.masks import PromptBuilder, alone_segments, attention_mask_hooks, batch_allowed, override_positions, strategy_hooks
from mechsel.models import tiny_model

LAYER_HOOK = "blocks.{}.hook_mlp_out"


def _prompt(tokenizer, texts=("good movie", "bad plot twist", "so so")):
    b = PromptBuilder(tokenizer, bos_token_id=tokenizer.bos_token_id)
    for i, t in enumerate(texts):
        b.segment("demo", i).add("Review: ", "template").add(t, "text").add(" Sent: ", "template").add("pos", "label")
        b.segment("sep").add("\n", "sep")
    b.segment("query", "q").add("Review: ", "template").add("fine", "text")
    return b.build()


def _acts(model, tokens, ctx=None, layer=None):
    layer = model.cfg.n_layers - 1 if layer is None else layer
    name = LAYER_HOOK.format(layer)
    tokens = torch.as_tensor(tokens).reshape(1, -1)
    am = torch.ones_like(tokens)
    with torch.inference_mode():
        if ctx is None:
            _, cache = model.run_with_cache(tokens, names_filter=[name], attention_mask=am)
        else:
            with ctx(am):
                _, cache = model.run_with_cache(tokens, names_filter=[name], attention_mask=am)
    return cache[name][0]


@pytest.fixture(params=["rotary", "standard"])
def model(request):
    return tiny_model(n_layers=3, positional_embedding_type=request.param)


def test_isolated_equals_alone(model):
    p = _prompt(model.tokenizer)
    isolated = _acts(model, p.tokens, lambda am: strategy_hooks(model, "isolated", [p], length=len(p), attention_mask=am))
    for index, alone in alone_segments(p):
        seg = p.segments[index]
        ref = _acts(model, alone.tokens)[1:]
        assert (isolated[seg.start : seg.end] - ref).abs().max().item() <= 1e-4, index


def test_isolated_inplace_equals_alone_at_prompt_positions(model):
    p = _prompt(model.tokenizer)
    iso = _acts(model, p.tokens, lambda am: strategy_hooks(model, "isolated_inplace", [p], length=len(p), attention_mask=am))
    for index, alone in alone_segments(p):
        seg = p.segments[index]
        pos = torch.tensor([[0, *range(seg.start, seg.end)]])
        ref = _acts(model, alone.tokens, lambda am: override_positions(model, pos, attention_mask=am))[1:]
        assert (iso[seg.start : seg.end] - ref).abs().max().item() <= 1e-4, index


def test_isolated_inplace_differs_from_alone_on_rotary_through_bos_distance():
    model = tiny_model(n_layers=3)
    p = _prompt(model.tokenizer)
    iso = _acts(model, p.tokens, lambda am: strategy_hooks(model, "isolated_inplace", [p], length=len(p), attention_mask=am))
    index, alone = alone_segments(p)[-1]
    seg = p.segments[index]
    assert (iso[seg.start : seg.end] - _acts(model, alone.tokens)[1:]).abs().max().item() > 1e-2


def test_isolated_inplace_hides_other_segments_exactly():
    model = tiny_model(n_layers=3)
    tok = model.tokenizer
    p1, p2 = _prompt(tok), _prompt(tok, texts=("xqzv wjk!!", "plmn okij uhbg", "zz zz"))
    assert len(p1) == len(p2) and p1.tokens != p2.tokens
    q = p1.segments[-1]
    assert p1.tokens[q.start :] == p2.tokens[q.start :]

    def run(p, mask):
        return _acts(model, p.tokens, lambda am: strategy_hooks(model, mask, [p], length=len(p), attention_mask=am))[q.start :]

    assert torch.equal(run(p1, "isolated_inplace"), run(p2, "isolated_inplace"))
    assert (run(p1, "full") - run(p2, "full")).abs().max().item() > 1e-3


def test_rotary_position_override_is_shift_invariant():
    model = tiny_model(n_layers=2)
    tokens = torch.tensor(model.tokenizer.encode("shift me around", add_special_tokens=True))
    plain = _acts(model, tokens)
    shifted = torch.arange(len(tokens))[None] + 17
    moved = _acts(model, tokens, lambda am: override_positions(model, shifted, attention_mask=am))
    assert (plain - moved).abs().max().item() <= 1e-4
    scrambled = torch.arange(len(tokens))[None] * 2
    assert (plain - _acts(model, tokens, lambda am: override_positions(model, scrambled, attention_mask=am))).abs().max() > 1e-3


def test_mask_composes_with_sliding_window():
    model = tiny_model(n_layers=2, attn_types=["local", "global"], use_local_attn=True, window_size=4)
    p = _prompt(model.tokenizer)
    allowed = batch_allowed([p], "isolated_inplace", len(p))
    name = "blocks.0.attn.hook_pattern"
    tokens = torch.tensor([p.tokens])
    with torch.inference_mode(), attention_mask_hooks(model, allowed):
        _, cache = model.run_with_cache(tokens, names_filter=[name])
    pattern = cache[name][0]  # [head, q, k]
    q = torch.arange(len(p))
    outside_window = q[None, :] <= q[:, None] - 4
    assert model.blocks[0].attn.attn_type == "local"
    assert (pattern[:, outside_window] == 0).all()  # BOS stays hidden beyond the window
    assert (pattern[:, ~allowed[0]] == 0).all()
    assert (pattern[:, 3, 0] > 0).all()  # inside the window BOS is visible


def test_hooks_are_removed_even_on_error():
    model = tiny_model(n_layers=2)
    p = _prompt(model.tokenizer)
    allowed = batch_allowed([p], "isolated_inplace", len(p))
    with pytest.raises(RuntimeError, match="boom"):
        with attention_mask_hooks(model, allowed):
            assert model.blocks[0].attn.hook_attn_scores.fwd_hooks
            raise RuntimeError("boom")
    assert all(not hp.fwd_hooks for hp in model.hook_dict.values())
    with strategy_hooks(model, "isolated", [p], length=len(p)):
        assert model.blocks[1].attn.hook_rot_q.fwd_hooks
    assert all(not hp.fwd_hooks for hp in model.hook_dict.values())


def test_mask_shape_mismatch_and_unsupported_positions_raise():
    model = tiny_model(n_layers=2)
    p = _prompt(model.tokenizer)
    allowed = batch_allowed([p], "isolated_inplace", len(p))
    with pytest.raises(ConfigError, match="do not match"), torch.inference_mode(), attention_mask_hooks(model, allowed):
        model(torch.tensor([p.tokens[:-2]]))
    windowed = tiny_model(n_layers=2, attn_types=["local", "global"], use_local_attn=True, window_size=8)
    with pytest.raises(ConfigError, match="isolated"), strategy_hooks(windowed, "isolated", [p], length=len(p)):
        pass
