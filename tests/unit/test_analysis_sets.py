"""Set-level analysis: aggregates by hand, ρ against scipy, a planted effect, a null, budget pooling."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import rankdata

from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.analysis.sets import pooled_set_correlation_grid, set_correlation_grid, set_features, set_scores
from mechsel.errors import ConfigError, DataError


def _tiny():
    """Two random sets of two members, one retrieval line and one other selector to be ignored."""
    selections = pd.DataFrame(
        {
            "task": "sst2",
            "selector": ["random", "random", "random", "random", "random", "votek"],
            "budget": 2,
            "seed": [0, 0, 1, 1, 2, 0],
            "query": [-1, -1, -1, -1, 3, -1],
            "rank": [0, 1, 0, 1, 0, 0],
            "example_id": ["a", "b", "b", "c", "a", "c"],
        }
    )
    stats_frame = pd.DataFrame(
        {
            "example_id": ["a", "b", "c", "a", "b", "c"],
            "family": "moments",
            "mask": "full",
            "layer": 0,
            "statistic": ["kurtosis"] * 3 + ["mean"] * 3,
            "value": [1.0, 4.0, 2.0, np.nan, 5.0, -1.0],
        }
    )
    return selections, stats_frame


def test_set_features_by_hand():
    sel, st = _tiny()
    feats = set_features(sel, st).set_index(["seed", "statistic", "aggregate"])
    assert list(set_features(sel, st).columns) == [
        "task",
        "selector",
        "budget",
        "seed",
        "set_id",
        "family",
        "mask",
        "layer",
        "statistic",
        "aggregate",
        "value",
        "n_members",
    ]
    assert len(feats) == 8  # 2 fixed random sets × 2 cells × 2 aggregates
    expect = {  # set 0 = {a, b}, set 1 = {b, c}; a's mean is NaN and ignored
        (0, "kurtosis", "mean"): (2.5, 2),
        (0, "kurtosis", "max"): (4.0, 2),
        (0, "mean", "mean"): (5.0, 1),
        (0, "mean", "max"): (5.0, 1),
        (1, "kurtosis", "mean"): (3.0, 2),
        (1, "kurtosis", "max"): (4.0, 2),
        (1, "mean", "mean"): (2.0, 2),
        (1, "mean", "max"): (5.0, 2),
    }
    for key, (value, n_members) in expect.items():
        assert feats.loc[key, "value"] == value and feats.loc[key, "n_members"] == n_members
    assert set(feats["set_id"]) == {"random/k=2/seed=0", "random/k=2/seed=1"}
    only_max = set_features(sel, st, aggregates=["max"])
    assert set(only_max["aggregate"]) == {"max"} and len(only_max) == 4


def _planted(n_sets=60, budgets=(4,), seed=0, effect=True, pool=100, k_slope=0.01):
    """Random fixed sets from a pool; the score follows the members' mean kurtosis at layer 1 when ``effect``."""
    rng = np.random.default_rng(seed)
    ids = np.array([f"ex{i}" for i in range(pool)])
    layers, statistics = (0, 1, 2), ("mean", "kurtosis", "skew")
    values = {(layer, s): rng.normal(size=pool) for layer in layers for s in statistics}
    stats_frame = pd.concat(
        [
            pd.DataFrame({"example_id": ids, "family": "moments", "mask": "full", "layer": layer, "statistic": s, "value": v})
            for (layer, s), v in values.items()
        ],
        ignore_index=True,
    )
    sel_rows, score_rows = [], []
    driver = pd.Series(values[(1, "kurtosis")], index=ids)
    for k in budgets:
        for s in range(n_sets):
            members = rng.choice(ids, size=k, replace=False)
            sel_rows.append(
                pd.DataFrame(
                    {"task": "sst2", "selector": "random", "budget": k, "seed": s, "query": -1, "rank": np.arange(k), "example_id": members}
                )
            )
            score = 0.5 + k_slope * k + (0.05 * driver[members].mean() if effect else 0.0) + rng.normal(scale=0.02)
            score_rows.append({"task": "sst2", "selector": "random", "budget": k, "seed": s, "metric": "accuracy", "score": score})
    return pd.concat(sel_rows, ignore_index=True), pd.DataFrame(score_rows), stats_frame


def test_set_grid_matches_scipy_and_finds_planted_effect():
    sel, sc, st = _planted()
    grid = set_correlation_grid(sel, sc, st)
    assert list(grid.columns[:8]) == ["task", "metric", "budget", "family", "mask", "layer", "statistic", "aggregate"]
    assert len(grid) == 18 and (grid["n"] == 60).all() and (grid["metric"] == "accuracy").all()
    feats = set_features(sel, st)
    score = set_scores(sc).set_index("set_id")["score"]
    for _, row in grid.iterrows():
        f = feats[(feats["layer"] == row["layer"]) & (feats["statistic"] == row["statistic"]) & (feats["aggregate"] == row["aggregate"])]
        ref = stats.spearmanr(f["value"], score.loc[f["set_id"]].to_numpy())
        assert row["rho"] == pytest.approx(ref.statistic, abs=1e-12)
        assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    np.testing.assert_allclose(grid["q_value"], benjamini_hochberg(grid["p_value"].to_numpy())[0])  # one (task, family)
    best = grid[(grid["layer"] == 1) & (grid["statistic"] == "kurtosis") & (grid["aggregate"] == "mean")].iloc[0]
    assert best["q_value"] <= 0.05 and best["rho"] > 0.6 and best["ci_low"] > 0.3
    assert best["abs_rho"] == grid["abs_rho"].max()


