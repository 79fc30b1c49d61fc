"""Activation-statistic selectors: single column, z-scored layer mean, combinations, NaN policy, dev choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr, zscore

from mechsel.errors import ConfigError, DataError
from mechsel.selectors import Pool, choose_statistic, get_selector

N = 20


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    cols = pd.MultiIndex.from_tuples([(layer, s) for layer in range(3) for s in ("mean", "kurtosis")])
    data = rng.normal(size=(N, 6)) * np.array([1, 5, 2, 1, 10, 3])
    return pd.DataFrame(data, columns=cols)


def _pool(table: pd.DataFrame) -> Pool:
    return Pool.from_texts([f"t{i}" for i in range(len(table))], statistics=table)


def _top(x, k, bottom=False):
    return sorted(range(len(x)), key=lambda i: ((x[i] if bottom else -x[i]), i))[:k]


@pytest.mark.parametrize("direction", ["top", "bottom"])
def test_single_layer_statistic(table, direction):
    got = get_selector("activation", statistic="kurtosis", layer=1, direction=direction).select(_pool(table), 5, seed=0)
    x = table[(1, "kurtosis")].to_numpy()
    assert list(got.indices) == _top(x, 5, bottom=direction == "bottom")
    assert got.scores == pytest.approx(x[list(got.indices)])


def test_zscored_mean_across_layers(table):
    got = get_selector("activation", statistic="mean").select(_pool(table), 6, seed=0)
    agg = np.mean([zscore(table[(layer, "mean")].to_numpy()) for layer in range(3)], axis=0)
    assert list(got.indices) == _top(agg, 6)
    sub = get_selector("activation", statistic="mean", layer=(0, 2)).select(_pool(table), 6, seed=0)
    agg2 = (zscore(table[(0, "mean")].to_numpy()) + zscore(table[(2, "mean")].to_numpy())) / 2
    assert list(sub.indices) == _top(agg2, 6)


def test_combination_of_statistics(table):
    got = get_selector("activation", statistic=("mean", "kurtosis"), layer=2, weights=(1.0, -2.0)).select(_pool(table), 7, seed=0)
    combo = zscore(table[(2, "mean")].to_numpy()) - 2.0 * zscore(table[(2, "kurtosis")].to_numpy())
    assert list(got.indices) == _top(combo, 7)


def test_tuple_columns_work_like_a_multiindex(table):
    flat = table.copy()
    flat.columns = list(table.columns)  # an Index of tuples
    a = get_selector("activation", statistic="kurtosis").select(_pool(flat), 4, seed=0)
    b = get_selector("activation", statistic="kurtosis").select(_pool(table), 4, seed=0)
    assert a.indices == b.indices


def test_nan_policy(table):
    bad = table.copy()
    bad.iloc[[3, 7], 1] = np.nan  # (0, "kurtosis")
    with pytest.raises(DataError, match="2 of 20 examples have NaN.*nan_policy='exclude'"):
        get_selector("activation", statistic="kurtosis").select(_pool(bad), 4, seed=0)
    got = get_selector("activation", statistic="kurtosis", layer=0, nan_policy="exclude").select(_pool(bad), 18, seed=0)
    assert got.provenance["n_excluded_nan"] == 2 and not {3, 7} & set(got.indices)
    with pytest.raises(DataError, match="fewer than k=19"):
        get_selector("activation", statistic="kurtosis", layer=0, nan_policy="exclude").select(_pool(bad), 19, seed=0)
    # a NaN in an unused column does not matter
    assert len(get_selector("activation", statistic="mean", layer=0).select(_pool(bad), 4, seed=0)) == 4


def test_unknown_statistic_and_layer_list_what_exists(table):
    with pytest.raises(ConfigError, match=r"available: \['kurtosis', 'mean'\]"):
        get_selector("activation", statistic="skew").select(_pool(table), 3, seed=0)
    with pytest.raises(ConfigError, match=r"available layers: \[0, 1, 2\]"):
        get_selector("activation", statistic="mean", layer=7).select(_pool(table), 3, seed=0)
    with pytest.raises(ConfigError, match="choose statistic"):
        get_selector("activation")
    with pytest.raises(ConfigError, match="one per statistic"):
        get_selector("activation", statistic=("mean", "kurtosis"), weights=(1.0,))


def test_choose_statistic_on_dev(table):
    quality = -3 * table[(1, "mean")].to_numpy() + 0.01 * np.arange(N)
    best = choose_statistic(table, quality)
    assert (best["layer"], best["statistic"], best["direction"]) == (1, "mean", "bottom")
    assert best["spearman"] == pytest.approx(spearmanr(table[(1, "mean")], quality).statistic)
    only = choose_statistic(table, quality, candidates=["kurtosis"])
    assert only["statistic"] == "kurtosis"
