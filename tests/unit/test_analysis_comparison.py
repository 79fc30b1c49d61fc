"""Selector comparison (bounded t-intervals, paired tests, d_z) and the summary table, against scipy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mechsel.analysis import compare_selectors, mean_ci, paired_comparison, summary_table
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
        for sel, fam, delta in (
            ("random", "baseline", 0.0),
            ("act_kurt", "activation", gain),
            ("act_mean", "activation", -0.01),
            ("knn", "classic", 0.05),
        ):
            noise = 0.0 if sel == "random" else 0.01 * rng.normal(size=seeds)
            for s in range(seeds):
                rows.append(
                    {
                        "task": "sst2",
                        "metric": "accuracy",
                        "budget": budget,
                        "seed": s,
                        "selector": sel,
                        "family": fam,
                        "score": base[s] + delta + (noise[s] if sel != "random" else 0.0),
                    }
                )
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


def test_bounded_intervals_stay_in_range_and_keep_the_t_interval_inside():
    v = np.array([0.99, 0.55, 1.0, 0.98, 0.97])  # the plain t-interval runs past 1
    lo_t, hi_t = stats.t.interval(0.95, len(v) - 1, loc=v.mean(), scale=stats.sem(v))
    assert hi_t > 1.0
    _, _, lo, hi = mean_ci(v, bounds=(0.0, 1.0))
    assert (lo, hi) == pytest.approx((max(lo_t, 0.0), 1.0))
    scores = pd.DataFrame(
        {
            "selector": ["random"] * 5 + ["act"] * 5,
            "budget": 4,
            "seed": list(range(5)) * 2,
            "metric": "accuracy",
            "score": np.r_[v, v[::-1]],
        }
    )
    comp = compare_selectors(scores, bounds={"accuracy": (0.0, 1.0)}, exact_below=2)
    assert (comp["ci_high"] <= 1.0).all() and (comp["ci_low"] >= 0.0).all()
    act = comp[comp["selector"] == "act"].iloc[0]
    d = v[::-1] - v
    dlo, dhi = stats.t.interval(0.95, 4, loc=d.mean(), scale=stats.sem(d))
    assert act["test"] == "paired t" and act["interval"] == "t"
    assert (act["diff_ci_low"], act["diff_ci_high"]) == pytest.approx((max(dlo, -1.0), min(dhi, 1.0)))
    # by default 5 seeds use the exact sign-flip test, whose smallest p-value (2/32) is above 0.05:
    # it cannot reject, so the interval is the whole range of a difference and the mde infinite
    exact = compare_selectors(scores, bounds={"accuracy": (0.0, 1.0)})
    act = exact[exact["selector"] == "act"].iloc[0]
    assert act["test"] == "sign-flip exact"
    assert (act["diff_ci_low"], act["diff_ci_high"]) == (-1.0, 1.0)
    assert act["mde"] == np.inf


def test_identical_seed_differences_do_not_decide():
    """3 seeds each +1/48: the paired t would say t = ∞, p = 0; the exact sign-flip p is 2/8."""
    base = np.array([0.5, 0.6, 0.7])
    scores = pd.DataFrame(
        {
            "selector": ["random"] * 3 + ["act"] * 3,
            "budget": 4,
            "seed": [0, 1, 2] * 2,
            "metric": "accuracy",
            "score": np.r_[base, base + 1 / 48],
        }
    )
    act = compare_selectors(scores, bounds={"accuracy": (0.0, 1.0)}).set_index("selector").loc["act"]
    assert act["p_value"] == pytest.approx(0.25)
    assert np.isnan(act["p_ttest"]) and np.isnan(act["t_stat"])
    assert act["diff_ci_high"] - act["diff_ci_low"] > 0.5 and act["mde"] > 0


def test_per_query_predictions_widen_a_zero_variance_line():
    """20 seeds, the selector always gets the same one extra query right: with the predictions the
    interval resamples queries and does not collapse; the p-value agrees with it."""
    rows, preds = [], []
    for seed in range(20):
        for sel, extra in (("random", 0), ("act", 1)):
            correct = np.zeros(48)
            correct[:24] = 1
            correct[30] = extra
            rows.append({"selector": sel, "budget": 4, "seed": seed, "metric": "accuracy", "score": correct.mean()})
            preds += [{"selector": sel, "budget": 4, "seed": seed, "query_id": str(q), "correct": bool(c)} for q, c in enumerate(correct)]
    comp = compare_selectors(pd.DataFrame(rows), bounds={"accuracy": (0.0, 1.0)}, predictions=pd.DataFrame(preds))
    act = comp.set_index("selector").loc["act"]
    assert act["test"] == "seed×query bootstrap" and act["interval"] == "seed×query bootstrap"
    assert act["diff_ci_low"] <= 0.0 < act["diff_ci_high"] and act["p_value"] > 0.05
    plain = compare_selectors(pd.DataFrame(rows), bounds={"accuracy": (0.0, 1.0)}).set_index("selector").loc["act"]
    assert plain["test"] == "sign-flip Monte Carlo" and plain["p_value"] < 0.001  # seeds alone: every one agrees


def _grid(rho, n=48, task="sst2"):
    return pd.DataFrame(
        {
            "task": task,
            "family": "moments",
            "mask": "full",
            "layer": [0, 1],
            "statistic": ["mean", "kurtosis"],
            "rho": [0.05, rho],
            "n": n,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "q_value": 0.5,
            "fdr_family": f"task={task}, family=moments",
        }
    )


def test_summary_lists_every_competing_selector_with_its_own_cell():
    comp = compare_selectors(_scores(gain=0.0), bounds={"accuracy": (0.0, 1.0)})
    cells = pd.DataFrame(
        {"task": ["sst2", "sst2"], "selector": ["act_kurt", "act_mean"], "layer": [1, 0], "statistic": ["kurtosis", "mean"], "mask": "full"}
    )
    table = summary_table(comp, _grid(-0.21), cells=cells)
    assert len(table) == 4 and set(table["selector"]) == {"act_kurt", "act_mean"}  # knn is not an activation selector
    assert (table["n_competing"] == 2).all()
    kurt = table[table["selector"] == "act_kurt"].iloc[0]
    mean = table[table["selector"] == "act_mean"].iloc[0]
    assert kurt["cell"] == "layer 1 kurtosis (full)" and kurt["cell_rho"] == pytest.approx(-0.21)
    assert mean["cell"] == "layer 0 mean (full)" and mean["cell_rho"] == pytest.approx(0.05)
    assert table["max_abs_rho"].iloc[0] == pytest.approx(0.21) and table["max_rho_cell"].iloc[0] == "layer 1 kurtosis (full)"
    assert {"mde", "diff_ci_low", "diff_ci_high"} <= set(table.columns) and (table["mde"] > 0).all()
    text = format_summary(table)
    assert "act_kurt" in text and "layer 1 kurtosis (full) (-0.21)" in text and "mde" in text


def test_summary_needs_family_or_names():
    comp = compare_selectors(_scores().drop(columns="family"))
    with pytest.raises(DataError, match="family"):
        summary_table(comp)
    assert summary_table(comp, selectors=["act_kurt"])["selector"].eq("act_kurt").all()


def test_comparison_columns_are_defined_once():
    """The summary's comparison columns are a subset of the one definition in analysis.comparison."""
    from mechsel.analysis.comparison import COMPARISON_COLUMNS, PAIRED_COLUMNS
    from mechsel.analysis.summary import _COMPARISON_COLUMNS

    assert set(_COMPARISON_COLUMNS) <= set(COMPARISON_COLUMNS) and set(PAIRED_COLUMNS) < set(COMPARISON_COLUMNS)
