"""Retrieval: KATE kNN and BM25 against hand-written implementations; duplicates, budgets, ordering."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from mechsel.errors import ConfigError, DataError
from mechsel.selectors import Pool, Queries, get_selector
from mechsel.selectors.retrieval import bm25_tokenize

WORDS = ["good", "bad", "film", "plot", "actor", "boring", "great", "music", "long", "short"]


@pytest.fixture
def pool() -> Pool:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 7)))) + f" x{i}" for i in range(30)]
    return Pool.from_texts(texts, embeddings=rng.normal(size=(30, 6)).astype(np.float32))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_knn_most_similar_last(pool):
    annotated = list(range(0, 30, 2))
    rng = np.random.default_rng(1)
    q = rng.normal(size=(3, 6)).astype(np.float32)
    out = get_selector("knn").retrieve(pool, annotated, q, 5, seed=0)
    for qi, sel in enumerate(out):
        ranked = sorted(annotated, key=lambda i: (-_cos(pool.embeddings[i], q[qi]), i))[:5]
        assert list(sel.indices) == ranked[::-1]
        assert list(sel.scores) == pytest.approx([_cos(pool.embeddings[i], q[qi]) for i in ranked[::-1]], abs=1e-5)


def test_knn_center_uses_pool_mean(pool):
    annotated = list(range(30))
    q = pool.embeddings[:2] * 0.5 + 0.1
    out = get_selector("knn", center=True).retrieve(pool, annotated, q, 3, seed=0)
    mu = pool.embeddings.mean(axis=0)
    for qi, sel in enumerate(out):
        ranked = sorted(annotated, key=lambda i: (-_cos(pool.embeddings[i] - mu, q[qi] - mu), i))[:3]
        assert list(sel.indices) == ranked[::-1]


def test_knn_skips_exact_duplicates_only(pool):
    annotated = list(range(10))
    queries = Queries(texts=[pool.texts[4]], embeddings=pool.embeddings[[4]])
    (sel,) = get_selector("knn").retrieve(pool, annotated, queries, 3, seed=0)
    assert 4 not in sel.indices and sel.provenance["skipped_duplicates"] == 1
    (kept,) = get_selector("knn", skip_duplicates=False).retrieve(pool, annotated, queries, 3, seed=0)
    assert kept.indices[-1] == 4  # itself, most similar, placed last


def test_token_budget_stops_like_the_reference(pool):
    length = lambda t: len(t.split())  # noqa: E731
    annotated = list(range(30))
    q = Queries(texts=["good film"], embeddings=pool.embeddings[[0]] + 0.01)
    (sel,) = get_selector("knn", max_tokens=12, length_fn=length).retrieve(pool, annotated, q, 10, seed=0)
    ranked = sorted(annotated, key=lambda i: (-_cos(pool.embeddings[i], q.embeddings[0]), i))
    used, want = 2, []
    for i in ranked:
        if len(want) == 10 or used + length(pool.texts[i]) > 12:
            break
        used += length(pool.texts[i])
        want.append(i)
    assert list(sel.indices) == want[::-1] and len(want) < 10
    (short,) = get_selector("knn", max_example_tokens=4, length_fn=length).retrieve(pool, annotated, q, 5, seed=0)
    assert all(length(pool.texts[i]) <= 4 for i in short.indices)
    assert list(short.indices) == [i for i in ranked if length(pool.texts[i]) <= 4][:5][::-1]


def test_budget_needs_length_fn_and_query_texts(pool):
    with pytest.raises(ConfigError, match="length_fn"):
        get_selector("knn", max_tokens=10)
    with pytest.raises(DataError, match="query texts"):
        get_selector("knn", max_tokens=10, length_fn=len).retrieve(pool, [0, 1], pool.embeddings[:1], 1, seed=0)
    with pytest.raises(DataError, match="query embeddings"):
        get_selector("knn").retrieve(pool, [0, 1], ["good"], 1, seed=0)
    with pytest.raises(DataError, match="dimension"):
        get_selector("knn").retrieve(pool, [0, 1], np.zeros((1, 3), dtype=np.float32), 1, seed=0)


def bm25_scores(corpus: list[list[str]], query: list[str], k1=1.5, b=0.75, eps=0.25) -> list[float]:
    """Okapi BM25 with the ATIRE-style idf floor of rank_bm25, written out."""
    n = len(corpus)
    avgdl = sum(len(d) for d in corpus) / n
    df = Counter(w for d in corpus for w in set(d))
    idf = {w: math.log(n - c + 0.5) - math.log(c + 0.5) for w, c in df.items()}
    floor = eps * sum(idf.values()) / len(idf)
    idf = {w: (v if v >= 0 else floor) for w, v in idf.items()}
    out = []
    for d in corpus:
        tf = Counter(d)
        out.append(sum(idf.get(w, 0.0) * tf[w] * (k1 + 1) / (tf[w] + k1 * (1 - b + b * len(d) / avgdl)) for w in query))
    return out


def test_bm25_matches_the_formula(pool):
    annotated = list(range(1, 30, 2))
    queries = ["Good film, great MUSIC", "boring plot long long"]
    out = get_selector("bm25").retrieve(pool, annotated, queries, 4, seed=0)
    corpus = [bm25_tokenize(pool.texts[i]) for i in annotated]
    for text, sel in zip(queries, out):
        s = bm25_scores(corpus, bm25_tokenize(text))
        ranked = sorted(range(len(annotated)), key=lambda j: (-s[j], annotated[j]))[:4]
        assert list(sel.indices) == [annotated[j] for j in ranked][::-1]
        assert list(sel.scores) == pytest.approx([s[j] for j in ranked][::-1])


def test_bm25_needs_texts(pool):
    with pytest.raises(DataError, match="query texts"):
        get_selector("bm25").retrieve(pool, [0, 1], pool.embeddings[:1], 1, seed=0)


def test_random_retrieval_is_seeded_per_query(pool):
    r = get_selector("random")
    a = r.retrieve(pool, list(range(20)), ["q1", "q2"], 4, seed=1)
    b = r.retrieve(pool, list(range(20)), ["q2"], 4, seed=1)
    assert len({s.indices for s in r.retrieve(pool, list(range(20)), ["q"] * 6, 4, seed=1)}) > 1
    assert b[0].indices == a[0].indices  # query 0 of each call uses default_rng([seed, 0])
