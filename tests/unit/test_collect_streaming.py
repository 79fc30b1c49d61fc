"""Streaming statistics against statistics computed from a full run_with_cache, one sequence at a time."""

from typing import ClassVar

import numpy as np
import pytest
import scipy.stats
import torch

from mechsel.collection import collect, load_activations, read_shard_index
from mechsel.masks import PromptBuilder, alone_segments, strategy_hooks

TEXTS = ["a fine film", "dull", "the plot was thin but the acting held up", "ok", "never again, never ever"]


def _cache(model, tokens, ctx=None):
    """All layers' hook_mlp_out of one unpadded sequence, float64 numpy [layer, pos, d]."""
    names = [f"blocks.{layer}.hook_mlp_out" for layer in range(model.cfg.n_layers)]
    t = torch.tensor([list(tokens)])
    with torch.inference_mode():
        if ctx is None:
            _, cache = model.run_with_cache(t, names_filter=names)
        else:
            with ctx:
                _, cache = model.run_with_cache(t, names_filter=names)
    return np.stack([cache[n][0].double().numpy() for n in names])


def _moments(block):
    v = block.reshape(-1)
    return {
        "mean": v.mean(),
        "variance": v.var(),
        "skewness": scipy.stats.skew(v),
        "kurtosis": scipy.stats.kurtosis(v),
        "max_abs": np.abs(v).max(),
        "l2_norm": np.linalg.norm(v),
    }


def _assert_close(result, row, expected, layer):
    for name, value in expected.items():
        got = result.array(name)[row, layer]
        assert abs(got - value) <= 1e-5 * max(1.0, abs(value)), (name, row, layer, got, value)


@pytest.mark.parametrize("positions", ["all", "last"])
def test_texts_match_run_with_cache(tiny, positions):
    result = collect(tiny, TEXTS, batch_size=2, positions=positions, progress=False)
    for i, text in enumerate(TEXTS):
        tokens = [tiny.tokenizer.bos_token_id, *tiny.tokenizer.encode(text)]
        acts = _cache(tiny, tokens)
        sel = slice(1, None) if positions == "all" else slice(len(tokens) - 1, None)
        assert result.n_tokens[i] == len(tokens[sel])
        for layer in range(tiny.cfg.n_layers):
            _assert_close(result, i, _moments(acts[layer, sel]), layer)


def test_include_bos_adds_the_bos_position(tiny):
    result = collect(tiny, TEXTS[:2], include_bos=True, progress=False)
    acts = _cache(tiny, [tiny.tokenizer.bos_token_id, *tiny.tokenizer.encode(TEXTS[1])])
    _assert_close(result, 1, _moments(acts[1]), 1)
    assert "included" in result.provenance.bos_policy


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


def _own(prompt, seg, roles=("text", "label")):
    return [i for i in range(seg.start, seg.end) if prompt.roles[i] in roles]


@pytest.mark.parametrize("mask", ["full", "isolated_inplace", "isolated", "alone"])
def test_prompts_match_run_with_cache(tiny, mask):
    prompts = _prompts(tiny.tokenizer)
    result = collect(tiny, prompts, mask=mask, batch_size=2, progress=False)
    assert list(result.example_ids) == ["0-0", "0-1", "0-q", "1-0", "1-1", "1-2", "1-q"]
    assert list(result.segments) == ["demo", "demo", "query"] + ["demo"] * 3 + ["query"]
    row = 0
    for p in prompts:
        if mask in ("full", "isolated_inplace"):
            ctx = None if mask == "full" else strategy_hooks(tiny, "isolated_inplace", [p], length=len(p))
            acts = _cache(tiny, p.tokens, ctx)
            refs = [acts[:, _own(p, s)] for _, s in p.example_segments()]
        else:  # isolated must equal alone, so both are checked against the re-encoded segments
            refs = []
            for _, alone in alone_segments(p):
                refs.append(_cache(tiny, alone.tokens)[:, _own(alone, alone.segments[-1])])
        for ref in refs:
            for layer in range(tiny.cfg.n_layers):
                _assert_close(result, row, _moments(ref[layer]), layer)
            row += 1


