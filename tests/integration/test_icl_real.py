"""The ICL engine on the embedded Gemma 3 270M and the real datasets."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mechsel.icl import GenerationConfig, ICLRunner, LabelScorer, ScoringConfig, evaluate, greedy_generate, naive_label_logprobs
from mechsel.models import matmul_precision
from mechsel.models.layout import contiguous_copy
from mechsel.tasks import PromptEncoder, SplitConfig, get_task, load_examples, make_splits

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sst2_splits():
    return make_splits("sst2", SplitConfig(pool_size=32, dev_size=16, test_size=64, seed=0))


@pytest.mark.parametrize("task", ["sst2", "ag_news", "rte"])
def test_builtin_verbalisers_are_single_gemma_tokens(embedded_model, task):
    enc = PromptEncoder(task, embedded_model.tokenizer, bos_token_id=embedded_model.tokenizer.bos_token_id)
    ids = enc.label_token_ids
    assert all(len(t) == 1 for t in ids) and len(set(ids)) == len(ids)
    for word, t in zip(get_task(task).label_words, ids):
        assert embedded_model.tokenizer.decode(list(t)) == word


def test_segments_line_up_with_gemma_tokens(embedded_model, sst2_splits):
    tok = embedded_model.tokenizer
    enc = PromptEncoder("sst2", tok, bos_token_id=tok.bos_token_id)
    demos, query = list(sst2_splits.pool[:3]), sst2_splits.dev[0]
    prompt = enc.build(demos, query)
    assert prompt.tokens[0] == tok.bos_token_id
    for seg in prompt.segments:
        text = tok.decode(list(prompt.tokens[seg.start : seg.end]))
        if seg.kind == "demo":
            ex = next(d for d in demos if d.id == seg.example_id)
            assert text == f"Review: {ex.inputs['sentence']}\nSentiment:{get_task('sst2').label_words[ex.label]}"
        elif seg.kind == "sep":
            assert text == "\n\n"
        elif seg.kind == "query":
            assert text == f"Review: {query.inputs['sentence']}\nSentiment:"


def test_scorer_equals_naive_on_gemma(embedded_model, sst2_splits):
    tok = embedded_model.tokenizer
    enc = PromptEncoder("sst2", tok, bos_token_id=tok.bos_token_id)
    prompts = [enc.build([sst2_splits.pool[0]], q) for q in sst2_splits.dev[:3]]
    labels = [*enc.label_token_ids, tuple(tok.encode(" Sci/Tech", add_special_tokens=False))]  # one 3-token label
    ref = naive_label_logprobs(embedded_model, prompts, labels)
    for side in ("left", "right"):
        for reuse in (True, False):
            cfg = ScoringConfig(batch_size=2, padding_side=side, prefix_reuse=reuse)
            assert (LabelScorer(embedded_model, labels, cfg).logprobs(prompts) - ref).abs().max().item() <= 1e-4


def test_speed_settings_keep_gemma_scores(embedded_model, sst2_splits):
    """The loaded model's weight layout gives the same logits as contiguous weights, bit for bit;
    the demo's ``medium`` matmul precision (when this machine passes its check) stays within
    float32 rounding of ``highest`` on real 4-shot and per-query prompts."""
    plain = contiguous_copy(embedded_model)
    assert any(not p.is_contiguous() for p in embedded_model.parameters())
    tokens = torch.tensor([embedded_model.tokenizer.encode("A tender, moving film. Sentiment:")])
    with torch.inference_mode():
        assert torch.equal(embedded_model(tokens), plain(tokens))
    runner = ICLRunner(embedded_model, "sst2")
    queries = list(sst2_splits.test[:24])
    sets = [list(sst2_splits.pool[:4])] * 12 + [list(sst2_splits.pool[i : i + 3]) for i in range(12)]
    ref = runner.label_logprobs(sets, queries)
    with matmul_precision("medium") as check:
        got = runner.label_logprobs(sets, queries)
    assert check.effective in ("medium", "highest") and check.error >= 0
    assert np.abs(got - ref).max() <= 1e-4
    assert (got.argmax(1) == ref.argmax(1)).all()


def test_sst2_calibrated_zero_shot_is_well_above_chance(embedded_model, sst2_splits):
    """Uncalibrated 0-shot mostly answers one label (accuracy ≈ that label's share); calibration fixes it."""
    runner = ICLRunner(embedded_model, "sst2")
    res = evaluate(runner, sst2_splits.test, [], calibrate=True, n_boot=200)
    assert res.score > 0.65 and res.ci[0] < res.score < res.ci[1]
    assert res.predictions["pred"].nunique() == 2


def test_e2e_generation_matches_recomputation(embedded_model):
    tok = embedded_model.tokenizer
    mrs = load_examples("e2e_nlg", "validation")[:3]
    enc = PromptEncoder("e2e_nlg", tok, bos_token_id=tok.bos_token_id)
    prompts = [enc.build([mrs[0]], q) for q in mrs[1:]]
    gens = greedy_generate(embedded_model, prompts, GenerationConfig(max_new_tokens=4, stop=(), stop_at_eos=False))
    seq = list(prompts[1].tokens)
    with torch.inference_mode():
        for _ in range(4):
            seq.append(int(embedded_model(torch.tensor([seq]))[0, -1].argmax()))
    assert list(gens[1].token_ids) == seq[len(prompts[1]) :]
    runner = ICLRunner(embedded_model, dataclasses.replace(get_task("e2e_nlg"), max_new_tokens=16))
    res = evaluate(runner, mrs[1:], mrs[:1], n_boot=20)
    assert np.isfinite(res.score) and all("\n" not in t for t in res.predictions["prediction"])
