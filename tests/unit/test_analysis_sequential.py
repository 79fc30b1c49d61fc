"""The gain part's group-sequential design: boundaries against scipy, error under optional stopping, power."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mechsel.analysis.sequential import SequentialDesign, boundaries, line_looks, pending
from mechsel.errors import ConfigError


def test_one_look_is_the_fixed_design():
    d = SequentialDesign((100,), alpha=0.05)
    assert boundaries(d)[0] == pytest.approx(stats.norm.isf(0.05))


def test_two_look_boundaries_spend_what_they_say():
    """P(Z1 ≥ c1) = α t1^ρ and P(Z1 < c1, Z2 ≥ c2) = α − α t1^ρ, with corr(Z1, Z2) = √(n1/n2): by scipy."""
    d = SequentialDesign((50, 200), alpha=0.05, rho=2.0)
    c1, c2 = boundaries(d)
    a1 = 0.05 * (50 / 200) ** 2
    assert stats.norm.sf(c1) == pytest.approx(a1, rel=1e-6)
    r = np.sqrt(50 / 200)
    joint = stats.multivariate_normal(mean=[0, 0], cov=[[1, r], [r, 1]])
    # P(Z1 < c1, Z2 ≥ c2) = P(Z1 < c1) − P(Z1 < c1, Z2 < c2)
    second = stats.norm.cdf(c1) - joint.cdf([c1, c2])
    assert second == pytest.approx(0.05 - a1, abs=1.5e-3)


def _se_of(diffs):
    def se_of(seeds):
        x = diffs.loc[list(seeds)].to_numpy()
        return float(x.mean()), float(x.std(ddof=1) / np.sqrt(x.size))

    return se_of


def _run(true, sd, design, margin, rng):
    diffs = pd.Series(true + sd * rng.normal(size=design.looks[-1]))
    looks = line_looks(diffs, design, margin, 1, _se_of(diffs))
    return looks.iloc[-1]


DESIGN = SequentialDesign.of(50, 50, 400, alpha=0.05, rho=2.0)


def test_optional_stopping_keeps_the_error_of_beats_random():
    """No true gain, a look after every batch of 50 seeds up to 400: 'beats random' ≤ α over 1,000 runs."""
    rng = np.random.default_rng(0)
    hits = sum(bool(_run(0.0, 0.15, DESIGN, 0.03, rng)["beats"]) for _ in range(1000))
    assert hits / 1000 <= 0.05 + 0.012  # α plus two binomial standard errors of 1,000 runs
    # the naive rule (a fixed-design 5% test at every look) does not
    rng = np.random.default_rng(0)
    naive = 0
    for _ in range(1000):
        x = rng.normal(0.0, 0.15, 400)
        naive += any(x[:n].mean() / (x[:n].std(ddof=1) / np.sqrt(n)) > stats.norm.isf(0.05) for n in DESIGN.looks)
    assert naive / 1000 > 0.08


def test_optional_stopping_keeps_the_error_of_no_gain():
    """A true gain exactly at the margin: 'no gain' (non-superiority) declared ≤ α over 1,000 runs."""
    rng = np.random.default_rng(1)
    hits = sum(_run(0.03, 0.15, DESIGN, 0.03, rng)["decision"] == "non_superior" for _ in range(1000))
    assert hits / 1000 <= 0.05 + 0.012


def test_a_planted_gain_is_found_within_the_budget():
    rng = np.random.default_rng(2)
    found = sum(_run(0.05, 0.15, DESIGN, 0.03, rng)["decision"] == "beats" for _ in range(500))
    assert found / 500 >= 0.8
    # and a true null with no gain is decided 'no gain' most of the time, often before the last look
    rng = np.random.default_rng(3)
    ends = [_run(0.0, 0.15, DESIGN, 0.03, rng) for _ in range(300)]
    assert np.mean([e["decision"] == "non_superior" for e in ends]) >= 0.8
    assert np.mean([e["n_pairs"] < 400 for e in ends]) > 0.5


def test_pending_lines_and_design_errors():
    lines = pd.DataFrame([{"task": "t", "metric": "accuracy", "budget": 4, "selector": "a", "baseline": "random"}])
    none = pd.DataFrame(columns=["task", "metric", "budget", "selector", "baseline", "look", "decision"])
    assert pending(none, lines, DESIGN)["next_n"].tolist() == [50]
    looks = lines.assign(look=1, decision="")
    assert pending(looks, lines, DESIGN)["next_n"].tolist() == [100]
    assert pending(lines.assign(look=1, decision="beats"), lines, DESIGN).empty
    with pytest.raises(ConfigError, match="increasing"):
        SequentialDesign((100, 50))
    assert SequentialDesign.of(100, 50, 220).looks == (100, 150, 200, 220)


def test_a_look_on_fewer_than_ten_seeds_decides_nothing():
    """Even a huge, precise gain does not stop a line at a look on 5 seeds (the normal
    boundaries are not trusted there); at 10 seeds it does."""
    from mechsel.analysis.sequential import MIN_DECIDING_PAIRS, SequentialDesign, decide_look

    design = SequentialDesign.of(5, 5, 20)
    early = decide_look(0.3, 0.01, 0, design, margin=0.03, n_lines=1, n_pairs=5)
    assert not (early["beats"] or early["non_superior"] or early["worse"]) and early["seq_lower"] > 0
    later = decide_look(0.3, 0.01, 1, design, margin=0.03, n_lines=1, n_pairs=MIN_DECIDING_PAIRS)
    assert later["beats"] and MIN_DECIDING_PAIRS == 10