def test_positions_input_and_template(tiny):
    p = _prompts(tiny.tokenizer)[0]
    acts = _cache(tiny, p.tokens)
    seg = p.example_segments()[0][1]
    r_input = collect(tiny, [p], mask="full", positions="input", progress=False)
    _assert_close(r_input, 0, _moments(acts[0, _own(p, seg, ("text",))]), 0)
    r_tmpl = collect(tiny, [p], mask="full", include_template=True, progress=False)
    _assert_close(r_tmpl, 0, _moments(acts[0, seg.start : seg.end]), 0)
    assert r_tmpl.provenance.positions == "all+template"


def test_padding_invariance(tiny):
    alone = collect(tiny, [TEXTS[3]], progress=False)
    batched = collect(tiny, [TEXTS[2], TEXTS[3], TEXTS[4]], batch_size=3, progress=False)
    for name in alone.statistics:
        np.testing.assert_allclose(batched.array(name)[1], alone.array(name)[0], rtol=1e-5, atol=1e-6)


class _CountingReducer:
    """A fake third-party reducer (like the SAE one): token counts and sums per group."""

    family: ClassVar[str] = "fake"

    def __init__(self):
        self.layers_seen = []

    def statistic_names(self):
        return ("n_values", "total")

    def reduce(self, acts, groups, n_groups, layer):
        self.layers_seen.append(layer)
        assert groups.min() >= 0 and groups.max() == n_groups - 1
        n = torch.bincount(groups, minlength=n_groups).double() * acts.shape[1]
        total = torch.zeros(n_groups, dtype=torch.float64).index_add_(0, groups, acts.double().sum(1))
        return {"n_values": n, "total": total}

    def provenance_info(self):
        return {"sae": "fake-sae-v0"}


def test_reducer_instances_are_used(tiny):
    fake = _CountingReducer()
    result = collect(tiny, TEXTS, statistics=["mean", fake], layers=[0, 1], batch_size=2, progress=False)
    assert set(result.statistics) == {"mean", "n_values", "total"}
    assert sorted(set(fake.layers_seen)) == [0, 1]
    d = tiny.cfg.d_model
    np.testing.assert_array_equal(result.array("n_values")[:, 0], result.n_tokens * d)
    np.testing.assert_allclose(result.array("total"), result.array("mean") * (result.n_tokens * d)[:, None], rtol=1e-9)
    assert {"family": "fake", "statistics": ["n_values", "total"], "sae": "fake-sae-v0"} in result.provenance.extra["reducers"]


def test_stops_after_last_layer(tiny):
    fired = []
    with tiny.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: fired.append(1))]):
        collect(tiny, TEXTS[:2], layers=[0], progress=False)
        assert not fired
        collect(tiny, TEXTS[:2], layers=[1], progress=False)
        assert fired


def test_saved_activations_are_the_cache(tiny, tmp_path):
    folder = tmp_path / "acts"
    result = collect(tiny, TEXTS, layers=[1], batch_size=2, save_activations=folder, progress=False)
    index = read_shard_index(folder)
    assert index["layers"] == [1] and index["provenance"]["data_hash"] == result.provenance.data_hash
    acts, rows, positions = load_activations(folder, 1)
    assert len(acts) == int(result.n_tokens.sum())
    for i, text in enumerate(TEXTS):
        ref = _cache(tiny, [tiny.tokenizer.bos_token_id, *tiny.tokenizer.encode(text)])[1]
        mine = rows == i
        np.testing.assert_allclose(acts[mine].double().numpy(), ref[positions[mine].numpy()], rtol=1e-5, atol=1e-6)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_isolated_past_a_sliding_window_runs_segments_alone():
    """isolated cannot be computed in one pass past a local window; collect re-encodes those
    prompts' segments alone, which is what isolated equals anyway."""
    from mechsel.models import tiny_model

    local = tiny_model(n_layers=2, attn_types=["local", "global"], use_local_attn=True, window_size=56)
    prompts = _prompts(local.tokenizer)
    assert len(prompts[0]) <= 56 < len(prompts[1])
    isolated = collect(local, prompts, mask="isolated", batch_size=2, progress=False)
    alone = collect(local, prompts, mask="alone", batch_size=2, progress=False)
    assert isolated.provenance.extra["n_reencoded_past_window"] == 1
    assert isolated.provenance.mask == "isolated"
    for name in isolated.statistics:
        np.testing.assert_allclose(isolated.array(name), alone.array(name), rtol=1e-5, atol=1e-6)
    inplace = collect(local, prompts, mask="isolated_inplace", batch_size=2, progress=False)
    assert not np.allclose(inplace.array("variance")[3:], alone.array("variance")[3:], rtol=1e-3)
