"""Partial Spearman ρ against hand computations, the first-order formula, planted effects and a null."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.stats import rankdata

from mechsel.analysis.correlation import SpearmanResult
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.analysis.partial import PARTIAL_COLUMNS, partial_correlation_grid, partial_spearman
from mechsel.errors import ConfigError, DataError


def _hand_partial(x, y, design_columns):
    """Residualised ranks written out: lstsq on [1, covariates], Pearson r of the residuals."""
    z = np.column_stack([np.ones(len(x)), *design_columns])
    rx, ry = rankdata(x), rankdata(y)
    ex = rx - z @ np.linalg.lstsq(z, rx, rcond=None)[0]
    ey = ry - z @ np.linalg.lstsq(z, ry, rcond=None)[0]
    return np.corrcoef(ex, ey)[0, 1]


def test_partial_matches_hand_lstsq_with_numeric_and_categorical_covariates():
    rng = np.random.default_rng(3)
    n = 50
    n_tokens = rng.integers(5, 80, size=n)
    label = rng.choice(["neg", "neu", "pos"], size=n)
    x = n_tokens + 10 * (label == "pos") + rng.normal(scale=10, size=n)
    y = 0.5 * x + n_tokens + rng.normal(scale=10, size=n)
    cov = pd.DataFrame({"n_tokens": n_tokens, "label": label})
    res = partial_spearman(x, y, cov, basis="linear", level=0.9)

    dummies = [(label == "neu").astype(float), (label == "pos").astype(float)]
    rho = _hand_partial(x, y, [rankdata(n_tokens), *dummies])
    q = 3  # n_tokens + two dummies
    df = n - 2 - q
    p = 2 * stats.t.sf(abs(rho) * np.sqrt(df / (1 - rho**2)), df)
    se = np.sqrt((1 + rho**2 / 2) / (n - 3 - q))
    zc = stats.norm.ppf(0.95)
    assert isinstance(res, SpearmanResult)
    assert res.n == n and res.n_covariates == q
    assert res.rho == pytest.approx(rho, abs=1e-12)
    assert res.p_value == pytest.approx(p, rel=1e-9)
    assert res.ci_low == pytest.approx(np.tanh(np.arctanh(rho) - zc * se), abs=1e-12)
    assert res.ci_high == pytest.approx(np.tanh(np.arctanh(rho) + zc * se), abs=1e-12)


def test_integer_label_named_categorical_enters_as_dummies_not_ranks():
    rng = np.random.default_rng(4)
    n = 40
    label = rng.integers(0, 3, size=n)
    x, y = rng.normal(size=n) + label**2, rng.normal(size=n) - label
    res = partial_spearman(x, y, pd.DataFrame({"label": label}), basis="linear")
    dummies = [(label == 1).astype(float), (label == 2).astype(float)]
    assert res.n_covariates == 2
    assert res.rho == pytest.approx(_hand_partial(x, y, dummies), abs=1e-12)
    as_rank = partial_spearman(x, y, pd.DataFrame({"label": label}), categorical=(), basis="linear")
    assert as_rank.n_covariates == 1
    assert as_rank.rho == pytest.approx(_hand_partial(x, y, [rankdata(label)]), abs=1e-12)


def test_one_covariate_matches_first_order_partial_formula():
    rng = np.random.default_rng(5)
    n = 60
    z = rng.normal(size=n)
    x = z + rng.normal(size=n)
    y = z + 0.5 * x + rng.normal(size=n)
    r_xy, r_xz, r_yz = (stats.spearmanr(a, b).statistic for a, b in ((x, y), (x, z), (y, z)))
    expect = (r_xy - r_xz * r_yz) / np.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    res = partial_spearman(x, y, z, basis="linear")
    assert res.rho == pytest.approx(expect, abs=1e-12)
    assert res.n_covariates == 1


def test_spline_basis_equals_hand_truncated_power_basis_then_spearman():
    """The cubic B-spline of the covariate's ranks spans the same functions as the truncated
    power basis 1, u, u², u³, (u − k)³₊ with the same knots: residuals on it, then scipy's
    Spearman ρ of the residuals, give the partial ρ; a slot 0–3 enters as dummies."""
    rng = np.random.default_rng(11)
    n = 120
    n_tokens = np.round(np.exp(rng.normal(3, 0.6, size=n)))
    slot = rng.integers(0, 4, size=n)
    x = np.log(n_tokens) + 0.3 * slot + rng.normal(size=n)
    y = np.sqrt(n_tokens) + rng.normal(size=n)
    r = rankdata(n_tokens)
    u = (r - r.min()) / (r.max() - r.min())
    knots = np.quantile(u, [1 / 3, 2 / 3])  # df = 5: two inner knots
    power = [u, u**2, u**3, *[np.clip(u - k, 0, None) ** 3 for k in knots]]
    slots = [(slot == s).astype(float) for s in (1, 2, 3)]
    z = np.column_stack([np.ones(n), *power, *slots])

    def resid(v):
        return v - z @ np.linalg.lstsq(z, v, rcond=None)[0]

    expect = stats.spearmanr(resid(rankdata(x)), resid(rankdata(y))).statistic
    res = partial_spearman(x, y, pd.DataFrame({"n_tokens": n_tokens, "slot": slot}), categorical=())
    assert res.rho == pytest.approx(expect, abs=1e-10)
    assert res.n_covariates == 5 + 3


def _confounded_rejections(basis: str, weight: float, reps: int, seed: int) -> float:
    """Share of ``reps`` draws (n = 200) where the one-sided 5% test of "partial ρ > 0.33"
    rejects, with a true conditional ρ of exactly 0.33 and ``weight`` × the (log-normal, skewed)
    token count added to both the statistic and the quality."""
    from mechsel.analysis.correlation import exceeds_bound_p

    rng = np.random.default_rng(seed)
    n, r = 200, 2 * np.sin(np.pi * 0.33 / 6)  # the normal correlation whose Spearman ρ is 0.33
    chol = np.linalg.cholesky(np.array([[1.0, r], [r, 1.0]]))
    hits = 0
    for _ in range(reps):
        z = np.round(np.exp(rng.normal(3, 0.6, size=n)))
        g = (z - z.mean()) / z.std()
        e = rng.normal(size=(n, 2)) @ chol.T
        res = partial_spearman(weight * g + e[:, 0], weight * g + e[:, 1], z, basis=basis)
        hits += bool(res.rho > 0 and exceeds_bound_p(res.rho, res.n - res.n_covariates, 0.33) < 0.05)
    return hits / reps


def test_spline_control_keeps_its_level_at_the_bound_when_length_drives_both_sides():
    """At the paper's bound the default (spline) control rejects at most 5.5% with a length
    confound of weight 2 (binomial se at 2,000 draws: 0.5%), where linear residualising leaks."""
    assert _confounded_rejections("spline", 2.0, 2000, seed=21) <= 0.055
    assert _confounded_rejections("spline", 0.0, 2000, seed=22) <= 0.055
    assert _confounded_rejections("linear", 2.0, 1000, seed=23) > 0.08


def test_planted_confound_is_removed():
    rng = np.random.default_rng(6)
    n = 200
    n_tokens = rng.integers(5, 60, size=n).astype(float)
    x = n_tokens + rng.normal(scale=5, size=n)  # statistic driven by length only
    y = n_tokens + rng.normal(scale=5, size=n)  # quality driven by length only
    raw = stats.spearmanr(x, y)
    assert raw.statistic > 0.8 and raw.pvalue < 1e-10
    res = partial_spearman(x, y, pd.DataFrame({"n_tokens": n_tokens}))
    assert abs(res.rho) < 0.15 and res.p_value > 0.05
    assert res.ci_low < 0 < res.ci_high


def test_planted_effect_beyond_length_is_found():
    rng = np.random.default_rng(7)
    n = 200
    n_tokens = rng.integers(5, 60, size=n).astype(float)
    signal = rng.normal(scale=8, size=n)
    x = n_tokens + signal + rng.normal(scale=3, size=n)
    y = n_tokens + signal + rng.normal(scale=3, size=n)
    res = partial_spearman(x, y, pd.DataFrame({"n_tokens": n_tokens}))
    assert res.rho > 0.5 and res.p_value < 1e-8 and res.ci_low > 0.3


def test_null_rejects_at_about_alpha():
    rng = np.random.default_rng(8)
    n, draws = 30, 2000
    rejected = 0
    for _ in range(draws):
        z, label = rng.normal(size=n), rng.integers(0, 2, size=n)
        x = z + label + rng.normal(size=n)  # both depend on the covariates, not on each other
        y = z - label + rng.normal(size=n)
        rejected += partial_spearman(x, y, np.column_stack([z, label])).p_value < 0.05
    # binomial sd at 2000 draws is 0.0049; allow three of them
    assert 0.035 <= rejected / draws <= 0.065


def test_incomplete_rows_dropped_and_constant_covariates_ignored():
    rng = np.random.default_rng(9)
    n = 40
    x, y, z = rng.normal(size=(3, n))
    label = np.array(["a", "b"] * (n // 2), dtype=object)
    x[0], y[1], z[2], label[3] = np.nan, np.inf, np.nan, None
    cov = pd.DataFrame({"z": z, "label": label, "const": 7.0})
    res = partial_spearman(x, y, cov, basis="linear")
    keep = np.ones(n, bool)
    keep[:4] = False
    expect = _hand_partial(x[keep], y[keep], [rankdata(z[keep]), (label[keep] == "b").astype(float)])
    assert res.n == n - 4 and res.n_covariates == 2
    assert res.rho == pytest.approx(expect, abs=1e-12)


def test_degenerate_cases_give_nan_not_errors():
    x, y = np.array([1.0, 3, 2, 6, 4, 5]), np.array([2.0, 6, 1, 5, 3, 4])  # neither in the covariates' span
    z = np.array([[1, 2, 3, 4, 5, 6], [1, 2, 3, 5, 4, 6], [2, 1, 3, 4, 5, 6]], dtype=float).T  # centred rank 3
    res = partial_spearman(x, y, z, basis="linear")  # n − q = 3: ρ and p defined, the interval (n − 3 − q = 0) not
    assert res.n_covariates == 3 and np.isfinite(res.rho) and np.isfinite(res.p_value) and np.isnan(res.ci_low)
    short = partial_spearman(x[:5], y[:5], z[:5], basis="linear")  # n − q = 2: nothing defined
    assert short.n_covariates == 3 and np.isnan(short.rho) and np.isnan(short.p_value)
    x = np.arange(6.0)
    explained = partial_spearman(x, np.sin(x), x)  # x is its own covariate: nothing left to correlate
    assert np.isnan(explained.rho) and explained.n == 6


def test_partial_spearman_errors_teach():
    x = np.arange(10.0)
    with pytest.raises(DataError, match="same length"):
        partial_spearman(x, x[:5], x)
    with pytest.raises(DataError, match="one covariate row per pair"):
        partial_spearman(x, x, x[:5])
    with pytest.raises(DataError, match=r"\[n\] or \[n, q\]"):
        partial_spearman(x, x, np.zeros((10, 2, 2)))
    with pytest.raises(ConfigError, match="sequence of column names"):
        partial_spearman(x, x, x, categorical="label")
    with pytest.raises(ConfigError, match="level"):
        partial_spearman(x, x, x, level=95)


def _grid_frames(n=60, seed=0):
    rng = np.random.default_rng(seed)
    ids = [f"ex{i}" for i in range(n)]
    n_tokens = rng.integers(5, 60, size=n).astype(float)
    label = rng.choice(["neg", "pos"], size=n)
    quality = n_tokens / 10 + rng.normal(size=n)
    rows = []
    for family in ("moments", "sae"):
        for layer in (0, 1):
            for stat in ("mean", "kurtosis"):
                real = (family == "moments") * (layer == 1) * (stat == "kurtosis")
                v = n_tokens / 10 + 2 * real * (quality - n_tokens / 10) + rng.normal(size=n)
                rows.append(
                    pd.DataFrame(
                        {
                            "example_id": ids,
                            "family": family,
                            "mask": "full",
                            "layer": layer,
                            "statistic": stat,
                            "value": v,
                            "n_tokens": n_tokens + (family == "sae"),  # per-line token counts, as the collect stage writes them
                        }
                    )
                )
    stats_frame = pd.concat(rows, ignore_index=True)
    qframe = pd.DataFrame({"example_id": ids, "quality": quality})
    cov = pd.DataFrame({"example_id": ids[::-1], "n_tokens": n_tokens[::-1], "label": label[::-1]})
    return stats_frame, qframe, cov


def test_partial_grid_matches_partial_spearman_and_bh_within_families():
    s, q, cov = _grid_frames()
    grid = partial_correlation_grid(s, q, cov, basis="linear")
    assert list(grid.columns) == ["family", "mask", "layer", "statistic", *PARTIAL_COLUMNS]
    assert len(grid) == 8 and (grid["covariates"] == "n_tokens, label").all()
    qmap, cmap = q.set_index("example_id")["quality"], cov.set_index("example_id")
    for _, row in grid.iterrows():
        cell = s[(s["family"] == row["family"]) & (s["layer"] == row["layer"]) & (s["statistic"] == row["statistic"])]
        ids = cell["example_id"]
        design = [rankdata(cmap.loc[ids, "n_tokens"]), (cmap.loc[ids, "label"].to_numpy() == "pos").astype(float)]
        expect = _hand_partial(cell["value"].to_numpy(), qmap.loc[ids].to_numpy(), design)
        assert row["rho_partial"] == pytest.approx(expect, abs=1e-12)
        assert row["n_partial"] == 60 and row["n_covariates"] == 2
    for _, fam in grid.groupby("fdr_family_partial"):
        assert len(fam) == 4 and (fam["family_size_partial"] == 4).all()
        np.testing.assert_allclose(fam["q_partial"], benjamini_hochberg(fam["p_partial"].to_numpy())[0])
    real = (grid["family"] == "moments") & (grid["layer"] == 1) & (grid["statistic"] == "kurtosis")
    assert grid.loc[real, "significant_partial"].all() and (grid.loc[real, "rho_partial"] > 0.8).all()
    raw = (
        s.merge(q, on="example_id")
        .groupby(["family", "layer", "statistic"])
        .apply(lambda c: stats.spearmanr(c["value"], c["quality"]).statistic, include_groups=False)
    )
    assert (raw > 0.6).all()  # every cell is confounded by length before the adjustment
    assert (grid.loc[~real, "rho_partial"].abs() < 0.35).all()
    assert set(grid["fdr_family_partial"]) == {"family=moments", "family=sae"}
    assert set(partial_correlation_grid(s, q, cov, fdr_family="global")["family_size_partial"]) == {8}


def test_partial_grid_uses_covariate_columns_of_the_lines():
    s, q, _ = _grid_frames()
    grid = partial_correlation_grid(s, q, ["n_tokens"])
    row = grid[(grid["family"] == "sae") & (grid["layer"] == 0) & (grid["statistic"] == "mean")].iloc[0]
    cell = s[(s["family"] == "sae") & (s["layer"] == 0) & (s["statistic"] == "mean")]
    qv = q.set_index("example_id")["quality"].loc[cell["example_id"]].to_numpy()
    expect = partial_spearman(cell["value"].to_numpy(), qv, cell["n_tokens"].to_numpy())
    assert row["rho_partial"] == pytest.approx(expect.rho, abs=1e-12) and row["n_covariates"] == expect.n_covariates == 5


def test_partial_grid_missing_covariates_shrink_n():
    s, q, cov = _grid_frames()
    grid = partial_correlation_grid(s, q, cov.iloc[5:])
    assert (grid["n_partial"] == 55).all()


def test_partial_grid_errors_teach():
    s, q, cov = _grid_frames()
    with pytest.raises(DataError, match="not on the statistics lines"):
        partial_correlation_grid(s, q, ["length"])
    with pytest.raises(DataError, match="several lines"):
        partial_correlation_grid(s, q, pd.concat([cov, cov]))
    with pytest.raises(DataError, match="example_id"):
        partial_correlation_grid(s, q, cov.drop(columns="example_id"))
    with pytest.raises(DataError, match="No .* appears in the covariates frame"):
        partial_correlation_grid(s, q, cov.assign(example_id="other" + cov["example_id"]))
    with pytest.raises(ConfigError, match="No covariates"):
        partial_correlation_grid(s, q, [])
    with pytest.raises(ConfigError, match="cell keys"):
        partial_correlation_grid(s, q, ["layer"])
