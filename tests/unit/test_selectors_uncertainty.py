"""Uncertainty selectors against scipy and a hand-written iterative least-confidence loop."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy

from mechsel.errors import ConfigError
from mechsel.selectors import Pool, get_selector


@pytest.fixture
def pool() -> Pool:
    probs = np.random.default_rng(0).dirichlet([0.5, 0.5, 0.5], size=25)
    return Pool.from_texts([f"t{i}" for i in range(25)], label_probs=probs)


def _top(u: np.ndarray, k: int) -> list[int]:
    return sorted(range(len(u)), key=lambda i: (-u[i], i))[:k]


def test_entropy_matches_scipy(pool):
    got = get_selector("entropy").select(pool, 6, seed=0)
    h = entropy(pool.label_probs, axis=1)
    assert list(got.indices) == _top(h, 6)
    assert got.scores == pytest.approx(h[list(got.indices)])


def test_margin_is_smallest_top_two_gap(pool):
    got = get_selector("margin").select(pool, 6, seed=0)
    gaps = np.array([sorted(p)[-1] - sorted(p)[-2] for p in pool.label_probs])
    assert list(got.indices) == _top(-gaps, 6)


def test_static_least_confidence(pool):
    got = get_selector("least_confidence", iterative=False).select(pool, 5, seed=0)
    assert list(got.indices) == _top(1 - pool.label_probs.max(axis=1), 5)


def test_iterative_least_confidence_like_the_reference():
    n, k = 30, 10
    pool = Pool.from_texts([f"t{i}" for i in range(n)])
    rng = np.random.default_rng(5)
    tables = [rng.random(n) for _ in range(20)]
    calls = []

    def confidence_fn(selected):
        calls.append(list(selected))
        return tables[len(calls) - 1]

    got = get_selector("least_confidence", batch_ratio=3, confidence_fn=confidence_fn).select(pool, k, seed=4)
    batch = k // 3
    picks = [int(i) for i in np.random.default_rng(4).choice(n, size=batch, replace=False)]
    r = 0
    while len(picks) < k:
        conf = tables[r]
        r += 1
        rest = sorted((i for i in range(n) if i not in picks), key=lambda i: (conf[i], i))
        picks += rest[: min(batch, k - len(picks))]
    assert list(got.indices) == picks
    assert calls[0] == picks[:batch] and len(calls) == r


def test_least_confidence_needs_a_source():
    with pytest.raises(ConfigError, match="iterative=False"):
        get_selector("least_confidence").select(Pool.from_texts(["a", "b"]), 1, seed=0)
