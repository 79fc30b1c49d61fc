"""IDEAL: graph weights, greedy picks against a naive cascade implementation, and the Monte-Carlo influence estimate."""

from __future__ import annotations

import numpy as np
import pytest

from mechsel.selectors import Pool, get_selector
from mechsel.selectors.graphs import unit_rows
from mechsel.selectors.ideal import ReachIndex, influence_graph, sample_live_edges


def _graph_brute(e: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    x = e.astype(np.float64) - e.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    nbrs = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    w = np.clip(np.take_along_axis(sim, nbrs, axis=1), 0, None)
    return nbrs, w / w.sum(axis=1, keepdims=True)


def _reach(nbrs, live_r, seeds) -> set[int]:
    seen, stack = set(seeds), list(seeds)
    while stack:
        v = stack.pop()
        for j, w in enumerate(nbrs[v]):
            if live_r[v, j] and int(w) not in seen:
                seen.add(int(w))
                stack.append(int(w))
    return seen


def test_graph_weights_match_brute_force():
    e = np.random.default_rng(0).normal(size=(25, 4)).astype(np.float32)
    nbrs, w = influence_graph(unit_rows(e, center=True), 4)
    nb, wb = _graph_brute(e, 4)
    assert np.array_equal(nbrs, nb)
    assert np.allclose(w, wb, atol=1e-6) and np.allclose(w.sum(axis=1), 1.0)


@pytest.mark.parametrize("seed", [0, 5])
def test_greedy_matches_naive_cascades_on_the_same_live_edges(seed):
    n, kk, runs, k = 30, 3, 6, 5
    e = np.random.default_rng(seed + 100).normal(size=(n, 4)).astype(np.float32)
    pool = Pool.from_texts([f"t{i}" for i in range(n)], embeddings=e)
    got = get_selector("ideal", n_neighbors=kk, runs=runs).select(pool, k, seed=seed)
    nbrs, w = _graph_brute(e, kk)
    live = np.random.default_rng(seed).random((runs, n, kk)) < w  # the selector's one draw

    def spread_sum(seeds):
        return sum(len(_reach(nbrs, live[r], seeds)) for r in range(runs))

    chosen: list[int] = []
    gains = []
    for _ in range(k):
        base = spread_sum(chosen)
        best = max((c for c in range(n) if c not in chosen), key=lambda c: (spread_sum(chosen + [c]) - base, -c))
        gains.append((spread_sum(chosen + [best]) - base) / runs)
        chosen.append(best)
    assert list(got.indices) == chosen
    assert got.scores == pytest.approx(gains)
    assert got.provenance["influence"] == pytest.approx(spread_sum(chosen) / runs)


def test_live_edge_estimate_matches_independent_cascade_simulation():
    n, kk = 20, 3
    e = np.random.default_rng(2).normal(size=(n, 3)).astype(np.float32)
    nbrs, w = influence_graph(unit_rows(e, center=True), kk)
    seeds = [0, 7]
    runs = 1200
    index = ReachIndex(nbrs, sample_live_edges(w, runs, np.random.default_rng(1)))
    estimate = index.spread(seeds)

    rng = np.random.default_rng(99)  # an independent cascade: each newly active node tries each out-edge once
    sizes = []
    for _ in range(runs):
        active, frontier = set(seeds), list(seeds)
        while frontier:
            nxt = []
            for v in frontier:
                for j in range(kk):
                    u = int(nbrs[v, j])
                    if u not in active and rng.random() < w[v, j]:
                        active.add(u)
                        nxt.append(u)
            frontier = nxt
        sizes.append(len(active))
    se = np.std(sizes) / np.sqrt(runs) * np.sqrt(2)
    assert abs(estimate - np.mean(sizes)) < 4 * se + 1e-9


def test_reach_index_sizes_match_bfs():
    n, kk = 40, 4
    e = np.random.default_rng(3).normal(size=(n, 5)).astype(np.float32)
    nbrs, w = influence_graph(unit_rows(e, center=True), kk)
    live = sample_live_edges(w, 3, np.random.default_rng(0))
    index = ReachIndex(nbrs, live)
    want = [sum(len(_reach(nbrs, live[r], [v])) for r in range(3)) for v in range(n)]
    assert index.sizes().tolist() == want


def test_first_pick_is_by_influence_not_node_zero():
    # node 9 sits in the middle of a tight cluster and reaches most of it; node 0 is an outlier
    rng = np.random.default_rng(0)
    e = np.concatenate([[[10.0, -10.0]], rng.normal(scale=0.1, size=(9, 2)) + [1.0, 1.0]]).astype(np.float32)
    pool = Pool.from_texts([f"t{i}" for i in range(10)], embeddings=e)
    got = get_selector("ideal", n_neighbors=3, runs=20).select(pool, 1, seed=0)
    assert got.indices[0] != 0


def test_reach_index_uses_lists_and_bitsets():
    n, kk = 150, 5  # 3 words: sets longer than 6 nodes are stored as bitsets
    e = np.random.default_rng(4).normal(size=(n, 4)).astype(np.float32)
    nbrs, w = influence_graph(unit_rows(e, center=True), kk)
    live = sample_live_edges(w * 1.6, 2, np.random.default_rng(0))  # supercritical: some large sets
    index = ReachIndex(nbrs, live)
    assert {0, 1} == set(np.unique(index.kind).tolist())
    want = [sum(len(_reach(nbrs, live[r], [v])) for r in range(2)) for v in range(n)]
    assert index.sizes().tolist() == want
    covered = index.new_covered()
    index.cover(3, covered)
    for v in (0, 7, 42):
        expect = sum(len(_reach(nbrs, live[r], [v]) - _reach(nbrs, live[r], [3])) for r in range(2))
        assert index.gain(v, covered) == expect
