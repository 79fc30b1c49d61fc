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


def _exact_scores(voters, selected: list[int], n: int, rho: int = 10, discounted: list[int] | None = None) -> dict[int, Fraction]:
    """Exact scores after ``selected``; ``c(v)`` counts only the picks in ``discounted`` (default: all)."""
    times = defaultdict(int)
    for s in selected if discounted is None else discounted:
        for v in voters[s]:
            times[v] += 1
    return {
        u: sum((Fraction(1, rho ** times[v]) for v in voters[u] if v not in selected), Fraction(0)) for u in range(n) if u not in selected
    }


def _assert_greedy(voters, picks, scores, n, candidates_per_step=None, frozen_after=None):
    """Each pick is the exact argmax; with ``frozen_after=m``, picks after the m-th leave ``c(v)`` alone."""
    for t, j in enumerate(picks):
        discounted = None if frozen_after is None else picks[: min(t, frozen_after)]
        exact = _exact_scores(voters, picks[:t], n, discounted=discounted)
        step = None if candidates_per_step is None else candidates_per_step[t]
        cand = exact if step is None else {u: exact[u] for u in step}
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

    # stage1="paper" (k // 10): the default is now the reference code's 10 stage-1 picks, which at
    # k = 10 would leave no stage 2 to check (the old default, k // 10, was the bug).
    # neighbor_fraction=None: exactly 6 neighbours (scaled to the pool, 40 examples would get 5)
    sel = get_selector("votek", n_neighbors=6, neighbor_fraction=None, stage1="paper", confidence_fn=confidence_fn)
    got = sel.select(pool, k, seed=0)
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
    sel = get_selector("votek", stage1="paper", stage1_ratio=4, confidence_fn=lambda s: seen.append(len(s)) or rng.random(50))
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
    # k = 12: at k <= 10 the default (reference-code) stage 1 fills the budget and the model is never asked
    with pytest.raises(DataError, match=r"shape \(20,\)"):
        get_selector("votek", confidence_fn=lambda s: np.zeros(3)).select(pool, 12, seed=0)
    with pytest.raises(ConfigError, match="rho must be > 1"):
        get_selector("fast_votek", rho=1.0)


def _random_pool(n: int, seed: int) -> tuple[np.ndarray, Pool]:
    e = np.random.default_rng(seed).normal(size=(n, 4)).astype(np.float32)
    return e, Pool.from_texts([f"t{i}" for i in range(n)], embeddings=e)


def test_votek_stage1_is_the_reference_codes_batch_of_10():
    # The reference code passes its batch size (10) as stage 1's size: k = 10 is fast vote-k alone,
    # k = 18 is 10 fast vote-k picks + 8 bucket picks. The paper's k // 10 is stage1="paper" (18 -> 1 + 17).
    n = 60
    _, pool = _random_pool(n, 5)
    conf = np.random.default_rng(6).random(n)
    fast = get_selector("fast_votek").select(pool, 10, seed=2)
    calls = []
    at10 = get_selector("votek", confidence_fn=lambda s: calls.append(list(s)) or conf).select(pool, 10, seed=2)
    assert calls == [] and at10.indices == fast.indices and at10.scores == fast.scores
    at18 = get_selector("votek", confidence_fn=lambda s: calls.append(list(s)) or conf).select(pool, 18, seed=2)
    assert calls == [list(fast.indices)] and at18.indices[:10] == fast.indices
    assert at18.provenance["stage1"] == list(fast.indices) and at18.provenance["bucket_width"] == int(n * 0.9 / 8)
    calls.clear()
    paper = get_selector("votek", stage1="paper", confidence_fn=lambda s: calls.append(list(s)) or conf).select(pool, 18, seed=2)
    assert calls == [list(paper.indices[:1])] and paper.indices[:1] == fast.indices[:1]
    with pytest.raises(ConfigError, match="'reference_code'"):
        get_selector("votek", stage1="k/10")


def test_vote_graph_discount_switch_by_hand():
    # 0,1 <- {3,4,5}; 2 <- {6,7}; 5 <- {6,7}; 6,7 <- {0,1}; 3,4 <- {2}. First pick: 0 (ties 1 at 3 votes, lower rank).
    nbrs = np.array([[6, 7], [6, 7], [3, 4], [0, 1], [0, 1], [0, 1], [2, 5], [2, 5]])
    updated = VoteGraph(nbrs, rho=10)
    # after 0, c(3)=c(4)=c(5)=1: s(1) = 3 * 0.1, s(2) = s(5) = 2, s(6) = s(7) = 1 -> 2 (rank before 5);
    # after 2, c(6)=c(7)=1: s(1) = 0.3, s(5) = 0.2, s(6) = s(7) = 1 (voter 1, c=0) -> 6
    assert updated.greedy(3) == ([0, 2, 6], pytest.approx([3.0, 2.0, 1.0]))
    frozen = VoteGraph(nbrs, rho=10)
    frozen.greedy(1)  # stage 1 discounts as usual
    # picking 2 leaves c(6) = c(7) = 0, so 5 keeps s(5) = 2 and is next
    assert frozen.greedy(2, update_discount=False) == ([2, 5], pytest.approx([2.0, 2.0]))
    never = VoteGraph(nbrs, rho=10)
    never.add(0, update_discount=False)  # 0 stops voting, c untouched: s(1) = 3 beats s(2) = 2
    assert never.greedy(1) == ([1], [3.0])
    ranked = VoteGraph(nbrs, rho=10, tie_rank=np.array([1, 0, 2, 3, 4, 5, 6, 7]))
    assert ranked.greedy(1) == ([1], [3.0])  # the 0/1 tie goes to the lower rank


def test_votek_reference_compat_never_updates_the_stage2_discount():
    n, k, m1 = 40, 10, 3
    e, pool = _random_pool(n, 8)
    conf = np.random.default_rng(9).random(n)
    params = dict(n_neighbors=6, neighbor_fraction=None, stage1_size=m1, confidence_fn=lambda s: conf)
    compat = get_selector("votek", reference_compat=True, **params).select(pool, k, seed=0)
    paper = get_selector("votek", **params).select(pool, k, seed=0)
    voters = _voters(e, 6)
    picks = list(compat.indices)
    order = sorted((u for u in range(n) if u not in picks[:m1]), key=lambda u: (conf[u], u))
    width = int(n * 0.9 / (k - m1))
    buckets = [order[t * width : (t + 1) * width] for t in range(k - m1)]
    steps = [None] * m1 + buckets  # stage 1: every unpicked example
    _assert_greedy(voters, picks, compat.scores, n, candidates_per_step=steps, frozen_after=m1)
    _assert_greedy(voters, list(paper.indices), paper.scores, n, candidates_per_step=steps)
    assert compat.indices[:m1] == paper.indices[:m1] and compat.indices != paper.indices
