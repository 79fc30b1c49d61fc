"""Label scoring equals a naive full forward + log_softmax, with and without prefix reuse, either padding side."""

from __future__ import annotations

import pytest
import torch

from mechsel.errors import ConfigError, DataError
from mechsel.icl import LabelScorer, ScoringConfig, label_distribution, naive_label_logprobs
from mechsel.icl.kv import encode_prefix, pad_batch
from mechsel.icl.scoring import token_batches
from mechsel.models import CharTokenizer, tiny_model
from mechsel.tasks import Example, PromptEncoder

TOL = 1e-4


def sst(i, text, label=None):
    return Example(id=i, inputs={"sentence": text}, label=label, split="t")


DEMO = sst("d", "a tender , moving film", 1)
QUERIES = [sst(i, t) for i, t in enumerate(["dull", "bright and funny , rarely slow", "meh", "a waste of two hours of my life", "ok"])]


def prompts_sharing_a_demo(bos=1):
    enc = PromptEncoder("sst2", CharTokenizer(), bos_token_id=bos)
    return [enc.build([DEMO], q) for q in QUERIES]


def mixed_prompts():
    enc = PromptEncoder("sst2", CharTokenizer(), bos_token_id=1)
    other = sst("e", "boring", 0)
    return [enc.build([DEMO], QUERIES[0]), enc.build([other, DEMO], QUERIES[1]), enc.build([], QUERIES[2]), enc.build([other], QUERIES[3])]


SINGLE = [[40], [41], [97]]
MULTI = [[40], [41, 42, 43], [50, 51]]


@pytest.fixture(scope="module")
def model():
    return tiny_model(n_layers=2, n_ctx=256, seed=1)


@pytest.mark.parametrize("labels", [SINGLE, MULTI], ids=["single-token", "multi-token"])
@pytest.mark.parametrize("padding_side", ["left", "right"])
@pytest.mark.parametrize("prefix_reuse", [True, False])
@pytest.mark.parametrize("make_prompts", [prompts_sharing_a_demo, mixed_prompts], ids=["shared", "mixed"])
def test_scorer_equals_naive(model, labels, padding_side, prefix_reuse, make_prompts):
    prompts = make_prompts()
    ref = naive_label_logprobs(model, prompts, labels)
    cfg = ScoringConfig(batch_size=2, padding_side=padding_side, prefix_reuse=prefix_reuse)
    got = LabelScorer(model, labels, cfg).logprobs(prompts)
    assert got.shape == (len(prompts), len(labels))
    assert (got - ref).abs().max().item() <= TOL
    assert (ref <= 0).all()


@pytest.mark.parametrize("max_batch_tokens", [1, 40, 120, None])
def test_token_capped_batches_equal_naive(model, max_batch_tokens):
    prompts = mixed_prompts()
    ref = naive_label_logprobs(model, prompts, MULTI)
    got = LabelScorer(model, MULTI, ScoringConfig(batch_size=16, max_batch_tokens=max_batch_tokens)).logprobs(prompts)
    assert (got - ref).abs().max().item() <= TOL


def test_token_batches_respect_both_caps():
    lengths = [50, 40, 40, 30, 10, 10, 10, 10, 5]
    assert token_batches(lengths, 16, None) == [list(range(9))]
    assert token_batches(lengths, 4, None) == [[0, 1, 2, 3], [4, 5, 6, 7], [8]]
    batches = token_batches(lengths, 16, 90)
    assert [i for b in batches for i in b] == list(range(9))
    assert batches == [[0], [1, 2], [3, 4, 5], [6, 7, 8]]
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 90
    assert token_batches([500, 400], 16, 100) == [[0], [1]]  # a row longer than the cap still runs, alone
    with pytest.raises(ConfigError, match="max_batch_tokens"):
        ScoringConfig(max_batch_tokens=0)


def test_naive_reference_is_a_plain_log_softmax(model):
    """The reference itself, checked by hand for one prompt and a two-token label."""
    p = list(prompts_sharing_a_demo()[0].tokens)
    with torch.inference_mode():
        logits = model(torch.tensor([p + [41]]))[0]
    lp = torch.log_softmax(logits, -1)
    expected = lp[len(p) - 1, 41] + lp[len(p), 42]
    assert abs(naive_label_logprobs(model, [p], [[41, 42]])[0, 0].item() - expected.item()) < 1e-6


