"""Vote-k: the score recursion worked by hand, fast vote-k and two-stage vote-k against exact re-computations."""

from __future__ import annotations

from collections import defaultdict
from fractions import Fraction

import numpy as np
import pytest

from mechsel.errors import ConfigError, DataError
from mechsel.selectors import Pool, get_selector
from mechsel.selectors.votek import VoteGraph


def test_score_recursion_by_hand():
    # 0 -> {1, 2}, 1 -> {0, 2}, 2 -> {1, 3}, 3 -> {2, 1}; voters: 0:{1}, 1:{0,2,3}, 2:{0,1,3}, 3:{2}
    g = VoteGraph(np.array([[1, 2], [0, 2], [1, 3], [2, 1]]), rho=10)
    assert g.scores().tolist() == [1, 3, 3, 1]
    picks, scores = g.greedy(3)
    # pick 1 (tie with 2, lowest index); then c(0)=c(2)=c(3)=1: s(2) = 10^-1 [voter 0] + 10^-1 [voter 3] = 0.2,
    # s(3) = 10^-1 [voter 2], s(0) = 0 (its only voter, 1, is picked); pick 2; then s(0) = s(3) = 0 -> pick 0.
    assert picks == [1, 2, 0]
    assert scores == pytest.approx([3.0, 0.2, 0.0])


def _unit(e: np.ndarray) -> np.ndarray:
    x = e.astype(np.float64) - e.mean(axis=0)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _voters(e: np.ndarray, k: int) -> dict[int, list[int]]:
    sim = _unit(e) @ _unit(e).T
    voters = defaultdict(list)
    for v in range(len(e)):
        s = sim[v].copy()
        s[v] = -np.inf
        for u in np.argsort(-s, kind="stable")[:k]:
            voters[int(u)].append(v)
    return voters


def _exact_scores(voters, selected: list[int], n: int, rho: int = 10) -> dict[int, Fraction]:
    times = defaultdict(int)
    for s in selected:
        for v in voters[s]:
            times[v] += 1
    return {u: sum((Fraction(1, rho ** times[v]) for v in voters[u] if v not in selected), Fraction(0)) for u in range(n) if u not in selected}


def _assert_greedy(voters, picks, scores, n, candidates_per_step=None):
    for t, j in enumerate(picks):
        exact = _exact_scores(voters, picks[:t], n)
        cand = exact if candidates_per_step is None else {u: exact[u] for u in candidates_per_step[t]}
        assert exact[j] == max(cand.values()), (t, j)
        assert float(exact[j]) == pytest.approx(scores[t])


@pytest.mark.parametrize("seed", [0, 1])
def test_fast_votek_is_the_greedy_vote_k_recursion(seed):
    rng = np.random.default_rng(seed)
    e = rng.normal(size=(30, 4)).astype(np.float32)
    pool = Pool.from_texts([f"t{i}" for i in range(30)], embeddings=e)
    got = get_selector("fast_votek", n_neighbors=5).select(pool, 8, seed=0)
    _assert_greedy(_voters(e, 5), list(got.indices), got.scores, 30)


def test_fast_votek_clips_neighbours_on_small_pools():
    e = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    got = get_selector("fast_votek").select(Pool.from_texts(list("abcdef"), embeddings=e), 2, seed=0)
    assert got.provenance["n_neighbors_used"] == 5


def test_votek_two_stages_follow_the_reference_buckets():
    rng = np.random.default_rng(3)
    n, k = 40, 10
    e = rng.normal(size=(n, 4)).astype(np.float32)
    pool = Pool.from_texts([f"t{i}" for i in range(n)], embeddings=e)
    conf = rng.random(n)
    calls = []

    def confidence_fn(selected):
        calls.append(list(selected))
        return conf

    got = get_selector("votek", n_neighbors=6, confidence_fn=confidence_fn).select(pool, k, seed=0)
    picks = list(got.indices)
    voters = _voters(e, 6)
    assert calls == [picks[:1]]  # stage 1: k // 10 = 1 pick, then one model round
    _assert_greedy(voters, picks[:1], got.scores[:1], n)
    rest = [u for u in range(n) if u != picks[0]]
    order = sorted(rest, key=lambda u: (conf[u], u))  # least confident first
    width = int(n * 0.9 / (k - 1))
    buckets = [order[t * width : (t + 1) * width] for t in range(k - 1)]
    assert all(p in b for p, b in zip(picks[1:], buckets))
    _assert_greedy(voters, picks, got.scores, n, candidates_per_step=[list(range(n))] + buckets)
    most_confident = set(order[(k - 1) * width :])
    assert not most_confident & set(picks)


def test_votek_stage1_size_and_ratio():
    rng = np.random.default_rng(4)
    e = rng.normal(size=(50, 4)).astype(np.float32)
    pool = Pool.from_texts([f"t{i}" for i in range(50)], embeddings=e)
    seen = []
    sel = get_selector("votek", stage1_ratio=4, confidence_fn=lambda s: seen.append(len(s)) or rng.random(50))
    sel.select(pool, 12, seed=0)
    assert seen == [3]
    seen.clear()
    get_selector("votek", stage1_size=12, confidence_fn=lambda s: seen.append(1)).select(pool, 12, seed=0)
    assert seen == []  # stage 1 already filled the budget


def test_votek_needs_confidence_fn_and_checks_it():
    e = np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)
    pool = Pool.from_texts([f"t{i}" for i in range(20)], embeddings=e)
    with pytest.raises(ConfigError, match="confidence_fn"):
        get_selector("votek").select(pool, 10, seed=0)
    with pytest.raises(DataError, match=r"shape \(20,\)"):
        get_selector("votek", confidence_fn=lambda s: np.zeros(3)).select(pool, 10, seed=0)
    with pytest.raises(ConfigError, match="rho must be > 1"):
        get_selector("fast_votek", rho=1.0)
