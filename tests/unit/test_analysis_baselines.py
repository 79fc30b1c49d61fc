"""Baselines beside the selectors: a task the model cannot do is flagged (and only such a task), the
verdict says so, and every selector family gets its best line against random."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mechsel.analysis import (
    baseline_check,
    compare_selectors,
    family_best,
    format_baselines,
    format_family_best,
    summary_table,
    verdict,
)
from mechsel.experiment.stages.evaluate import majority_share
from mechsel.icl.metrics import METRIC_RANGES

FAMILIES = {"random": "baseline", "activation": "activation", "kate": "similarity", "bm25": "similarity", "margin": "uncertainty"}


def _scores(task: str, means: dict[str, float], seeds: int = 6, noise: float = 0.01) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [
        {
            "task": task,
            "metric": "accuracy",
            "budget": 4,
            "seed": s,
            "selector": sel,
            "family": FAMILIES[sel],
            "score": m + noise * rng.normal(),
        }
        for sel, m in means.items()
        for s in range(seeds)
    ]
    return pd.DataFrame(rows)


def _baselines(task: str, majority: float, zero_shot: float = 0.5, metric: str = "accuracy") -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "task": task,
                "metric": metric,
                "zero_shot": zero_shot,
                "zero_shot_ci_low": zero_shot - 0.05,
                "zero_shot_ci_high": zero_shot + 0.05,
                "majority": majority,
                "majority_label": "positive" if np.isfinite(majority) else "",
                "n_test": 100,
            }
        ]
    )


def test_majority_share_of_the_test_labels():
    assert majority_share([0, 1, 1]) == (2 / 3, 1)
    assert majority_share([2, 0, 0, 2]) == (0.5, 0)  # a tie: the smaller index
    share, label = majority_share([None, None])
    assert np.isnan(share) and label is None


def test_a_task_whose_selectors_all_score_the_majority_share_is_flagged_and_the_verdict_says_so():
    scores = pd.concat(
        [
            _scores("flat", {"random": 0.6, "activation": 0.6, "kate": 0.59, "margin": 0.6}),  # majority share 0.6
            _scores("easy", {"random": 0.8, "activation": 0.79, "kate": 0.85, "margin": 0.8}),  # majority share 0.5
        ],
        ignore_index=True,
    )
    comparison = compare_selectors(scores, bounds=METRIC_RANGES)
    checked = baseline_check(pd.concat([_baselines("flat", 0.6), _baselines("easy", 0.5)], ignore_index=True), comparison)
    flags = checked.set_index("task")["below_majority"]
    assert bool(flags["flat"]) and not bool(flags["easy"])
    assert checked.set_index("task").loc["easy", "lines_above_majority"] == 4

    v = verdict(summary_table(comparison), settings=None, bounds=METRIC_RANGES, baselines=checked)
    assert "Caution, task flat: no selector is shown above its majority-class share 0.600" in v.text
    assert "task easy" not in v.text
    saved = v.to_dict()["baselines"]
    assert saved["flat"]["below_majority"] is True and saved["easy"]["below_majority"] is False
    assert saved["easy"]["zero_shot"] == 0.5 and saved["easy"]["majority"] == 0.5 and saved["easy"]["best_selector"] == "kate"

    printed = format_baselines(checked)
    assert "NO: FLAGGED" in printed and "FLAG task flat:" in printed and "4 of 4 lines" in printed
    assert "flat" in printed.splitlines()[2] and "0.600 (positive)" in printed


def test_one_selector_reliably_above_the_majority_share_clears_the_flag_but_a_lucky_mean_does_not():
    noisy = _scores("t", {"random": 0.6, "activation": 0.6, "kate": 0.62, "margin": 0.6}, noise=0.1)
    checked = baseline_check(_baselines("t", 0.6), compare_selectors(noisy, bounds=METRIC_RANGES))
    assert checked["best_mean"].iloc[0] > 0.6 and bool(checked["below_majority"].iloc[0])  # a mean above, no interval above
    clear = _scores("t", {"random": 0.6, "activation": 0.6, "kate": 0.7, "margin": 0.6})
    checked = baseline_check(_baselines("t", 0.6), compare_selectors(clear, bounds=METRIC_RANGES))
    assert not bool(checked["below_majority"].iloc[0]) and checked["lines_above_majority"].iloc[0] == 1


def test_a_single_seed_is_judged_by_its_mean_and_generation_tasks_are_never_flagged():
    one = _scores("t", {"random": 0.6, "activation": 0.7}, seeds=1)
    checked = baseline_check(_baselines("t", 0.6), compare_selectors(one))
    assert not bool(checked["below_majority"].iloc[0])
    gen = _scores("g", {"random": 10.0, "activation": 9.0}).assign(metric="bleu")
    checked = baseline_check(_baselines("g", float("nan"), zero_shot=3.0, metric="bleu"), compare_selectors(gen))
    assert not bool(checked["below_majority"].iloc[0]) and "—" in format_baselines(checked)


def test_best_of_each_family_is_picked_by_mean_against_its_own_baseline():
    scores = _scores("t", {"random": 0.6, "activation": 0.61, "kate": 0.7, "bm25": 0.65, "margin": 0.55})
    comparison = compare_selectors(scores, bounds=METRIC_RANGES)
    best = family_best(comparison)
    assert list(best["family"]) == ["activation", "similarity", "uncertainty"]  # activation first; random (its own baseline) left out
    sim = best.set_index("family").loc["similarity"]
    assert sim["selector"] == "kate" and sim["n_runs"] == 2 and sim["baseline"] == "random"
    line = comparison.set_index("selector").loc["kate"]
    assert sim["mean_diff"] == line["mean_diff"] and sim["diff_ci_low"] == line["diff_ci_low"]
    text = format_family_best(best)
    assert "kate (2)" in text and "margin (1)" in text and "bm25" not in text