def test_soft_capped_model_matches(model):
    capped = tiny_model(n_layers=2, n_ctx=256, seed=1, output_logits_soft_cap=2.0)
    prompts = prompts_sharing_a_demo()
    got = LabelScorer(capped, MULTI).logprobs(prompts)
    assert (got - naive_label_logprobs(capped, prompts, MULTI)).abs().max().item() <= TOL
    # the cap matters here, so matching it is not vacuous
    assert (got - LabelScorer(model, MULTI).logprobs(prompts)).abs().max().item() > 1e-2


def test_prefix_is_encoded_once(model):
    prompts = prompts_sharing_a_demo()
    seen = []
    hook = ("hook_embed", lambda act, hook: seen.append(act.shape[0] * act.shape[1]))
    with model.hooks(fwd_hooks=[hook]):
        LabelScorer(model, SINGLE, ScoringConfig(batch_size=8, padding_side="right")).logprobs(prompts)
    prefix_len = 1 + len("Review: a tender , moving film\nSentiment: positive\n\nReview: ")
    padded_suffix = max(len(p) for p in prompts) - prefix_len
    assert seen == [prefix_len, len(prompts) * padded_suffix]


def test_prefix_matters(model):
    """Scoring the suffixes without their prefix gives different numbers (the check above can fail)."""
    prompts = prompts_sharing_a_demo()
    n = 1 + len("Review: a tender , moving film\nSentiment: positive\n\n")
    with_prefix = LabelScorer(model, SINGLE).logprobs(prompts)
    without = LabelScorer(model, SINGLE).logprobs([[1, *p.tokens[n:]] for p in prompts])
    assert (with_prefix - without).abs().max().item() > 1e-3


def test_sliding_window_models():
    local = tiny_model(n_layers=2, n_ctx=256, attn_types=["local", "global"], window_size=24, seed=2)
    prompts = prompts_sharing_a_demo()  # ~90 tokens, far past the window
    ref = naive_label_logprobs(local, prompts, SINGLE)
    for cfg in (ScoringConfig(padding_side="right"), ScoringConfig(padding_side="left", prefix_reuse=False)):
        assert (LabelScorer(local, SINGLE, cfg).logprobs(prompts) - ref).abs().max().item() <= TOL
    with pytest.raises(ConfigError, match="padding_side='right'"):
        LabelScorer(local, SINGLE, ScoringConfig(padding_side="left")).logprobs(prompts)


def test_label_distribution_and_bad_input(model):
    lp = LabelScorer(model, SINGLE).logprobs(prompts_sharing_a_demo())
    dist = label_distribution(lp)
    assert dist.shape == (5, 3) and abs(dist.sum(axis=1) - 1).max() < 1e-9
    with pytest.raises(ConfigError, match="outside the model's vocabulary"):
        LabelScorer(model, [[40], [100000]])
    with pytest.raises(ConfigError, match="at least one token"):
        LabelScorer(model, [[40], []])
    with pytest.raises(DataError, match="empty prompt"):
        LabelScorer(model, SINGLE).logprobs([[]])
    with pytest.raises(ConfigError, match="padding_side"):
        ScoringConfig(padding_side="middle")  # type: ignore[arg-type]
    assert LabelScorer(model, SINGLE).logprobs([]).shape == (0, 3)


def test_pad_batch_and_prefix_cache(model):
    tokens, mask, offsets = pad_batch([[5, 6, 7], [8]], "left")
    assert tokens.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]] and offsets.tolist() == [0, 2]
    tokens, mask, offsets = pad_batch([[5, 6, 7], [8]], "right", pad_id=3)
    assert tokens.tolist() == [[5, 6, 7], [8, 3, 3]] and offsets.tolist() == [0, 0]
    prefix = encode_prefix(model, [1, 10, 11])
    cache = prefix.for_batch(4, frozen=True)
    assert len(prefix) == 3 and cache[0].past_keys.shape[:2] == (4, 3) and cache.frozen
