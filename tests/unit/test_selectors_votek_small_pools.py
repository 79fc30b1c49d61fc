"""Vote-k on small pools (neighbours scaled to the pool, seeded tie-break, a logged warning) and,
on a pool of 600, against an independent re-implementation of the reference code's fast vote-k."""

from __future__ import annotations

import logging
from collections import defaultdict

import numpy as np
import pytest

from mechsel.selectors import Pool, get_selector
from mechsel.selectors.votek import FastVoteKConfig, n_neighbors_for

LOGGER = "mechsel.selectors.votek"


def _clustered(seed: int, n: int, *, clusters: int, spread: float, d: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points around ``clusters`` Gaussian centres in ``d`` dimensions, cluster labels shuffled."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, d))
    labels = rng.integers(clusters, size=n)
    return (centres[labels] + spread * rng.normal(size=(n, d))).astype(np.float32), labels


def _pool(e: np.ndarray) -> Pool:
    return Pool.from_texts([f"t{i}" for i in range(len(e))], embeddings=e)


def original_fast_votek(emb: np.ndarray, select_num: int, k: int, tie_rank: np.ndarray | None = None) -> tuple[list[int], int]:
    """The reference code's ``fast_votek`` step by step, with two changes: scores are exact (integers
    scaled by ``10**select_num`` instead of floats, whose rounding decides exact ties), and exact ties
    go to the lowest ``tie_rank`` when given (the original: dict order). Returns the picks and the
    number of steps whose maximum was tied."""
    x = emb.astype(np.float64) - emb.mean(axis=0)  # the reference centres its sentence embeddings
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    vote_stat: dict[int, list[int]] = defaultdict(list)
    for i in range(len(x)):
        for j in np.argsort(unit @ unit[i]).tolist()[-k - 1 : -1]:  # the k most similar, itself excluded
            if j != i:
                vote_stat[j].append(i)
    votes = sorted(vote_stat.items(), key=lambda item: len(item[1]), reverse=True)
    if tie_rank is not None:
        votes.sort(key=lambda item: tie_rank[item[0]])
    selected: list[int] = []
    times: dict[int, int] = defaultdict(int)
    tied_steps = 0
    while len(selected) < select_num:
        scores: dict[int, int] = defaultdict(int)
        for idx, voters in votes:
            if idx in selected:
                scores[idx] = -1
                continue
            for v in voters:
                if v not in selected:
                    scores[idx] += 10 ** (select_num - times[v])
        best, top = max(scores.items(), key=lambda item: item[1])
        tied_steps += sum(s == top for s in scores.values()) > 1
        selected.append(best)
        for v in vote_stat[best]:
            times[v] += 1
    return selected, tied_steps


@pytest.mark.parametrize("k", [4, 8])
def test_fast_votek_on_small_clustered_pools_is_not_the_first_positions(k):
    for seed in range(5):
        e, labels = _clustered(seed, 48, clusters=4, spread=0.3)
        got = get_selector("fast_votek").select(_pool(e), k, seed=seed)
        assert set(got.indices) != set(range(k)), seed
        assert got.provenance["n_neighbors_used"] == 5  # max(5, round(0.05 * 48))
        assert len(set(labels[list(got.indices)])) == 4, seed  # the discount spreads picks over the clusters


@pytest.fixture(autouse=True)
def _fresh_warnings():
    """The small-pool warning is logged once per process and setting; start each test afresh."""
    from mechsel.selectors import votek

    votek._WARNED.clear()


def test_complete_vote_graph_ties_are_broken_by_the_seed(caplog):
    # Scaling off: 150 neighbours on 48 examples, everyone votes for everyone, every score ties.
    e, _ = _clustered(0, 48, clusters=4, spread=0.3)
    sel = get_selector("fast_votek", neighbor_fraction=None)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        picks = [sel.select(_pool(e), 4, seed=s).indices for s in range(6)]
        again = sel.select(_pool(e), 4, seed=3).indices
    assert again == picks[3] and len(set(picks)) == 6 and (0, 1, 2, 3) not in picks
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "too small for n_neighbors=150" in warned[0].getMessage()  # once, not once per seed
    assert "using 47" in warned[0].getMessage()


def test_neighbour_count_rule_and_warning(caplog):
    scaled, fixed = FastVoteKConfig(), FastVoteKConfig(neighbor_fraction=None)
    expected = {6: 5, 48: 5, 100: 5, 110: 6, 151: 8, 600: 30, 2989: 149, 2990: 150, 10_000: 150}
    with caplog.at_level(logging.INFO, logger=LOGGER):
        assert {n: n_neighbors_for(n, scaled) for n in expected} == expected
        assert [n_neighbors_for(n, fixed) for n in (48, 151, 152, 600)] == [47, 150, 150, 150]
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    # warned exactly when 150 >= n - 1: n = 6, 48, 100, 110, 151 (scaled) and 48, 151 (fixed)
    assert len(warned) == 7 and all("too small" in w for w in warned)
    assert "scaled to 5" in warned[0]
    assert n_neighbors_for(30, FastVoteKConfig(n_neighbors=3)) == 3  # the cap wins over the floor


@pytest.mark.parametrize(("fraction", "neighbours"), [(None, 150), (0.05, 30)])
@pytest.mark.parametrize("seed", [0, 1, 8])
def test_fast_votek_matches_the_original_code_at_600(fraction, neighbours, seed):
    e, _ = _clustered(100 + seed, 600, clusters=6, spread=0.6)
    got = get_selector("fast_votek", neighbor_fraction=fraction).select(_pool(e), 16, seed=seed)
    assert got.provenance["n_neighbors_used"] == neighbours
    # With the documented tie order (the seed's first draw, a permutation of the pool) the picks are the original's.
    rank = np.random.default_rng(seed).permutation(600)
    assert list(got.indices) == original_fast_votek(e, 16, neighbours, tie_rank=rank)[0]


@pytest.mark.parametrize(("fraction", "neighbours", "seed"), [(None, 150, 0), (None, 150, 2), (0.05, 30, 1), (0.05, 30, 4)])
def test_fast_votek_equals_the_original_dict_order_where_nothing_ties(fraction, neighbours, seed):
    e, _ = _clustered(100 + seed, 600, clusters=6, spread=0.6)
    ref, tied_steps = original_fast_votek(e, 16, neighbours)
    assert tied_steps == 0  # so the original's dict-order tie-break never acted
    got = get_selector("fast_votek", neighbor_fraction=fraction).select(_pool(e), 16, seed=seed)
    assert list(got.indices) == ref
