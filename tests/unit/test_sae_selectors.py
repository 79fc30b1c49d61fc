"""SAE selectors against independent straightforward implementations on small synthetic pools."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mechsel.errors import ConfigError, DataError
from mechsel.selectors.base import Pool, get_selector, selector_names
from mechsel.selectors.sae import latent_profiles, task_relevance


def make_pool(n: int = 30, k: int = 4, n_latents: int = 15, seed: int = 0, layer: int = 3) -> tuple[Pool, list[dict[int, float]]]:
    rng = np.random.default_rng(seed)
    cols, truth = {}, []
    lat = np.full((n, k), -1.0)
    act = np.zeros((n, k))
    for i in range(n):
        m = int(rng.integers(0, k + 1))  # some examples have fewer (or no) live latents
        chosen = rng.choice(n_latents, size=m, replace=False)
        vals = np.sort(rng.uniform(0.1, 5.0, size=m))[::-1]
        lat[i, :m], act[i, :m] = chosen, vals
        truth.append(dict(zip(chosen.tolist(), vals.tolist())))
    for j in range(k):
        cols[(layer, f"sae_top{j + 1}_latent")] = lat[:, j]
        cols[(layer, f"sae_top{j + 1}_act")] = act[:, j]
    cols[(layer, "sae_l0")] = rng.uniform(1, 10, size=n)
    table = pd.DataFrame(cols)
    table.columns = pd.MultiIndex.from_tuples(list(cols))
    labels = rng.integers(0, 2, size=n)
    return Pool.from_texts([f"t{i}" for i in range(n)], statistics=table, labels=labels), truth


def test_registered():
    assert {"sae_coverage", "sae_topk", "sae_diversity"} <= set(selector_names())


def test_latent_profiles_hold_each_examples_top_latents():
    pool, truth = make_pool()
    profiles, ids = latent_profiles(pool.statistics)
    assert list(ids) == sorted({lat for row in truth for lat in row})
    for i, row in enumerate(truth):
        got = {int(ids[j]): profiles[i, j] for j in np.flatnonzero(profiles[i])}
        assert got == pytest.approx(row)


def brute_coverage(truth, labels, seed, n_relevant, min_examples, k):
    """Plain-Python greedy coverage, written independently of the selector."""
    latents = sorted({lat for row in truth for lat in row})
    relevance = {}
    for lat in latents:
        by_class = {}
        for i in seed:
            by_class.setdefault(labels[i], []).append(truth[i].get(lat, 0.0))
        count = sum(1 for i in seed if lat in truth[i])
        means = [np.mean(v) for v in by_class.values()]
        relevance[lat] = (max(means) - min(means)) if count >= min_examples else 0.0
    ranked = sorted(latents, key=lambda lat: (-relevance[lat], latents.index(lat)))[:n_relevant]
    relevant = {lat: relevance[lat] for lat in ranked if relevance[lat] > 0}
    covered, picked = set(), []
    for _ in range(k):
        if covered == set(relevant):
            covered = set()
        best = None
        for i, row in enumerate(truth):
            if i in picked:
                continue
            gain = sum(w for lat, w in relevant.items() if lat in row and lat not in covered)
            strength = sum(row.get(lat, 0.0) * w for lat, w in relevant.items())
            key = (-gain, -strength, i)
            if best is None or key < best[0]:
                best = (key, i)
        picked.append(best[1])
        covered |= {lat for lat in relevant if lat in truth[best[1]]}
    return picked


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coverage_matches_brute_force(seed):
    pool, truth = make_pool(seed=seed)
    seed_idx = tuple(range(0, 30, 2))
    sel = get_selector("sae_coverage", seed_indices=seed_idx, n_relevant=6, min_examples=1).select(pool, 8, seed=0)
    want = brute_coverage(truth, pool.labels, seed_idx, 6, 1, 8)
    assert list(sel.indices) == want
    assert sel.provenance["seed_indices"] == list(seed_idx)


def test_task_relevance_is_the_spread_of_class_means():
    profiles = np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [0.0, 2.0]])
    labels = np.array([0, 0, 1, 1])
    np.testing.assert_allclose(task_relevance(profiles, labels, 1), [2.0, 2.0])
    np.testing.assert_allclose(task_relevance(profiles, labels, 3), [0.0, 0.0])


def test_topk_by_statistic_and_by_latent():
    pool, truth = make_pool()
    l0 = pool.statistics[(3, "sae_l0")].to_numpy()
    sel = get_selector("sae_topk", statistic="sae_l0").select(pool, 5, seed=0)
    assert list(sel.indices) == list(np.argsort(-l0, kind="stable")[:5])
    latent = 7
    score = np.array([row.get(latent, 0.0) for row in truth])
    sel = get_selector("sae_topk", latent=latent, direction="top").select(pool, 4, seed=0)
    assert list(sel.indices) == list(np.lexsort((np.arange(30), -score))[:4])
    np.testing.assert_allclose(sel.scores, score[list(sel.indices)])


def brute_diversity(profiles, first, k):
    unit = profiles / np.where(np.linalg.norm(profiles, axis=1, keepdims=True) == 0, 1, np.linalg.norm(profiles, axis=1, keepdims=True))
    picked = [first]
    while len(picked) < k:
        sims = [np.inf if i in picked else sum(unit[i] @ unit[j] for j in picked) for i in range(len(unit))]
        picked.append(int(np.argmin(sims)))
    return picked


def test_diversity_is_farthest_first_on_latent_profiles():
    pool, _ = make_pool(seed=4)
    sel = get_selector("sae_diversity").select(pool, 6, seed=3)
    profiles, _ = latent_profiles(pool.statistics)
    assert list(sel.indices) == brute_diversity(profiles, sel.indices[0], 6)


def test_bad_inputs_teach():
    pool, _ = make_pool()
    with pytest.raises(ConfigError, match="exactly one"):
        get_selector("sae_topk", statistic="sae_l0", latent=3)
    with pytest.raises(ConfigError, match="activation"):
        get_selector("sae_topk", statistic="kurtosis")
    bare = Pool.from_texts(pool.texts, statistics=pool.statistics[[(3, "sae_l0")]], labels=pool.labels)
    with pytest.raises(DataError, match="collect_sae"):
        get_selector("sae_diversity").select(bare, 3, seed=0)
    with pytest.raises(ConfigError, match="layers \\[3\\]"):
        get_selector("sae_diversity", layer=5).select(pool, 3, seed=0)
    one_label = Pool.from_texts(pool.texts, statistics=pool.statistics, labels=np.zeros(30, dtype=int))
    with pytest.raises(DataError, match="two labels"):
        get_selector("sae_coverage", n_seed=10).select(one_label, 3, seed=0)
    with pytest.raises(DataError, match="labels"):
        get_selector("sae_coverage").select(Pool.from_texts(pool.texts, statistics=pool.statistics), 3, seed=0)
