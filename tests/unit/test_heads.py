"""Head finding: a planted induction head is found, random heads are not; function-vector AIE
against a hand computation; the cache reloads with provenance; ranking and the heatmap."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, cast

import numpy as np
import pandas as pd
import pytest
import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

import mechsel.heads.function_vectors as fv_module
import mechsel.heads.induction as induction_module
from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError
from mechsel.heads import (
    FunctionVectorConfig,
    HeadScores,
    InductionConfig,
    answer_probs,
    build_fv_prompts,
    function_vector_scores,
    head_means,
    indirect_effects,
    induction_scores,
    patch_head_outputs,
    repeated_random_tokens,
    scores_folder,
    task_function_vector,
    top_heads,
)
from mechsel.models import CharTokenizer, model_provenance, tiny_model
from mechsel.tasks import Example, TaskConfig

PLANTED = (1, 1)
"""The (layer, head) built to be an induction head."""


def planted_induction_model(d_vocab: int = 128, n_ctx: int = 24) -> HookedTransformer:
    """A 2-layer attention-only model, weights set by hand, whose head 1 of layer 1 is an induction head.

    Residual stream: token one-hot ``[0, V)``, position one-hot ``[V, V+P)``, previous-token
    one-hot ``[V+P, 2V+P)``. Layer 0 head 0 attends from position p to p-1 (query: position p,
    key: position p'+1) and writes that token into the previous-token subspace. Layer 1 head 1
    matches the current token (query) against the previous-token subspace (key), so it attends to
    the position right after an earlier occurrence of the current token, and copies that token
    (OV). Every other weight is zero: those heads attend uniformly and write nothing.
    """
    V, P = d_vocab, n_ctx
    d_head = max(V, P)
    cfg = HookedTransformerConfig(
        n_layers=2,
        d_model=2 * V + P,
        n_heads=2,
        d_head=d_head,
        n_ctx=P,
        d_vocab=V,
        attn_only=True,
        normalization_type=None,
        positional_embedding_type="standard",
        seed=0,
    )
    model = HookedTransformer(cfg)
    sharp = 20.0 * d_head**0.5  # attention logits of 20 after TransformerLens's 1/sqrt(d_head)
    pos, prev = V, V + P
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        model.embed.W_E[torch.arange(V), torch.arange(V)] = 1.0
        model.pos_embed.W_pos[torch.arange(P), pos + torch.arange(P)] = 1.0
        a0, a1 = model.blocks[0].attn, model.blocks[1].attn
        for p in range(P):
            a0.W_Q[0, pos + p, p] = sharp
            if p + 1 < P:
                a0.W_K[0, pos + p, p + 1] = 1.0
        layer, head = PLANTED
        assert layer == 1
        for t in range(V):
            a0.W_V[0, t, t] = 1.0
            a0.W_O[0, t, prev + t] = 1.0
            a1.W_Q[head, t, t] = sharp
            a1.W_K[head, prev + t, t] = 1.0
            a1.W_V[head, t, t] = 1.0
            a1.W_O[head, t, t] = 1.0
        model.unembed.W_U[torch.arange(V), torch.arange(V)] = 1.0
    model.tokenizer = CharTokenizer(V)  # pyright: ignore[reportAttributeAccessIssue]
    model.eval()
    return model


SMALL = InductionConfig(n_random_tokens=10, n_batches=2, batch_size=8, seed=3)


# ---- induction -------------------------------------------------------------------------------
def test_planted_induction_head_is_found_first_and_scores_high():
    model = planted_induction_model()
    res = induction_scores(model, SMALL, cache=False)
    assert res.kind == "induction" and res.scores.shape == (2, 2)
    assert res.top(1) == [PLANTED]
    assert res.scores[PLANTED] > 0.9
    others = np.delete(res.scores.reshape(-1), PLANTED[0] * 2 + PLANTED[1])
    assert others.max() < 0.2
    assert res.scores[0, 0] < 0.01  # the previous-token head attends to i-1, never to i-R+1
    assert res.stderr is not None and res.stderr.shape == (2, 2)
    assert res.meta["n_sequences"] == 16


def test_random_model_has_no_induction_head():
    res = induction_scores(
        tiny_model(n_layers=2, n_heads=4, seed=11), InductionConfig(n_random_tokens=20, n_batches=2, batch_size=4), cache=False
    )
    assert res.scores.max() < 0.2


def test_induction_score_equals_the_diagonal_of_the_cached_pattern():
    model, R = tiny_model(n_layers=2, n_heads=4, seed=2), 12
    config = InductionConfig(n_random_tokens=R, n_batches=1, batch_size=3, seed=5)
    (tokens,) = repeated_random_tokens(model, config)
    assert tokens.shape == (3, 1 + 2 * R)
    assert tokens[:, 0].tolist() == [CharTokenizer.bos_token_id] * 3
    torch.testing.assert_close(tokens[:, 1 : R + 1], tokens[:, R + 1 :])
    assert not np.isin(tokens[:, 1:].numpy(), [0, 1, 2]).any()  # no pad / BOS / EOS among the random tokens
    _, cache = model.run_with_cache(tokens)
    # the entries (q, q - R + 1) of the last R query rows, averaged over them and the batch
    expected = np.array(
        [
            cache[f"blocks.{layer}.attn.hook_pattern"].diagonal(offset=-(R - 1), dim1=-2, dim2=-1)[..., -R:].mean(-1).mean(0).numpy()
            for layer in range(2)
        ]
    )
    res = induction_scores(model, config, cache=False)
    np.testing.assert_allclose(res.scores, expected, atol=1e-6)


def test_induction_scores_are_seeded_and_deterministic():
    model = tiny_model(n_layers=1, n_heads=2, seed=4)
    a = induction_scores(model, SMALL, cache=False)
    b = induction_scores(model, SMALL, cache=False)
    c = induction_scores(model, dataclasses.replace(SMALL, seed=4), cache=False)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert a.provenance.data_hash == b.provenance.data_hash != c.provenance.data_hash
    assert not np.array_equal(a.scores, c.scores)


def test_induction_config_errors_teach():
    with pytest.raises(ConfigError, match="n_random_tokens must be ≥ 2"):
        InductionConfig(n_random_tokens=1)
    with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
        InductionConfig(batch_size=0)
    with pytest.raises(ConfigError, match="n_random_tokens ≤ 11"):
        induction_scores(planted_induction_model(), InductionConfig(n_random_tokens=12), cache=False)
    bare = planted_induction_model()
    bare.tokenizer = None
    with pytest.raises(ConfigError, match="prepend_bos=False"):
        induction_scores(bare, SMALL, cache=False)
    assert induction_scores(bare, dataclasses.replace(SMALL, prepend_bos=False), cache=False).top(1) == [PLANTED]


# ---- function vectors ------------------------------------------------------------------------
TOY = TaskConfig(name="toy_fv", template="In: {text}\nOut: ", input_fields=("text",), label_names=("a", "b"), verbalizers=("a", "b"))
WORDS = ["cat", "horse", "owl", "ant", "eagle", "bee", "yak", "lion", "emu", "sardine"]
EXAMPLES = [Example(id=i, inputs={"text": w}, label=i % 2, split="toy") for i, w in enumerate(WORDS)]
FV_SMALL = FunctionVectorConfig(n_prompts=3, n_shots=3, seed=1, batch_size=5)


@pytest.fixture(scope="module")
def fv_model():
    return tiny_model(n_layers=2, n_heads=4, n_ctx=128, seed=7)


def test_fv_prompts_differ_only_in_shuffled_demo_labels(fv_model):
    fvp = build_fv_prompts(fv_model, TOY, EXAMPLES, FV_SMALL)
    assert len(fvp.clean) == len(fvp.corrupted) == len(fvp.gold) == 3
    assert fvp.answer_ids == (3 + ord("a"), 3 + ord("b"))
    for clean, corrupt in zip(fvp.clean, fvp.corrupted):
        assert clean.tokens[0] == CharTokenizer.bos_token_id and len(clean) == len(corrupt)
        differ = [i for i, (x, y) in enumerate(zip(clean.tokens, corrupt.tokens)) if x != y]
        assert differ, "every corrupted prompt changes at least one demonstration label"
        assert all(clean.roles[i] == "label" for i in differ)
        labels = lambda p: sorted(t for t, r in zip(p.tokens, p.roles) if r == "label")  # noqa: E731
        assert labels(clean) == labels(corrupt)  # a permutation: the same label words


def test_fv_scores_shapes_and_determinism(fv_model):
    a = function_vector_scores(fv_model, TOY, EXAMPLES, FV_SMALL, cache=False)
    b = function_vector_scores(fv_model, TOY, EXAMPLES, FV_SMALL, cache=False)
    assert a.kind == "function_vector" and a.scores.shape == (2, 4)
    assert a.head_means is not None and a.head_means.shape == (2, 4, fv_model.cfg.d_head)
    assert a.stderr is not None and a.stderr.shape == (2, 4)
    np.testing.assert_array_equal(a.scores, b.scores)
    np.testing.assert_array_equal(a.head_means, b.head_means)
    c = function_vector_scores(fv_model, TOY, EXAMPLES, dataclasses.replace(FV_SMALL, seed=2), cache=False)
    assert c.provenance.data_hash != a.provenance.data_hash and not np.array_equal(a.scores, c.scores)
    frame = a.to_frame()
    assert list(frame.columns) == ["layer", "head", "score", "stderr", "rank", "kind", "model"] and len(frame) == 8
    assert sorted(frame["rank"]) == list(range(1, 9))


def test_batch_size_does_not_change_the_scores(fv_model):
    a = function_vector_scores(fv_model, TOY, EXAMPLES, FV_SMALL, cache=False)
    b = function_vector_scores(fv_model, TOY, EXAMPLES, dataclasses.replace(FV_SMALL, batch_size=64), cache=False)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-7)


def test_patching_a_prompts_own_mean_into_it_changes_nothing(fv_model):
    config = dataclasses.replace(FV_SMALL, n_prompts=1, metric="label_prob")
    fvp = build_fv_prompts(fv_model, TOY, EXAMPLES, config)
    means = head_means(fv_model, fvp.clean)  # the mean over one prompt is its own activation
    same = dataclasses.replace(fvp, corrupted=fvp.clean)
    p_base, ie = indirect_effects(fv_model, same, means, config)
    np.testing.assert_allclose(p_base, answer_probs(fv_model, fvp.clean, fvp, "label_prob"), atol=1e-7)
    np.testing.assert_allclose(ie, 0.0, atol=1e-6)
    # the hook alone, on a plain forward pass: identical logits
    tokens = torch.tensor([fvp.clean[0].tokens])
    last = torch.tensor([tokens.shape[1] - 1])
    plain = fv_model(tokens)
    with patch_head_outputs(fv_model, 1, last, torch.tensor([2]), means[1, 2][None]):
        patched = fv_model(tokens)
    torch.testing.assert_close(patched, plain, atol=1e-5, rtol=1e-5)
    # and a different value does change them
    with patch_head_outputs(fv_model, 1, last, torch.tensor([2]), means[1, 2][None] + 1.0):
        assert not torch.allclose(fv_model(tokens), plain)


def _hand_aie(model, fvp, layer, head, metric):
    """The AIE of one head, one prompt at a time, with plain TransformerLens calls."""
    z_name = f"blocks.{layer}.attn.hook_z"
    zs = [model.run_with_cache(torch.tensor([p.tokens]), names_filter=z_name)[1][z_name][0, -1, head] for p in fvp.clean]
    mean = torch.stack(zs).mean(0)

    def prob(logits, gold):
        if metric == "label_prob":
            return torch.softmax(logits[list(fvp.answer_ids)].double(), -1)[fvp.answer_ids.index(gold)].item()
        return torch.softmax(logits.double(), -1)[gold].item()

    def patch(z, hook):
        z[0, -1, head] = mean
        return z

    effects = []
    for p, gold in zip(fvp.corrupted, fvp.gold_tokens):
        tokens = torch.tensor([p.tokens])
        before = prob(model(tokens)[0, -1], gold)
        after = prob(model.run_with_hooks(tokens, fwd_hooks=[(z_name, patch)])[0, -1], gold)
        effects.append(after - before)
    clean = [prob(model(torch.tensor([p.tokens]))[0, -1], g) for p, g in zip(fvp.clean, fvp.gold_tokens)]
    return float(np.mean(effects)), float(np.mean(clean))


@pytest.mark.parametrize("metric", ["vocab_prob", "label_prob"])
def test_aie_matches_a_hand_computation(fv_model, metric):
    config = dataclasses.replace(FV_SMALL, metric=metric)
    res = function_vector_scores(fv_model, TOY, EXAMPLES, config, cache=False)
    fvp = build_fv_prompts(fv_model, TOY, EXAMPLES, config)
    assert len({len(p) for p in fvp.corrupted}) > 1  # prompts of several lengths: padding is exercised
    for layer, head in [(0, 1), (1, 3)]:
        aie, clean = _hand_aie(fv_model, fvp, layer, head, metric)
        np.testing.assert_allclose(res.scores[layer, head], aie, rtol=1e-3, atol=1e-8)
        np.testing.assert_allclose(res.meta["clean_prob"], clean, rtol=1e-5)
    assert np.abs(res.scores).max() > 0  # a random model's heads do have effects


def test_fv_input_errors_teach(fv_model):
    with pytest.raises(ConfigError, match="n_shots must be ≥ 2"):
        FunctionVectorConfig(n_shots=1)
    with pytest.raises(ConfigError, match="metric must be one of"):
        FunctionVectorConfig(metric="accuracy")  # type: ignore[arg-type]
    spaced = dataclasses.replace(TOY, verbalizers=(" a", " b"))
    with pytest.raises(ConfigError, match="start with the same token"):
        function_vector_scores(fv_model, spaced, EXAMPLES, FV_SMALL, cache=False)
    with pytest.raises(DataError, match="at least 4 examples"):
        function_vector_scores(fv_model, TOY, EXAMPLES[:3], FV_SMALL, cache=False)
    with pytest.raises(DataError, match="single label"):
        function_vector_scores(fv_model, TOY, [e for e in EXAMPLES if e.label == 0], FV_SMALL, cache=False)
    gen = TaskConfig(name="toy_gen", template="{text} ->", input_fields=("text",), kind="generation", reference_field="out")
    with pytest.raises(ConfigError, match="classification task"):
        function_vector_scores(fv_model, gen, EXAMPLES, FV_SMALL, cache=False)


def test_task_function_vector_sums_the_top_heads_through_w_o(fv_model):
    res = function_vector_scores(fv_model, TOY, EXAMPLES, FV_SMALL, cache=False)
    vec = task_function_vector(fv_model, res, n=3)
    assert vec.shape == (fv_model.cfg.d_model,)
    assert res.head_means is not None
    expected = sum(torch.from_numpy(res.head_means[L, h].copy()) @ fv_model.blocks[L].attn.W_O[h] for L, h in res.top(3))
    torch.testing.assert_close(vec, expected)
    with pytest.raises(ProvenanceMismatchError, match="compute function_vector_scores on this model"):
        task_function_vector(tiny_model(n_layers=2, n_heads=4, n_ctx=128, seed=8), res)
    with pytest.raises(ConfigError, match="needs function-vector scores"):
        task_function_vector(fv_model, induction_scores(fv_model, SMALL, cache=False))
    with pytest.raises(ConfigError, match="1 ≤ n ≤ 8"):
        task_function_vector(fv_model, res, n=10)


# ---- cache -----------------------------------------------------------------------------------
def test_cache_round_trip_reloads_with_provenance(tmp_path, monkeypatch, fv_model):
    monkeypatch.setenv("MECHSEL_CACHE_DIR", str(tmp_path))
    model = planted_induction_model()
    first = induction_scores(model, SMALL)
    folder = scores_folder("induction", first.provenance)
    assert folder.is_relative_to(tmp_path / "heads" / "induction") and (folder / "arrays.npz").is_file()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["provenance"]["weight_hash"] == model_provenance(model).weight_hash
    assert manifest["provenance"]["extra"]["config"]["seed"] == SMALL.seed
    assert not list(folder.parent.glob(".*tmp-*"))  # the atomic write left no temporary folder

    def fail(*args, **kwargs):
        raise AssertionError("recomputed instead of loading the cache")

    monkeypatch.setattr(induction_module, "_compute", fail)
    again = induction_scores(model, SMALL)
    np.testing.assert_array_equal(again.scores, first.scores)
    np.testing.assert_array_equal(again.stderr, first.stderr)
    assert again.provenance.to_dict() == first.provenance.to_dict()
    with pytest.raises(AssertionError, match="recomputed"):  # other settings: another folder, computed
        induction_scores(model, dataclasses.replace(SMALL, seed=9))

    fv_first = function_vector_scores(fv_model, TOY, EXAMPLES, FV_SMALL)
    monkeypatch.setattr(fv_module, "head_means", fail)
    fv_again = function_vector_scores(fv_model, TOY, EXAMPLES, FV_SMALL)
    np.testing.assert_array_equal(fv_again.scores, fv_first.scores)
    np.testing.assert_array_equal(fv_again.head_means, fv_first.head_means)
    assert fv_again.meta == fv_first.meta and fv_again.provenance.extra["task"]["name"] == "toy_fv"
    with pytest.raises(AssertionError, match="recomputed"):  # other examples: other prompts, computed
        function_vector_scores(fv_model, TOY, EXAMPLES[::-1], FV_SMALL)


def test_unreadable_cache_is_recomputed(tmp_path, monkeypatch):
    monkeypatch.setenv("MECHSEL_CACHE_DIR", str(tmp_path))
    model = planted_induction_model()
    first = induction_scores(model, SMALL)
    folder = scores_folder("induction", first.provenance)
    (folder / "arrays.npz").write_bytes(b"not an npz")
    again = induction_scores(model, SMALL)
    np.testing.assert_array_equal(again.scores, first.scores)
    assert HeadScores.load(folder).scores.shape == (2, 2)


# ---- ranking and figure ----------------------------------------------------------------------
def test_top_heads_orders_by_score_and_breaks_ties_by_position():
    scores = np.array([[0.1, 0.9, 0.5], [0.9, 0.2, 0.5]])
    assert top_heads(scores, 4) == [(0, 1), (1, 0), (0, 2), (1, 2)]
    assert top_heads(scores, 6)[-1] == (0, 0)
    with pytest.raises(ConfigError, match="1 ≤ n ≤ 6"):
        top_heads(scores, 0)
    with pytest.raises(DataError, match="NaN"):
        top_heads(np.array([[np.nan, 1.0]]), 1)


def test_head_scores_heatmap_structure():
    from mechsel.plots.heads import head_scores_heatmap

    res = induction_scores(planted_induction_model(), SMALL, cache=False)
    fig = cast(Any, head_scores_heatmap(res.to_frame(), mark_top=1))
    heat, marks = fig.data
    assert heat.type == "heatmap" and np.asarray(heat.z).shape == (2, 2)
    assert list(heat.x) == [0, 1] and list(heat.y) == [0, 1]
    assert heat.zmin == 0 and heat.zmax == 1
    assert (list(marks.x), list(marks.y)) == ([PLANTED[1]], [PLANTED[0]])
    assert fig.layout.xaxis.title.text == "head" and fig.layout.yaxis.title.text == "layer"
    assert fig.layout.title.text.startswith("Induction scores")
    frame = res.to_frame()
    aie = frame.assign(kind="function_vector", score=frame["score"] - 0.5)
    fig = cast(Any, head_scores_heatmap(aie))
    assert fig.data[0].zmid == 0 and "indirect effect" in fig.layout.title.text
    with pytest.raises(DataError, match="pass kind="):
        head_scores_heatmap(pd.concat([frame, aie]))
