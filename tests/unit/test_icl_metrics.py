"""Metrics against scikit-learn, sacrebleu and rouge-score; bootstrap; contextual calibration by hand."""

from __future__ import annotations

import numpy as np
import pytest
import sacrebleu
from rouge_score import rouge_scorer
from sklearn.metrics import f1_score

from mechsel.errors import DataError
from mechsel.icl import accuracy, bleu, bootstrap_ci, calibrate, macro_f1, rouge_l, rouge_l_scores, sentence_bleu
from mechsel.icl.metrics import bleu_from_statistics, bleu_statistics

HYPS = [
    "The Eagle is a coffee shop near Burger King.",
    "Aromi is a family friendly pub in the city centre.",
    "Cotto serves cheap Italian food.",
]
REFS = [
    ["The Eagle coffee shop is near Burger King.", "Near Burger King is The Eagle, a coffee shop.", "The Eagle is a coffee shop."],
    ["Aromi is a pub in the city centre that is family friendly."],
    ["Cotto is a cheap Italian restaurant.", "Cheap Italian food is served at Cotto."],
]


def test_bleu_equals_sacrebleu_with_variable_reference_counts():
    streams = [[r[i] if i < len(r) else None for r in REFS] for i in range(3)]
    assert bleu(HYPS, REFS) == pytest.approx(sacrebleu.corpus_bleu(HYPS, streams).score, abs=1e-9)
    # single reference each: the plain sacrebleu call
    single = [[r[0]] for r in REFS]
    assert bleu(HYPS, single) == pytest.approx(sacrebleu.corpus_bleu(HYPS, [[r[0] for r in REFS]]).score, abs=1e-9)
    assert bleu(HYPS, REFS) > bleu(HYPS, single)  # extra references can only add matches here
    assert bleu_from_statistics(bleu_statistics(HYPS, REFS)) == pytest.approx(bleu(HYPS, REFS), abs=1e-9)
    sub = bleu_statistics(HYPS, REFS)[[0, 2]]
    assert bleu_from_statistics(sub) == pytest.approx(bleu([HYPS[0], HYPS[2]], [REFS[0], REFS[2]]), abs=1e-9)
    assert sentence_bleu(HYPS[2], REFS[2]) == pytest.approx(sacrebleu.sentence_bleu(HYPS[2], REFS[2]).score, abs=1e-9)


def lcs(a, b):
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_rouge_l_equals_rouge_score_and_an_lcs_by_hand():
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    expected = [max(scorer.score(r, h)["rougeL"].fmeasure for r in refs) for h, refs in zip(HYPS, REFS)]
    np.testing.assert_allclose(rouge_l_scores(HYPS, REFS), expected, atol=1e-12)
    assert rouge_l(HYPS, REFS) == pytest.approx(np.mean(expected))
    # an independent LCS F-measure on words without punctuation or stemming differences
    h, r = "the cat sat on the mat", "the cat lay on a mat"
    m = lcs(h.split(), r.split())
    f = 2 * (m / 6) * (m / 6) / ((m / 6) + (m / 6))
    assert rouge_l([h], [[r]]) == pytest.approx(f)


def test_reference_lists_are_checked():
    with pytest.raises(DataError, match="wrap it"):
        bleu(["a"], ["a"])
    with pytest.raises(DataError, match="one list of references per hypothesis"):
        rouge_l(["a", "b"], [["a"]])
    with pytest.raises(DataError, match="no reference"):
        bleu(["a"], [[]])


def test_accuracy_and_macro_f1_against_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        gold = rng.integers(0, 4, size=30)
        pred = np.where(rng.random(30) < 0.5, gold, rng.integers(0, 4, size=30))
        assert accuracy(pred, gold) == pytest.approx(np.mean(pred == gold))
        assert macro_f1(pred, gold) == pytest.approx(f1_score(gold, pred, average="macro"))
        assert macro_f1(pred, gold, labels=[0, 1, 2, 3]) == pytest.approx(
            f1_score(gold, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
        )
    with pytest.raises(DataError, match="same length"):
        accuracy([0, 1], [0])


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(1)
    small, large = rng.random(30) < 0.7, rng.random(3000) < 0.7
    lo_s, hi_s = bootstrap_ci(lambda idx: small[idx].mean(), len(small), seed=0)
    lo_l, hi_l = bootstrap_ci(lambda idx: large[idx].mean(), len(large), seed=0)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    # close to the normal approximation for a proportion
    se = np.sqrt(large.mean() * (1 - large.mean()) / len(large))
    assert hi_l - lo_l == pytest.approx(2 * 1.96 * se, rel=0.15)
    assert bootstrap_ci(lambda idx: small[idx].mean(), 30, seed=5) == bootstrap_ci(lambda idx: small[idx].mean(), 30, seed=5)


def test_contextual_calibration_by_hand():
    # p = [0.6, 0.4], p_cf = [0.8, 0.2]: W p = [0.75, 2.0] -> [0.75/2.75, 2/2.75]
    out = calibrate(np.array([[0.6, 0.4], [0.9, 0.1]]), np.array([0.8, 0.2]))
    np.testing.assert_allclose(out, [[0.75 / 2.75, 2.0 / 2.75], [1.125 / 1.625, 0.5 / 1.625]])
    assert out[0].argmax() == 1  # the prediction flips once the bias towards label 0 is removed
    # per-row content-free estimates
    out = calibrate(np.array([[0.5, 0.5], [0.5, 0.5]]), np.array([[0.25, 0.75], [0.5, 0.5]]))
    np.testing.assert_allclose(out, [[0.75, 0.25], [0.5, 0.5]])
    with pytest.raises(DataError, match="must have shape"):
        calibrate(np.ones((2, 2)) / 2, np.ones(3) / 3)
