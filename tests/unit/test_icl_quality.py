"""Quality matrix, checkpoints, marginal gain, evaluation and confidences, against straightforward loops."""

from __future__ import annotations

import numpy as np
import pytest

from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError
from mechsel.icl import (
    ICLRunner,
    ScoringConfig,
    evaluate,
    label_distribution,
    label_probabilities,
    make_confidence_fn,
    marginal_gain,
    naive_label_logprobs,
    quality_matrix,
)
from mechsel.icl.metrics import bleu, rouge_l, rouge_l_scores
from mechsel.models import tiny_model
from mechsel.tasks import Example, PromptEncoder, sample_demonstrations


def sst(i, text, label):
    return Example(id=i, inputs={"sentence": text}, label=label, split="toy")


POOL = [sst(i, t, i % 2) for i, t in enumerate(["great fun", "so dull", "loved it", "awful plot", "a gem", "a mess"])]
DEV = [sst(100 + i, t, i % 2) for i, t in enumerate(["moving", "tedious", "charming", "bland"])]
TEST = [sst(200 + i, t, (i + 1) % 2) for i, t in enumerate(["fresh", "stale", "witty", "flat", "bold", "limp", "warm"])]


@pytest.fixture(scope="module")
def runner():
    return ICLRunner(tiny_model(n_layers=2, n_ctx=256, seed=5), "sst2", scoring=ScoringConfig(batch_size=3))


def naive(runner, demos, query):
    enc = PromptEncoder("sst2", runner.tokenizer, bos_token_id=runner.tokenizer.bos_token_id)
    return naive_label_logprobs(runner.model, [enc.build(demos, query)], enc.label_token_ids)[0].numpy()


def test_quality_matrix_equals_a_plain_loop(runner):
    res = quality_matrix(runner, POOL[:3], DEV, block_size=2, progress=False)
    expected = np.array([[naive(runner, [c], q) for q in DEV] for c in POOL[:3]])
    assert res.label_logprobs.shape == (3, 4, 2)
    np.testing.assert_allclose(res.label_logprobs, expected, atol=1e-4)
    acc = (expected.argmax(-1) == np.array([q.label for q in DEV])).astype(float)
    table = res.table("accuracy")
    assert list(table.columns) == ["example_id", "quality", "se", "n_dev"]
    np.testing.assert_allclose(table["quality"], acc.mean(1))
    # the default quality is the study's: the gold label's probability among the labels
    gold = np.array([q.label for q in DEV])
    p = np.exp(expected) / np.exp(expected).sum(-1, keepdims=True)
    assert res.metric == "gold_prob"
    np.testing.assert_allclose(res.table()["quality"], p[:, np.arange(len(DEV)), gold].mean(1), atol=1e-4)
    np.testing.assert_allclose(table["se"], acc.std(1, ddof=1) / 2)
    gold_p = res.table("gold_prob")["quality"].to_numpy()
    probs = label_distribution(expected.reshape(-1, 2)).reshape(3, 4, 2)
    np.testing.assert_allclose(gold_p, probs[:, np.arange(4), [q.label for q in DEV]].mean(1), atol=1e-5)
    np.testing.assert_allclose(res.label_probs().sum(-1), 1.0)
    assert res.provenance.model_name == "tiny-random" and res.provenance.bos_policy == "prepend BOS"


def test_checkpoint_resumes_and_refuses_other_settings(runner, tmp_path, monkeypatch):
    first = quality_matrix(runner, POOL[:5], DEV, block_size=2, checkpoint_dir=tmp_path, progress=False)
    blocks = sorted(p.name for p in tmp_path.glob("block_*.npz"))
    assert blocks == ["block_000000.npz", "block_000002.npz", "block_000004.npz"]
    (tmp_path / "block_000002.npz").unlink()  # as if the run had died during this block
    calls = []
    original = runner.label_logprobs
    monkeypatch.setattr(runner, "label_logprobs", lambda d, q: calls.append(d[0][0].id) or original(d, q))
    again = quality_matrix(runner, POOL[:5], DEV, block_size=2, checkpoint_dir=tmp_path, progress=False)
    assert calls == [POOL[2].id, POOL[3].id]
    np.testing.assert_array_equal(again.label_logprobs, first.label_logprobs)
    with pytest.raises(ProvenanceMismatchError, match="dev"):
        quality_matrix(runner, POOL[:5], DEV[:3], block_size=2, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ProvenanceMismatchError, match="block_size=2"):
        quality_matrix(runner, POOL[:5], DEV, block_size=3, checkpoint_dir=tmp_path, progress=False)


