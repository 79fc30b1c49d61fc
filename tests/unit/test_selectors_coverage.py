"""diversity, kmeans, facility location and Sub-SA against brute-force implementations on dense matrices."""

from __future__ import annotations

import numpy as np
import pytest

from mechsel.selectors import Pool, get_selector
from mechsel.selectors.graphs import knn, unit_rows


def _pool(n: int = 12, d: int = 5, seed: int = 0) -> Pool:
    rng = np.random.default_rng(seed)
    return Pool.from_texts([f"t{i}" for i in range(n)], embeddings=rng.normal(size=(n, d)).astype(np.float32))


def _cos(e: np.ndarray, center: bool) -> np.ndarray:
    x = e.astype(np.float64)
    if center:
        x = x - x.mean(axis=0)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


def fl_value(sim: np.ndarray, chosen: list[int]) -> float:
    return float(sum(max([-1.0] + [sim[i, j] for j in chosen]) for i in range(len(sim))))


def assert_greedy_facility_location(sim: np.ndarray, picks: list[int], scores, tol: float = 1e-5) -> None:
    """Each pick has the largest brute-force marginal gain given the picks before it (ties within tol)."""
    for t, j in enumerate(picks):
        base = fl_value(sim, picks[:t])
        gains = {c: fl_value(sim, picks[:t] + [c]) - base for c in range(len(sim)) if c not in picks[:t]}
        assert gains[j] >= max(gains.values()) - tol, (t, j, gains)
        assert scores[t] == pytest.approx(gains[j], abs=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("center", [True, False])
def test_facility_location_is_greedy_by_brute_force(seed, center):
    pool = _pool(seed=seed)
    got = get_selector("facility_location", center=center).select(pool, 6, seed=0)
    assert_greedy_facility_location(_cos(pool.embeddings, center), list(got.indices), got.scores)


def test_lazy_facility_location_is_greedy_on_larger_pool():
    pool = _pool(n=60, d=6, seed=5)
    got = get_selector("facility_location", block=7).select(pool, 8, seed=0)
    assert_greedy_facility_location(_cos(pool.embeddings, True), list(got.indices), got.scores)


@pytest.mark.parametrize("lam", [1.0, 3.0])
def test_sub_sa_matches_graph_cut_brute_force(lam):
    pool = _pool(seed=3)
    sim = _cos(pool.embeddings, True)

    def f(s):  # graph cut objective: λ Σ_{i∈V, j∈S} s_ij − Σ_{i,j∈S} s_ij
        return lam * sim[:, s].sum() - sim[np.ix_(s, s)].sum()

    chosen: list[int] = []
    for _ in range(4):
        # gain differs from f(S+j) - f(S) only by the constant s_jj = 1, so argmax is the same
        chosen.append(max((j for j in range(12) if j not in chosen), key=lambda j: (f(chosen + [j]) - f(chosen), -j)))
    got = get_selector("sub_sa", lam=lam).select(pool, 4, seed=0)
    assert list(got.indices) == chosen
    expected_first_gain = lam * sim[:, chosen[0]].sum()
    assert got.scores[0] == pytest.approx(expected_first_gain, rel=1e-5)


def test_diversity_matches_farthest_first():
    pool = _pool(seed=4)
    sim = _cos(pool.embeddings, True)
    got = get_selector("diversity").select(pool, 5, seed=11)
    first = int(np.random.default_rng(11).integers(12))
    chosen = [first]
    for _ in range(4):
        chosen.append(min((j for j in range(12) if j not in chosen), key=lambda j: (sim[j, chosen].sum(), j)))
    assert list(got.indices) == chosen


def test_kmeans_picks_nearest_member_of_each_cluster():
    rng = np.random.default_rng(0)
    centers = np.array([[5, 0, 0], [0, 5, 0], [0, 0, 5]], dtype=np.float32)
    e = np.concatenate([c + 0.3 * rng.normal(size=(6, 3)) for c in centers]).astype(np.float32)
    pool = Pool.from_texts([f"t{i}" for i in range(18)], embeddings=e)
    got = get_selector("kmeans", center=False, n_init=5).select(pool, 3, seed=0)
    groups = {i // 6 for i in got.indices}
    assert groups == {0, 1, 2}
    u = unit_rows(e, center=False)
    for i in got.indices:
        members = [j for j in range(18) if j // 6 == i // 6]
        centroid = u[members].mean(axis=0)
        assert i == min(members, key=lambda j: np.linalg.norm(u[j] - centroid))


def test_knn_graph_matches_argsort_in_blocks():
    rng = np.random.default_rng(9)
    u = unit_rows(rng.normal(size=(50, 4)), center=True)
    nbrs, sims = knn(u, 6, block=7)
    full = u @ u.T
    np.fill_diagonal(full, -np.inf)
    want = np.argsort(-full, axis=1, kind="stable")[:, :6]
    assert np.array_equal(nbrs, want)
    assert np.allclose(sims, np.take_along_axis(full, want, axis=1), atol=1e-6)


def test_knn_never_lists_self_even_with_duplicates():
    e = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], dtype=np.float32)
    nbrs, sims = knn(unit_rows(e, center=False), 2)
    assert all(i not in nbrs[i] for i in range(4))
    assert nbrs[0, 0] == 1 and sims[0, 0] == pytest.approx(1.0)
