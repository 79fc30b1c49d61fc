"""Correlation grid and masking effect on synthetic tidy frames, against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import rankdata

from mechsel.analysis import benjamini_hochberg, correlation_grid, masking_effect
from mechsel.analysis.correlation import bootstrap_indices, rowwise_pearson, spearman_p_value
from mechsel.errors import ConfigError, DataError


def _frames(n=30, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"ex{i}" for i in range(n)]
    quality = rng.normal(size=n)
    rows = []
    for mask, strength in (("full", 1.0), ("isolated", 0.2)):
        for layer in (0, 1, 2):
            for stat in ("mean", "kurtosis"):
                v = strength * (layer + 1) * quality * (stat == "kurtosis") + rng.normal(size=n)
                rows.append(pd.DataFrame({"example_id": ids, "layer": layer, "statistic": stat, "value": v, "mask": mask}))
    stats_frame = pd.concat(rows, ignore_index=True)
    qframe = pd.DataFrame({"example_id": ids[::-1], "quality": quality[::-1], "se": 0.1})  # order must not matter
    return stats_frame, qframe


def test_grid_cells_match_scipy_and_bh():
    s, q = _frames()
    grid = correlation_grid(s, q, n_boot=50, n_perm=200, seed=1)
    for _, row in grid.iterrows():
        cell = s[(s["mask"] == row["mask"]) & (s["layer"] == row["layer"]) & (s["statistic"] == row["statistic"])]
        qv = q.set_index("example_id")["quality"].loc[cell["example_id"]].to_numpy()
        assert row["p_value"] == pytest.approx(stats.spearmanr(cell["value"], qv).pvalue, rel=1e-9)
    assert list(grid.columns[:3]) == ["mask", "layer", "statistic"]
    assert len(grid) == 12
    qmap = q.set_index("example_id")["quality"]
    for _, row in grid.iterrows():
        cell = s[(s["mask"] == row["mask"]) & (s["layer"] == row["layer"]) & (s["statistic"] == row["statistic"])]
        expect = stats.spearmanr(cell["value"], qmap.loc[cell["example_id"]].to_numpy()).statistic
        assert row["rho"] == pytest.approx(expect, abs=1e-12)
        assert row["n"] == 30
    np.testing.assert_allclose(grid["q_value"], benjamini_hochberg(grid["p_value"].to_numpy())[0])
    strong = grid[(grid["mask"] == "full") & (grid["statistic"] == "kurtosis") & (grid["layer"] == 2)].iloc[0]
    assert strong["significant"] and strong["rho"] > 0.5
    np.testing.assert_allclose(grid["abs_rho"], grid["rho"].abs())


def test_grid_drops_nan_values_per_cell():
    s, q = _frames()
    s.loc[s.index[:5], "value"] = np.nan
    grid = correlation_grid(s, q, n_boot=10, n_perm=10)
    assert sorted(grid["n"].unique()) == [25, 30]


def test_grid_errors_teach():
    s, q = _frames()
    with pytest.raises(DataError, match="lacks columns"):
        correlation_grid(s.drop(columns="value"), q)
    with pytest.raises(DataError, match="No example_id"):
        correlation_grid(s, q.assign(example_id=[f"other{i}" for i in range(len(q))]))
    with pytest.raises(DataError, match="several values"):
        correlation_grid(s, q, keys=["layer", "statistic"], n_boot=5, n_perm=5)
    with pytest.raises(DataError, match="several lines"):
        correlation_grid(s, pd.concat([q, q]))


def test_masking_effect_paired_bootstrap_matches_naive():
    s, q = _frames()
    eff = masking_effect(s, q, n_boot=100, seed=5)
    assert len(eff) == 6 and {"rho_full", "rho_isolated", "delta_rho", "ci_low", "ci_high"} <= set(eff.columns)
    qmap = q.set_index("example_id")["quality"]
    row = eff[(eff["layer"] == 2) & (eff["statistic"] == "kurtosis")].iloc[0]
    full = s[(s["mask"] == "full") & (s["layer"] == 2) & (s["statistic"] == "kurtosis")].set_index("example_id")["value"]
    iso = s[(s["mask"] == "isolated") & (s["layer"] == 2) & (s["statistic"] == "kurtosis")].set_index("example_id")["value"]
    ids = sorted(full.index)
    a, b, y = full.loc[ids].to_numpy(), iso.loc[ids].to_numpy(), qmap.loc[ids].to_numpy()
    ra, rb = stats.spearmanr(a, y).statistic, stats.spearmanr(b, y).statistic
    assert row["rho_full"] == pytest.approx(ra) and row["rho_isolated"] == pytest.approx(rb)
    assert row["delta_rho"] == pytest.approx(ra - rb)
    naive = [stats.spearmanr(a[i], y[i]).statistic - stats.spearmanr(b[i], y[i]).statistic for i in bootstrap_indices(30, 100, 5)]
    lo, hi = np.percentile(naive, [2.5, 97.5])
    assert row["ci_low"] == pytest.approx(lo) and row["ci_high"] == pytest.approx(hi)
    assert row["excludes_zero"]


def test_masking_effect_bad_input():
    s, q = _frames()
    with pytest.raises(DataError, match="not in the statistics frame"):
        masking_effect(s, q, isolated="alone")
    with pytest.raises(ConfigError, match="two different"):
        masking_effect(s, q, full="full", isolated="full")


def _planted_grid(rng, n=48, cells=360, planted=(0.76, 0.68), task="sst2", family="moments"):
    """A 360-cell grid on one quality vector: ``planted`` cells with that population Spearman ρ, the rest null."""
    ids = [f"ex{i}" for i in range(n)]
    quality = rng.normal(size=n)
    rows = []
    for c in range(cells):
        if c < len(planted):
            r = 2 * np.sin(np.pi * planted[c] / 6)  # Pearson r of a bivariate normal with this Spearman ρ
            v = r * quality + np.sqrt(1 - r * r) * rng.normal(size=n)
        else:
            v = rng.normal(size=n)
        rows.append(
            pd.DataFrame(
                {"example_id": ids, "task": task, "family": family, "mask": "full", "layer": c // 5, "statistic": f"s{c % 5}", "value": v}
            )
        )
    return pd.concat(rows, ignore_index=True), pd.DataFrame({"example_id": ids, "task": task, "quality": quality})


def test_planted_cells_are_found_in_a_360_cell_null_grid():
    """Issue acceptance: two cells with true ρ ≈ 0.7 at n = 48 among 358 null cells are both found
    (q ≤ 0.05 under the default family) with at most 3 false discoveries; under permutation
    p-values with 2,000 permutations neither could be (q ≥ 360/2001 = 0.18)."""
    hits = []
    for seed in range(5):
        s, q = _planted_grid(np.random.default_rng(seed))
        grid = correlation_grid(s, q, alpha=0.05)
        assert (grid["family_size"] == 360).all() and (grid["fdr_family"] == "task=sst2, family=moments").all()
        planted = (grid["layer"] == 0) & grid["statistic"].isin(["s0", "s1"])
        hits.append(bool(grid.loc[planted, "significant"].all()))
        assert grid.loc[planted, "q_value"].max() <= 0.05
        assert int(grid.loc[~planted, "significant"].sum()) <= 3
        np.testing.assert_allclose(grid["q_value"], stats.false_discovery_control(grid["p_value"].to_numpy(), method="bh"))
    assert all(hits)
    s, q = _planted_grid(np.random.default_rng(0))
    floor = correlation_grid(s, q, p_method="permutation", n_perm=2000)
    planted = (floor["layer"] == 0) & floor["statistic"].isin(["s0", "s1"])
    assert floor.loc[planted, "p_value"].max() == pytest.approx(1 / 2001)  # both at the permutation floor
    assert floor.loc[planted, "q_value"].min() > 0.05 and not floor["significant"].any()  # ≈ 0.09 in the issue


def test_null_grid_false_discoveries_at_the_stated_rate():
    """Under the complete null, BH at 0.05 over the grid's analytic p-values makes any discovery in
    at most ~5% of grids (the grid's own p-values equal these: checked against scipy above)."""
    rng = np.random.default_rng(11)
    draws, cells, n = 400, 360, 48
    any_fd = []
    for _ in range(draws):
        quality = rankdata(rng.normal(size=n))
        ranks = rankdata(rng.normal(size=(cells, n)), axis=1)
        p = spearman_p_value(rowwise_pearson(ranks, quality), n)
        any_fd.append(bool(benjamini_hochberg(p, alpha=0.05)[1].any()))
    rate = float(np.mean(any_fd))
    assert rate <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / draws), rate
    s, q = _planted_grid(rng, cells=cells, planted=())  # and one full grid through correlation_grid
    assert correlation_grid(s, q)["significant"].sum() <= 3


