"""The three-way verdict: each outcome of each part on constructed inputs, the equivalence
decision against a hand-computed TOST, and the overall combination."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mechsel.analysis import VerdictSettings, compare_selectors, summary_table, verdict
from mechsel.analysis.simultaneous import max_t_bands
from mechsel.analysis.verdict import correlation_part, gain_part
from mechsel.errors import ConfigError, DataError

RANGES = {"accuracy": (0.0, 1.0)}


def _summary(gain=0.0, noise=0.005, seeds=20, seed=0, budgets=(4, 8), exact_below=2):
    rng = np.random.default_rng(seed)
    rows = []
    for budget in budgets:
        base = 0.6 + 0.08 * rng.normal(size=seeds)
        act = base + gain + noise * rng.normal(size=seeds)
        for s in range(seeds):
            rows.append(
                {
                    "task": "sst2",
                    "metric": "accuracy",
                    "budget": budget,
                    "seed": s,
                    "selector": "random",
                    "family": "baseline",
                    "score": base[s],
                }
            )
            rows.append(
                {
                    "task": "sst2",
                    "metric": "accuracy",
                    "budget": budget,
                    "seed": s,
                    "selector": "act",
                    "family": "activation",
                    "score": act[s],
                }
            )
    return summary_table(compare_selectors(pd.DataFrame(rows), bounds=RANGES, exact_below=exact_below))


def _grid(rhos, n, task="sst2", above_alpha=0.05, seed=0, n_draws=4000):
    """A family's grid lines with max-T bands for independent cells (the ``max_t`` rule's columns)."""
    rhos = np.asarray(rhos, dtype=float)
    bands = max_t_bands(
        rhos, np.full(rhos.size, n), np.eye(rhos.size), 0.9, bound=0.33, above_alpha=above_alpha, n_draws=n_draws, seed=seed
    )
    return pd.DataFrame(
        {
            "task": task,
            "family": "moments",
            "mask": "full",
            "layer": np.arange(len(rhos)),
            "statistic": "kurtosis",
            "rho": rhos,
            "n": n,
            "fdr_family": f"task={task}, family=moments",
            "band_level": 0.9,
            "band_low": bands.low,
            "band_high": bands.high,
            "p_above_adjusted": bands.p_above,
            "critical": bands.critical,
            "critical_above": bands.critical_above,
        }
    )


def test_gain_holds_only_when_every_interval_is_inside_the_margin():
    part = gain_part(_summary(gain=0.0, noise=0.005), VerdictSettings(gain_claim="equivalence"), RANGES)
    assert part.outcome == "holds" and all(x["equivalent"] for x in part.lines)
    assert "equivalent to random within ±0.03" in part.text


def test_gain_does_not_hold_when_a_selector_beats_random():
    part = gain_part(_summary(gain=0.1, noise=0.01), VerdictSettings(), RANGES)
    assert part.outcome == "does_not_hold" and all(x["beats_random"] for x in part.lines)
    assert "act beats random" in part.text


def test_gain_is_inconclusive_when_the_design_cannot_tell_and_says_its_mde():
    part = gain_part(_summary(gain=0.0, noise=0.15, seeds=5), VerdictSettings(), RANGES)
    assert part.outcome == "inconclusive"
    assert all(x["mde_exceeds_margin"] for x in part.lines) and "could only detect gains of" in part.text
    for x in part.lines:
        assert x["mde"] > x["margin"] == pytest.approx(0.03)
        assert {"task", "budget", "diff", "ci_low", "ci_high", "mde", "margin", "outcome"} <= set(x)


def test_equivalence_decision_matches_a_hand_computed_tost():
    rng = np.random.default_rng(5)
    for trial in range(30):
        gain = rng.uniform(-0.04, 0.04)
        noise = rng.uniform(0.002, 0.03)
        seeds = int(rng.integers(4, 25))
        summary = _summary(gain=gain, noise=noise, seeds=seeds, seed=trial, budgets=(4,))
        line = gain_part(summary, VerdictSettings(margin=0.03, gain_claim="equivalence"), RANGES).lines[0]
        r = summary.iloc[0]
        se = r["sd_diff"] / np.sqrt(r["n_pairs"])
        df = r["n_pairs"] - 1
        p_low = stats.t.sf((r["mean_diff"] + 0.03) / se, df)  # H0: diff ≤ −margin
        p_high = stats.t.cdf((r["mean_diff"] - 0.03) / se, df)  # H0: diff ≥ +margin
        assert line["equivalent"] == bool(max(p_low, p_high) < 0.05), trial


def test_margin_is_a_fraction_of_the_metric_range():
    part = gain_part(_summary(gain=0.0, noise=0.005).assign(metric="bleu"), VerdictSettings(margin=0.03), {"bleu": (0.0, 100.0)})
    assert part.lines[0]["margin"] == pytest.approx(3.0)


def test_correlation_outcomes():
    s = VerdictSettings()
    holds = correlation_part(_grid(np.full(10, 0.02), 2000), s)
    assert holds.outcome == "holds" and holds.lines[0]["cells_shown_below"] == 10
    strong = correlation_part(_grid([0.05, 0.8, -0.1], 100), s)
    assert strong.outcome == "does_not_hold" and strong.lines[0]["shown_above"] == ["layer 1 kurtosis (full)"]
    assert "layer 1 kurtosis (full)" in strong.text
    unsure = correlation_part(_grid([0.05, 0.3, -0.1], 48), s)
    assert unsure.outcome == "inconclusive" and "detectable ≥" in unsure.text and "task=sst2, family=moments: max |ρ| 0.30" in unsure.text
    assert unsure.lines[0]["detectable_rho"] > 0.33


def test_bonferroni_is_stricter_than_intersection_union():
    grid = _grid(np.r_[0.12, np.zeros(99)], 400)
    assert correlation_part(grid, VerdictSettings(rho_adjust="intersection_union")).outcome == "holds"
    b = correlation_part(grid, VerdictSettings(rho_adjust="bonferroni"))
    assert b.lines[0]["interval_level"] == pytest.approx(1 - 0.1 / 100)
    lo, hi = np.tanh(np.arctanh(0.12) + np.array([-1, 1]) * stats.norm.isf(0.001 / 2) * np.sqrt((1 + 0.12**2 / 2) / 397))
    assert b.lines[0]["widest_abs_bound"] == pytest.approx(max(abs(lo), abs(hi)))


def test_max_t_band_of_independent_cells_is_the_sidak_interval():
    grid = _grid(np.r_[0.12, np.zeros(99)], 400)
    part = correlation_part(grid, VerdictSettings())
    sidak = stats.norm.isf((1 - 0.9 ** (1 / 100)) / 2)
    assert part.lines[0]["critical"] == pytest.approx(sidak, abs=0.05)
    assert part.lines[0]["critical"] <= part.lines[0]["critical_bonferroni"] + 0.05  # independent cells: Šidák ≈ Bonferroni
    assert part.outcome == "holds" and part.lines[0]["interval"] == "max-T simultaneous band"


def test_max_t_rule_needs_the_band_columns():
    with pytest.raises(DataError, match="simultaneous_grid"):
        correlation_part(_grid([0.1, 0.2], 100).drop(columns=["band_low"]), VerdictSettings())


@pytest.mark.parametrize("adjust", ["max_t", "bonferroni"])
def test_overall_does_not_hold_at_the_boundary_at_most_alpha_across_two_task_families(adjust):
    """Every cell of two task families (180 independent cells each, n = 200) at |ρ| = 0.33
    exactly, ρ̂ drawn on the Fisher scale: "some cell is above" in ≤ 5% of 500 verdicts, since
    each family is judged at alpha / 2."""
    rng = np.random.default_rng(7)
    se = np.sqrt((1 + 0.33**2 / 2) / 197)
    wrong = 0
    for rep in range(500):
        fams = []
        for task in ("sst2", "ag_news"):
            rho = np.tanh(np.arctanh(0.33) + se * rng.standard_normal(180)) * rng.choice([-1, 1], 180)
            fams.append(_grid(rho, 200, task=task, above_alpha=0.025, seed=rep, n_draws=1000))
        wrong += correlation_part(pd.concat(fams, ignore_index=True), VerdictSettings(rho_adjust=adjust)).outcome == "does_not_hold"
    assert wrong / 500 <= 0.05


def test_overall_combines_the_parts_and_names_the_deciding_one():
    weak, strong, unsure = _grid(np.full(10, 0.02), 2000), _grid([0.05, 0.8], 100), _grid([0.05, 0.3], 48)
    v = verdict(_summary(gain=0.0), weak, bounds=RANGES, model="tiny")
    assert v.outcome == "holds" and v.text.startswith("The paper's finding HOLDS on tiny")
    v = verdict(_summary(gain=0.0), strong, bounds=RANGES)
    assert v.outcome == "does_not_hold" and v.decided_by == "correlation" and "DOES NOT HOLD" in v.text
    v = verdict(_summary(gain=0.1, noise=0.01), unsure, bounds=RANGES)
    assert v.outcome == "does_not_hold" and v.decided_by == "gain"
    v = verdict(_summary(gain=0.0), unsure, bounds=RANGES)
    assert v.outcome == "inconclusive" and v.decided_by == "correlation" and "INCONCLUSIVE" in v.text
    d = v.to_dict()
    assert d["outcome"] == "inconclusive" and d["parts"]["gain"]["outcome"] == "holds"
    assert d["parts"]["correlation"]["outcome"] == "inconclusive" and d["settings"]["margin"] == 0.03
    assert verdict(_summary(gain=0.0), None, bounds=RANGES).correlation is None


def test_bad_settings_and_inputs_teach():
    with pytest.raises(ConfigError, match="margin"):
        VerdictSettings(margin=3)
    with pytest.raises(ConfigError, match="rho_adjust"):
        VerdictSettings(rho_adjust="holm")
    with pytest.raises(DataError, match="lacks columns"):
        gain_part(pd.DataFrame({"selector": ["a"]}), VerdictSettings())
    with pytest.raises(DataError, match="lacks columns"):
        correlation_part(pd.DataFrame({"rho": [0.1]}), VerdictSettings())


def _scores(diffs, budget=4, base=0.6):
    rows = []
    for s_, d in enumerate(diffs):
        rows.append(
            {"task": "sst2", "metric": "accuracy", "budget": budget, "seed": s_, "selector": "random", "family": "baseline", "score": base}
        )
        rows.append(
            {
                "task": "sst2",
                "metric": "accuracy",
                "budget": budget,
                "seed": s_,
                "selector": "act",
                "family": "activation",
                "score": base + d,
            }
        )
    return pd.DataFrame(rows)


def test_a_reliably_worse_line_is_not_superior():
    """The paper's claim is "no gain": a line reliably below random satisfies it (and is reported),
    where the old equivalence rule left it INCONCLUSIVE."""
    rng = np.random.default_rng(11)
    diffs = -0.04 + 0.02 * rng.normal(size=100)
    summary = summary_table(compare_selectors(_scores(diffs), bounds=RANGES))
    part = gain_part(summary, VerdictSettings(), RANGES)
    line = part.lines[0]
    # hand computation: the one-sided 95% upper bound of the paired t
    upper = diffs.mean() + stats.t.ppf(0.95, 99) * diffs.std(ddof=1) / 10
    assert line["bound_high"] == pytest.approx(upper)
    assert part.outcome == "holds" and line["worse_than_random"] and "reliably worse than random" in part.text
    assert gain_part(summary, VerdictSettings(gain_claim="equivalence"), RANGES).outcome == "inconclusive"


def test_three_identical_gains_of_one_query_do_not_decide():
    """3 seeds each +1/48 (the issue's synthetic input): exact sign-flip p = 0.25, not DOES NOT HOLD."""
    summary = summary_table(compare_selectors(_scores(np.full(3, 1 / 48)), bounds=RANGES))
    part = gain_part(summary, VerdictSettings(), RANGES)
    assert summary.iloc[0]["p_value"] == pytest.approx(0.25) and summary.iloc[0]["test"] == "sign-flip exact"
    assert part.outcome == "inconclusive" and not part.lines[0]["beats_random"]
    assert part.lines[0]["mde"] == np.inf and "too few seeds" in part.text
    # zero differences from 3 seeds are no evidence of equivalence either
    flat = summary_table(compare_selectors(_scores(np.zeros(3)), bounds=RANGES))
    assert gain_part(flat, VerdictSettings(gain_claim="equivalence"), RANGES).outcome == "inconclusive"


def test_gain_claim_is_checked():
    with pytest.raises(ConfigError, match="gain_claim"):
        VerdictSettings(gain_claim="superiority")
