"""The activation-streaming primitive against run_with_cache on each sequence run alone."""

from __future__ import annotations

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from mechsel.collection.stream import hooked_layers, pad_right, pad_token_id, stream_batch
from mechsel.errors import ConfigError, DataError
from mechsel.masks.segments import PromptBuilder

HOOKS = ["blocks.0.mlp.hook_post", "blocks.0.hook_resid_post", "blocks.1.hook_mlp_out"]


def _sequences(tok):
    prompt = PromptBuilder(tok, bos_token_id=1).segment("demo", 0).add("R: ", "template").add("a fine film", "text").build()
    return [prompt, [1, *tok.encode("dull")], [1, *tok.encode("the plot was thin but the acting held up")]]


def _tokens(seq):
    return list(getattr(seq, "tokens", seq))


def _alone(model, tokens, names):
    """Each hook's activations of one unpadded sequence, from a full cache."""
    with torch.inference_mode():
        _, cache = model.run_with_cache(torch.tensor([tokens]), names_filter=list(names))
    return {n: cache[n][0] for n in names}


def _stream(model, batch, names=HOOKS, **kwargs):
    got: dict[str, list[torch.Tensor]] = {}

    def keep(name, acts):
        got.setdefault(name, []).append(acts.clone())

    out = stream_batch(model, batch, names, keep, **kwargs)
    return got, out


def test_selected_positions_match_each_sequence_run_alone(tiny):
    seqs = _sequences(tiny.tokenizer)
    positions = [np.array([0, 3, 5]), np.arange(1, len(seqs[1])), np.array([len(seqs[2]) - 1])]
    got, _ = _stream(tiny, pad_right(seqs, pad_token_id(tiny), positions))
    for name in HOOKS:
        assert len(got[name]) == 1  # one call per hook and batch
        want = torch.cat([_alone(tiny, _tokens(s), [name])[name][p] for s, p in zip(seqs, positions)])
        assert got[name][0].shape == want.shape
        torch.testing.assert_close(got[name][0], want, atol=1e-5, rtol=1e-5)


def test_without_selection_every_real_position_matches_and_padding_is_zero(tiny):
    seqs = _sequences(tiny.tokenizer)
    got, _ = _stream(tiny, pad_right(seqs, pad_token_id(tiny)))
    for name in HOOKS:
        block = got[name][0]
        for b, s in enumerate(seqs):
            n = len(_tokens(s))
            torch.testing.assert_close(block[b, :n], _alone(tiny, _tokens(s), [name])[name], atol=1e-5, rtol=1e-5)
            assert torch.all(block[b, n:] == 0)


def test_padding_never_reaches_the_callback(tiny):
    seqs = _sequences(tiny.tokenizer)
    every = [np.arange(len(_tokens(s))) for s in seqs]
    a, _ = _stream(tiny, pad_right(seqs, 0, every))
    b, _ = _stream(tiny, pad_right(seqs, 77, every))  # another pad id changes nothing delivered
    for name in HOOKS:
        assert a[name][0].shape[0] == sum(len(_tokens(s)) for s in seqs)  # real tokens only
        assert torch.equal(a[name][0], b[name][0])
    with pytest.raises(DataError, match="select positions in"):
        pad_right(seqs, 0, [np.array([len(_tokens(seqs[0]))]), [0], [0]])  # first padding position
    with pytest.raises(DataError, match="one per sequence"):
        pad_right(seqs, 0, [[0]])


def test_stops_after_the_last_hooked_block_and_returns_its_residual(tiny):
    seqs = _sequences(tiny.tokenizer)
    later: list[str] = []
    probe = tiny.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", lambda act, hook: later.append(hook.name))])
    _, resid = _stream(tiny, pad_right(seqs, 0), ["blocks.0.hook_mlp_out"], extra_hooks=[probe])
    assert later == []  # block 1 never ran
    for b, s in enumerate(seqs):
        n = len(_tokens(s))
        want = _alone(tiny, _tokens(s), ["blocks.0.hook_resid_post"])["blocks.0.hook_resid_post"]
        torch.testing.assert_close(resid[b, :n], want, atol=1e-5, rtol=1e-5)


def test_hooks_are_removed_after_an_error_in_the_callback(tiny):
    exited = []

    @contextlib.contextmanager
    def extra():
        try:
            yield
        finally:
            exited.append(True)

    def boom(name, acts):
        raise RuntimeError("callback failed")

    tokens = torch.tensor([[1, 5, 6, 7]])
    with torch.inference_mode():
        before = tiny(tokens)
    with pytest.raises(RuntimeError, match="callback failed"):
        stream_batch(tiny, pad_right([[1, 5, 6, 7]], 0, [[1, 2]]), HOOKS, boom, extra_hooks=[extra()])
    assert exited == [True]
    assert all(not hp.fwd_hooks and not hp._forward_hooks for hp in tiny.hook_dict.values())
    with torch.inference_mode():
        assert torch.equal(tiny(tokens), before)


def test_pad_token_id_and_hook_names(tiny):
    assert pad_token_id(tiny) == tiny.tokenizer.pad_token_id
    assert pad_token_id(SimpleNamespace(tokenizer=SimpleNamespace(pad_token_id=None))) == 0
    assert pad_token_id(SimpleNamespace(tokenizer=None)) == 0
    assert hooked_layers(["blocks.3.hook_mlp_out", "blocks.12.mlp.hook_post"]) == [3, 12]
    with pytest.raises(ConfigError, match="blocks.<L>.<hook>"):
        hooked_layers(["hook_embed"])


def test_pad_right_flattens_the_selection():
    batch = pad_right([[5, 6, 7], [8]], 9, [[1, 2], [0]])
    assert batch.tokens.tolist() == [[5, 6, 7], [8, 9, 9]]
    assert batch.attention_mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch.select is not None and batch.select.tolist() == [1, 2, 3]
    with pytest.raises(DataError, match="no empty"):
        pad_right([[5], []], 0)