def test_families_are_separate_by_default_and_global_on_request():
    s1, q1 = _planted_grid(np.random.default_rng(3), cells=20, planted=(0.7,), task="sst2")
    s2, q2 = _planted_grid(np.random.default_rng(4), cells=30, planted=(), task="sst2", family="sae")
    s2 = s2.assign(example_id=np.tile(q1["example_id"].to_numpy(), 30))
    s = pd.concat([s1, s2], ignore_index=True)
    grid = correlation_grid(s, q1)
    sizes = grid.groupby("fdr_family")["family_size"].first().to_dict()
    assert sizes == {"task=sst2, family=moments": 20, "task=sst2, family=sae": 30}
    for fam, part in grid.groupby("fdr_family"):
        np.testing.assert_allclose(part["q_value"], benjamini_hochberg(part["p_value"].to_numpy())[0])
    glob = correlation_grid(s, q1, fdr_family="global")
    assert (glob["fdr_family"] == "all cells").all() and (glob["family_size"] == 50).all()
    # the moments' q-values do not depend on whether SAE cells were collected
    alone = correlation_grid(s1, q1)
    np.testing.assert_allclose(alone["q_value"].to_numpy(), grid[grid["family"] == "moments"]["q_value"].to_numpy())
    with pytest.raises(ConfigError, match="fdr_family"):
        correlation_grid(s, q1, fdr_family="everything")