def test_quality_bad_input(runner):
    with pytest.raises(DataError, match="pool to estimate quality for is empty. Pass the candidate pool"):
        quality_matrix(runner, [], DEV, progress=False)
    with pytest.raises(DataError, match="No dev queries.*pass a non-empty dev subset"):
        quality_matrix(runner, POOL, [], progress=False)
    with pytest.raises(ConfigError, match="does not apply to classification"):
        quality_matrix(runner, POOL, DEV, metric="rouge_l", progress=False)


def test_generation_quality_and_evaluation():
    model = tiny_model(n_layers=1, n_ctx=256, seed=6)
    from mechsel.icl import GenerationConfig

    runner = ICLRunner(model, "e2e_nlg", generation=GenerationConfig(max_new_tokens=6, stop=("\n",)))
    mrs = [Example(id=i, inputs={"meaning_representation": f"name[N{i}]"}, references=(f"N{i} is a pub.", f"Pub N{i}.")) for i in range(3)]
    res = quality_matrix(runner, mrs[:2], mrs[1:], progress=False)
    assert res.texts.shape == (2, 2) and res.label_logprobs is None
    table = res.table()
    assert table["quality"].between(0, 1).all() and res.pair_scores("bleu").shape == (2, 2)
    ev = evaluate(runner, mrs, mrs[:1], n_boot=50)
    assert ev.metric == "bleu" and set(ev.scores) == {"bleu", "rouge_l"}
    direct = [g.text for g in runner.generate([mrs[:1]] * 3, mrs)]
    assert list(ev.predictions["prediction"]) == direct
    assert ev.scores["rouge_l"] == pytest.approx(rouge_l(direct, [m.references for m in mrs]))
    assert ev.scores["bleu"] == pytest.approx(bleu(direct, [m.references for m in mrs]))
    np.testing.assert_allclose(res.pair_scores("rouge_l")[0], rouge_l_scores(list(res.texts[0]), [m.references for m in mrs[1:]]))
    with pytest.raises(ConfigError, match="classification tasks only"):
        evaluate(runner, mrs, mrs[:1], calibrate=True)


def test_marginal_gain_equals_direct_computation(runner):
    table = marginal_gain(runner, POOL[:2], DEV, POOL[2:], k=2, seeds=[0, 1], metric="accuracy", progress=False)
    gold = np.array([q.label for q in DEV])
    acc = lambda demos: np.mean([naive(runner, demos, q).argmax() == g for q, g in zip(DEV, gold)])  # noqa: E731
    gains = np.empty((2, 2))
    for s in (0, 1):
        ctx = sample_demonstrations(POOL[2:], 2, seed=s)
        for i, c in enumerate(POOL[:2]):
            gains[i, s] = acc([*ctx, c]) - acc(ctx)
    np.testing.assert_allclose(table["gain"], gains.mean(1))
    np.testing.assert_allclose(table["se"], gains.std(1, ddof=1) / np.sqrt(2))
    inside = marginal_gain(runner, POOL[2:4], DEV, POOL[2:4], k=1, seeds=[0, 1, 2, 3], progress=False)
    assert (inside["n_seeds"] < 4).all()  # a candidate already in the context is skipped for that seed
    assert list(table.columns) == ["example_id", "gain", "se", "n_seeds"] and (table["n_seeds"] == 2).all()


