"""Selector comparison (t-interval, paired tests, d_z), summary table and verdict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mechsel.analysis import compare_selectors, mean_ci, paired_comparison, summary_table, verdict
from mechsel.analysis.summary import format_summary
from mechsel.errors import DataError


def test_mean_ci_matches_scipy_t_interval():
    v = np.array([0.71, 0.74, 0.69, 0.80, 0.77, 0.73])
    mean, sd, lo, hi = mean_ci(v)
    exp_lo, exp_hi = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert mean == pytest.approx(v.mean()) and sd == pytest.approx(v.std(ddof=1))
    assert (lo, hi) == pytest.approx((exp_lo, exp_hi))
    assert np.isnan(mean_ci([0.5])[2])


def test_paired_comparison_matches_scipy():
    a = np.array([0.80, 0.75, 0.82, 0.79, 0.85, 0.77])
    b = np.array([0.78, 0.70, 0.80, 0.80, 0.81, 0.72])
    out = paired_comparison(a, b)
    d = a - b
    assert out["mean_diff"] == pytest.approx(d.mean())
    assert out["cohen_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert out["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert out["p_wilcoxon"] == pytest.approx(stats.wilcoxon(a, b).pvalue)
    same = paired_comparison(a, a)
    assert same["p_ttest"] == 1.0 and same["cohen_dz"] == 0.0


def _scores(gain=0.0, seeds=8, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for budget in (4, 8):
        base = 0.7 + 0.05 * rng.normal(size=seeds)
        for sel, fam, delta in (("random", "baseline", 0.0), ("act_kurt", "activation", gain), ("act_mean", "activation", -0.01),
                                ("knn", "classic", 0.05)):
            noise = 0.0 if sel == "random" else 0.01 * rng.normal(size=seeds)
            for s in range(seeds):
                rows.append({"task": "sst2", "metric": "accuracy", "budget": budget, "seed": s, "selector": sel,
                             "family": fam, "score": base[s] + delta + (noise[s] if sel != "random" else 0.0)})
    return pd.DataFrame(rows)


def test_compare_selectors_pairs_by_seed():
    scores = _scores(gain=0.03)
    comp = compare_selectors(scores)
    assert comp.iloc[0]["selector"] == "random" and np.isnan(comp.iloc[0]["p_ttest"])
    row = comp[(comp["budget"] == 4) & (comp["selector"] == "act_kurt")].iloc[0]
    sub = scores[scores["budget"] == 4]
    a = sub[sub["selector"] == "act_kurt"].sort_values("seed")["score"].to_numpy()
    b = sub[sub["selector"] == "random"].sort_values("seed")["score"].to_numpy()
    assert row["p_ttest"] == pytest.approx(stats.ttest_rel(a, b).pvalue)
    assert row["mean"] == pytest.approx(a.mean()) and row["n_seeds"] == 8
    assert row["family"] == "activation" and row["better"]
    # shuffled input rows give the same answer: pairing is by seed, not position
    comp2 = compare_selectors(scores.sample(frac=1.0, random_state=1))
    pd.testing.assert_frame_equal(comp, comp2)


def test_compare_selectors_errors():
    scores = _scores()
    with pytest.raises(DataError, match="No 'random' runs"):
        compare_selectors(scores[scores["selector"] != "random"])
    with pytest.raises(DataError, match="several runs"):
        compare_selectors(pd.concat([scores, scores]))
    with pytest.raises(DataError, match="lacks columns"):
        compare_selectors(scores.drop(columns="seed"))


def _grid(rho, q=0.01):
    return pd.DataFrame({"task": "sst2", "mask": "full", "layer": [0, 1], "statistic": ["mean", "kurtosis"],
                         "rho": [0.05, rho], "q_value": [0.9, q]})


def test_summary_and_verdict_holds_when_no_gain_and_weak_rho():
    comp = compare_selectors(_scores(gain=0.0))
    table = summary_table(comp, _grid(-0.21))
    assert list(table["budget"]) == [4, 8]
    assert set(table["best_selector"]) <= {"act_kurt", "act_mean"}  # knn is not an activation selector
    assert table["max_abs_rho"].iloc[0] == pytest.approx(0.21) and table["max_rho_cell"].iloc[0] == "layer 1 kurtosis (full)"
    v = verdict(table, model="tiny")
    assert v.holds and not v.reliable_gain and v.weak_correlation
    assert "HOLDS" in v.text and "0.21" in v.text and len(v.details) == 2
    assert "act_" in format_summary(table)


def test_verdict_fails_on_gain_or_strong_rho():
    gain = verdict(summary_table(compare_selectors(_scores(gain=0.05)), _grid(0.1)))
    assert gain.reliable_gain and not gain.holds and "DOES NOT HOLD" in gain.text
    strong = verdict(summary_table(compare_selectors(_scores(gain=0.0)), _grid(0.6)))
    assert not strong.weak_correlation and not strong.holds and "stronger than the paper" in strong.text


def test_verdict_discounts_a_strong_rho_that_is_not_significant():
    chance = verdict(summary_table(compare_selectors(_scores(gain=0.0)), _grid(0.6, q=0.2)))
    assert chance.weak_correlation and chance.holds and chance.max_abs_rho == pytest.approx(0.6)
    assert "not significant after BH" in chance.text and "q = 0.2" in chance.text
    no_q = verdict(summary_table(compare_selectors(_scores(gain=0.0)), _grid(0.6).drop(columns="q_value")))
    assert not no_q.weak_correlation  # without q-values the point estimate decides


def test_summary_needs_family_or_names():
    comp = compare_selectors(_scores().drop(columns="family"))
    with pytest.raises(DataError, match="family"):
        summary_table(comp)
    assert summary_table(comp, selectors=["act_kurt"])["best_selector"].eq("act_kurt").all()
