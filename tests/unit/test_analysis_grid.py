"""Correlation grid and masking effect on synthetic tidy frames, against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mechsel.analysis import benjamini_hochberg, correlation_grid, masking_effect
from mechsel.analysis.correlation import bootstrap_indices
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