def test_evaluate_fixed_mapped_and_retrieved(runner):
    demos = POOL[:2]
    fixed = evaluate(runner, TEST, demos, n_boot=200)
    expected = np.array([naive(runner, demos, q) for q in TEST]).argmax(1)
    assert list(fixed.predictions["pred"]) == list(expected)
    assert fixed.score == pytest.approx(np.mean(expected == [q.label for q in TEST]))
    assert fixed.ci[0] <= fixed.score <= fixed.ci[1] and set(fixed.scores) == {"accuracy", "macro_f1"}
    assert (fixed.predictions["n_demos"] == 2).all() and fixed.predictions["demo_ids"][0] == [0, 1]
    mapped = evaluate(runner, TEST, {q.id: demos for q in TEST}, n_boot=50)
    retrieved = evaluate(runner, TEST, lambda q: demos, n_boot=50)
    for other in (mapped, retrieved):
        np.testing.assert_allclose(other.predictions["p_positive"], fixed.predictions["p_positive"], atol=1e-5)
    rev = evaluate(runner, TEST, demos, order="reverse", n_boot=50)
    assert rev.predictions["demo_ids"][0] == [1, 0]
    with pytest.raises(DataError, match="No demonstrations for queries"):
        evaluate(runner, TEST, {TEST[0].id: demos})
    with pytest.raises(ConfigError, match="sort the demonstrations yourself"):
        evaluate(runner, TEST, demos, order="ascending")


def test_evaluate_with_calibration_matches_manual(runner):
    from mechsel.icl import CONTENT_FREE_INPUTS, calibrate
    from mechsel.tasks import content_free_example

    demos = POOL[:2]
    res = evaluate(runner, TEST, demos, calibrate=True, n_boot=50)
    raw = label_distribution(np.array([naive(runner, demos, q) for q in TEST]))
    p_cf = label_distribution(np.array([naive(runner, demos, content_free_example("sst2", t)) for t in CONTENT_FREE_INPUTS])).mean(0)
    manual = calibrate(raw, p_cf)
    np.testing.assert_allclose(res.predictions[["p_negative", "p_positive"]].to_numpy(), manual, atol=1e-4)
    assert list(res.predictions["pred_uncalibrated"]) == list(raw.argmax(1))


def test_label_probabilities_and_confidence_fn(runner):
    probs = label_probabilities(runner, POOL, POOL[:1])
    expected = label_distribution(np.array([naive(runner, POOL[:1], e) for e in POOL]))
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.2, 0.8]])
    conf = make_confidence_fn(runner, POOL, k=1, embeddings=emb)([0, 1])
    # with k=1 each example is prompted with its most similar selected example (never itself)
    nearest = [1, 0, 0, 1, 0, 1]
    manual = [label_distribution(naive(runner, [POOL[j]], e)[None])[0].max() for e, j in zip(POOL, nearest)]
    np.testing.assert_allclose(conf, manual, atol=1e-5)
    plain = make_confidence_fn(runner, POOL, k=2)([3, 1])
    assert plain.shape == (6,) and ((plain >= 0.5) & (plain <= 1)).all()
    # the reference code's confidence: the predicted option's full-vocabulary log-prob per token
    ref = make_confidence_fn(runner, POOL, k=1, embeddings=emb, kind="reference")([0, 1])
    n_tok = np.array([len(ids) for ids in runner.encoder.label_token_ids], dtype=float)
    by_hand = [(np.asarray(naive(runner, [POOL[j]], e), dtype=float) / n_tok).max() for e, j in zip(POOL, nearest)]
    np.testing.assert_allclose(ref, by_hand, atol=1e-5)
    assert (ref < 0).all()
    with pytest.raises(ConfigError, match="kind"):
        make_confidence_fn(runner, POOL, kind="metaicl")
    with pytest.raises(DataError, match="at least one selected"):
        make_confidence_fn(runner, POOL)([])
    with pytest.raises(DataError, match="pool is empty"):
        make_confidence_fn(runner, [])
