"""The ``probe`` selector: it finds a planted linear signal in representations, picks the
candidates it predicts best, and never receives the quality of a candidate it can pick."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from mechsel.errors import ConfigError, DataError
from mechsel.selectors import SELECTORS, Pool, ProbeTraining, get_selector


def world(seed: int = 0, n: int = 300, d: int = 8):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    quality = x @ w + 0.5 * rng.standard_normal(n)
    return x, quality


def test_it_picks_what_a_planted_signal_says_helps():
    x, quality = world()
    train, pool_pos = np.arange(0, 150), np.arange(150, 300)
    training = ProbeTraining([f"c{i}" for i in train], x[train], quality[train])
    pool = Pool(ids=[f"c{i}" for i in pool_pos], texts=[f"t{i}" for i in pool_pos], representations=x[pool_pos])
    sel = get_selector("probe", probe_training=training).select(pool, 10, seed=0)
    picked_quality = quality[pool_pos][list(sel.indices)]
    assert picked_quality.mean() > np.quantile(quality[pool_pos], 0.85)  # near the top of the pool
    assert spearmanr(sel.scores, picked_quality).statistic > 0 and list(sel.scores) == sorted(sel.scores, reverse=True)
    assert sel.provenance["n_training"] == 150 and SELECTORS.get("probe").family == "internal-probe"


def test_it_never_receives_the_quality_of_a_candidate_it_can_pick():
    x, quality = world(1, n=40)
    pool = Pool(ids=[f"c{i}" for i in range(20)], texts=["t"] * 20, representations=x[:20])
    leaky = ProbeTraining([f"c{i}" for i in range(15, 40)], x[15:40], quality[15:40])
    with pytest.raises(DataError, match="5 training candidates are in the pool it picks from"):
        get_selector("probe", probe_training=leaky).select(pool, 3, seed=0)
    with pytest.raises(ConfigError, match="needs probe_training"):
        get_selector("probe").select(pool, 3, seed=0)


def test_the_quality_of_pool_candidates_cannot_move_its_picks():
    """Its only inputs about the pool are representations: changing the pool's quality (which it
    is never given) changes nothing, changing the training quality does."""
    x, quality = world(2, n=100)
    pool = Pool(ids=[f"c{i}" for i in range(50)], texts=["t"] * 50, representations=x[:50])
    training = ProbeTraining([f"c{i}" for i in range(50, 100)], x[50:], quality[50:])
    a = get_selector("probe", probe_training=training).select(pool, 5, seed=0)
    b = get_selector("probe", probe_training=ProbeTraining(training.ids, x[50:], -quality[50:])).select(pool, 5, seed=0)
    assert a.indices != b.indices


def test_per_label_alternates_labels():
    x, quality = world(3, n=120)
    labels = np.arange(60) % 3
    pool = Pool(ids=list(range(60)), texts=["t"] * 60, labels=labels, representations=x[:60])
    training = ProbeTraining(list(range(60, 120)), x[60:], quality[60:])
    sel = get_selector("probe", per_label=True, probe_training=training).select(pool, 6, seed=0)
    assert sorted(np.bincount(labels[list(sel.indices)])) == [2, 2, 2]