def test_set_features_by_hand_on_planted_sets():
    sel, sc, st = _planted(n_sets=5)
    feats = set_features(sel, st)
    for seed in range(5):
        members = sel.loc[sel["seed"] == seed, "example_id"]
        vals = st[(st["layer"] == 2) & (st["statistic"] == "skew")].set_index("example_id").loc[members, "value"]
        got = feats[(feats["seed"] == seed) & (feats["layer"] == 2) & (feats["statistic"] == "skew")]
        got = got.set_index("aggregate")["value"]
        assert got["mean"] == pytest.approx(vals.mean()) and got["max"] == vals.max()


def test_set_grid_null_not_found_beyond_its_rate():
    draws, per_cell, any_found = 100, [], 0
    for d in range(draws):
        sel, sc, st = _planted(n_sets=40, seed=100 + d, effect=False)
        grid = set_correlation_grid(sel, sc, st, aggregates=["mean"])
        per_cell.append((grid["p_value"] < 0.05).to_numpy())
        any_found += bool(grid["significant"].any())
    rate = np.concatenate(per_cell).mean()  # 900 tests; ranks of independent cells are independent permutations
    assert 0.028 <= rate <= 0.072  # 0.05 ± 3 binomial sd (0.0073)
    assert any_found / draws <= 0.15  # BH at 5% under the global null: about 5% of draws


def _hand_pooled(feature, score, budget):
    """Ranks over all sets, centred within budget, then Pearson r (the partial ρ given budget dummies)."""
    frame = pd.DataFrame({"f": rankdata(feature), "s": rankdata(score), "b": budget})
    centred = frame[["f", "s"]] - frame.groupby("b")[["f", "s"]].transform("mean")
    return np.corrcoef(centred["f"], centred["s"])[0, 1]


def test_pooled_grid_centres_within_budget():
    sel, sc, st = _planted(n_sets=30, budgets=(2, 4, 8), effect=False, seed=4, k_slope=0.05)
    pooled = pooled_set_correlation_grid(sel, sc, st)
    assert list(pooled.columns[:7]) == ["task", "metric", "family", "mask", "layer", "statistic", "aggregate"]
    assert (pooled["n"] == 90).all() and (pooled["n_budgets"] == 3).all()
    feats = set_features(sel, st)
    score = set_scores(sc).set_index("set_id")["score"]
    f = feats[(feats["layer"] == 0) & (feats["statistic"] == "mean") & (feats["aggregate"] == "max")]
    y = score.loc[f["set_id"]].to_numpy()
    raw = stats.spearmanr(f["value"], y)
    assert raw.statistic > 0.3 and raw.pvalue < 0.01  # max grows with k, and so does the score
    row = pooled[(pooled["layer"] == 0) & (pooled["statistic"] == "mean") & (pooled["aggregate"] == "max")].iloc[0]
    expect = _hand_pooled(f["value"].to_numpy(), y, f["budget"].to_numpy())
    assert row["rho"] == pytest.approx(expect, abs=1e-12)
    df = 90 - 2 - 2
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(expect) * np.sqrt(df / (1 - expect**2)), df), rel=1e-9)
    assert row["p_value"] > 0.05 and abs(row["rho"]) < raw.statistic / 2


def test_pooled_grid_finds_planted_effect():
    sel, sc, st = _planted(n_sets=30, budgets=(2, 4, 8), seed=5)
    pooled = pooled_set_correlation_grid(sel, sc, st)
    best = pooled[(pooled["layer"] == 1) & (pooled["statistic"] == "kurtosis") & (pooled["aggregate"] == "mean")].iloc[0]
    assert best["significant"] and best["rho"] > 0.4


def test_set_errors_teach():
    sel, sc, st = _planted(n_sets=5)
    with pytest.raises(DataError, match="selectors with fixed sets: \\['random'\\]"):
        set_correlation_grid(sel, sc, st, selector="votek")
    with pytest.raises(ConfigError, match="aggregates"):
        set_features(sel, st, aggregates=["median"])
    with pytest.raises(DataError, match="no 'task' column"):
        set_features(pd.concat([sel, sel.assign(task="agnews")]), st)
    two_metrics = pd.concat([sc, sc.assign(metric="macro_f1")])
    with pytest.raises(ConfigError, match="several metrics"):
        set_correlation_grid(sel, two_metrics, st)
    assert (set_correlation_grid(sel, two_metrics, st, metric="macro_f1")["metric"] == "macro_f1").all()
    with pytest.raises(DataError, match="metrics present"):
        set_scores(sc, metric="bleu")
    with pytest.raises(DataError, match="several lines for one set"):
        set_scores(pd.concat([sc, sc]))
    with pytest.raises(DataError, match="No member"):
        set_features(sel.assign(example_id="zz"), st)
    with pytest.raises(DataError, match="No selected set has a score"):
        set_correlation_grid(sel, sc.assign(seed=sc["seed"] + 100), st)
    with pytest.raises(DataError, match="lacks columns \\['query'\\]"):
        set_features(sel.drop(columns="query"), st)
