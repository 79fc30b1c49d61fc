"""Power and minimum detectable effect of the paired t-test, against simulation with scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from mechsel.analysis import paired_mde, paired_t_power
from mechsel.errors import ConfigError


def test_power_at_zero_effect_is_alpha():
    assert paired_t_power(0.0, 0.1, 5, alpha=0.05) == pytest.approx(0.05)


@pytest.mark.parametrize(("n", "sd"), [(5, 0.08), (12, 0.03)])
def test_mde_has_the_stated_power_in_simulation(n, sd):
    """Simulate paired differences with mean = MDE and run scipy's paired t-test: it rejects ~80%."""
    mde = paired_mde(sd, n, alpha=0.05, power=0.8)
    rng = np.random.default_rng(n)
    reps = 4000
    base = rng.normal(size=(reps, n))
    other = base + mde + sd * rng.normal(size=(reps, n))
    rejected = stats.ttest_rel(other, base, axis=1).pvalue < 0.05
    assert abs(rejected.mean() - 0.8) < 3 * np.sqrt(0.8 * 0.2 / reps) + 0.005


def test_mde_approaches_the_normal_formula_with_many_pairs_and_exceeds_it_with_few():
    sd, n = 0.05, 2000
    normal = (stats.norm.isf(0.025) + stats.norm.isf(0.2)) * sd / np.sqrt(n)
    assert paired_mde(sd, n) == pytest.approx(normal, rel=2e-3)
    assert paired_mde(sd, 5) > (stats.norm.isf(0.025) + stats.norm.isf(0.2)) * sd / np.sqrt(5)


def test_mde_edge_cases_and_errors():
    assert np.isnan(paired_mde(0.1, 1)) and np.isnan(paired_mde(float("nan"), 5))
    assert paired_mde(0.0, 5) == 0.0
    with pytest.raises(ConfigError, match="power"):
        paired_mde(0.1, 5, power=0.01)
