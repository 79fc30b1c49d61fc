"""The correlation part of the verdict: is every cell's |ρ| with quality shown below the paper's bound?

See :mod:`mechsel.analysis.verdict` for the rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from mechsel.analysis.claims import PartVerdict, VerdictSettings
from mechsel.analysis.correlation import exceeds_bound_p, fisher_interval, fisher_se
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.analysis.summary import describe_cell
from mechsel.errors import DataError

__all__ = ["correlation_part", "BAND_COLUMNS"]

BAND_COLUMNS: tuple[str, ...] = ("band_level", "band_low", "band_high", "p_above_adjusted", "critical", "critical_above")
"""Grid columns the ``max_t`` rule reads (:func:`mechsel.analysis.simultaneous.simultaneous_grid`)."""


def correlation_part(grid: pd.DataFrame, settings: VerdictSettings, basis: str = "ρ") -> PartVerdict:
    """Decide the correlation part from the activation lines of a correlation grid (module docstring).

    The grid needs ``rho``, ``n`` and ``fdr_family`` (as :func:`~mechsel.analysis.correlation_grid`
    writes it); pass only the cells the claim is about (e.g. the moments, not SAE latents). For a
    partial ρ pass ``n`` as the effective size ``n − q`` (``q`` covariate columns) and name it in
    ``basis`` (e.g. ``"partial ρ given n_tokens, label"``), which the sentence then uses.
    """
    missing = [c for c in ("rho", "n", "fdr_family") if c not in grid.columns]
    if missing:
        raise DataError(f"The correlation grid lacks columns {missing}; build it with correlation_grid(...).")
    max_t = settings.rho_adjust == "max_t"
    if max_t:
        lacking = [c for c in BAND_COLUMNS if c not in grid.columns]
        if lacking:
            raise DataError(
                f"rho_adjust 'max_t' needs the grid's simultaneous band columns {lacking}; merge "
                f"simultaneous_grid(...) beside it, or decide with rho_adjust 'bonferroni'."
            )
    g = grid[np.isfinite(grid["rho"].to_numpy(dtype=float)) & (grid["n"] > 3)].copy()
    if g.empty:
        return PartVerdict("inconclusive", f"no cell of the grid had more than 3 examples with a finite {basis}")
    a, b = settings.alpha, settings.rho_bound
    n_families = int(g["fdr_family"].nunique())
    a_above = a / n_families  # the "some cell is above" claim is a union over families
    families = []
    for fam, cells in g.groupby("fdr_family", sort=True):
        m = len(cells)
        rho, n = cells["rho"].to_numpy(dtype=float), cells["n"].to_numpy(dtype=float)
        if max_t:
            q = cells["p_above_adjusted"].to_numpy(dtype=float)
            shown = q <= a_above
            lo, hi = cells["band_low"].to_numpy(dtype=float), cells["band_high"].to_numpy(dtype=float)
            level = float(cells["band_level"].iloc[0])
            z_above = float(cells["critical_above"].iloc[0])
        else:
            q, shown = benjamini_hochberg(exceeds_bound_p(rho, n, b), alpha=a_above)
            level = 1.0 - 2.0 * a / m if settings.rho_adjust == "bonferroni" else 1.0 - 2.0 * a
            lo, hi = fisher_interval(rho, n, level)
            z_above = float(sps.norm.isf(a_above / m))
        below = (lo > -b) & (hi < b)
        top = int(np.argmax(np.abs(rho)))
        # |ρ| detected above the bound at the stated power, one-sided at the level of the "above" claims
        z_needed = z_above + sps.norm.isf(1.0 - settings.power)
        detectable = float(np.tanh(np.arctanh(b) + z_needed * float(np.median(fisher_se(np.full(m, b), n)))))
        top_row = cells.iloc[top]
        families.append(
            {
                "family": fam,
                "cells": m,
                "n": int(np.median(n)),
                "max_abs_rho": float(abs(rho[top])),
                "max_rho_cell": describe_cell(top_row),
                "max_rho_q_above": float(q[top]),
                "above_test": "max-T adjusted p" if max_t else "BH q",
                "above_alpha": a_above,
                "cells_shown_above": int(shown.sum()),
                "shown_above": [describe_cell(cells.iloc[i]) for i in np.flatnonzero(shown)],
                "cells_shown_below": int(below.sum()),
                "interval_level": level,
                "interval": "max-T simultaneous band" if max_t else settings.rho_adjust,
                "critical": float(cells["critical"].iloc[0]) if max_t else float(sps.norm.isf((1.0 - level) / 2.0)),
                "critical_bonferroni": float(sps.norm.isf(a / m)),
                "widest_abs_bound": float(np.max(np.maximum(np.abs(lo), np.abs(hi)))),
                "detectable_rho": detectable,
                "outcome": "does_not_hold" if shown.any() else "holds" if below.all() else "inconclusive",
            }
        )
    above = [f for f in families if f["cells_shown_above"]]
    if above:
        f = max(above, key=lambda f: f["max_abs_rho"])
        return PartVerdict(
            "does_not_hold",
            (
                f"{sum(x['cells_shown_above'] for x in above)} cell(s) correlate with quality more strongly than |{basis}| = {b:.2f}, "
                f"e.g. {f['max_rho_cell']} in {f['family']} (|{basis}| = {f['max_abs_rho']:.2f}, {f['above_test']} of |{basis}| > {b:.2f}: "
                f"{f['max_rho_q_above']:.2g} over {f['cells']} cells, at most {f['above_alpha']:.3g})"
            ),
            families,
        )
    if all(f["outcome"] == "holds" for f in families):
        return PartVerdict(
            "holds",
            (
                f"every cell's {families[0]['interval']} ({families[0]['interval_level']:.0%}) of {basis} lies inside ±{b:.2f} (largest bound "
                f"{max(f['widest_abs_bound'] for f in families):.2f})"
            ),
            families,
        )
    per_family = "; ".join(
        f"{f['family']}: max |{basis}| {f['max_abs_rho']:.2f} ({f['max_rho_cell']}), n = {f['n']}, detectable ≥ {f['detectable_rho']:.2f}"
        for f in families
    )
    return PartVerdict(
        "inconclusive",
        (
            f"no cell is shown above |{basis}| = {b:.2f}, but not every cell is shown below it "
            f"({families[0]['interval']}s at {families[0]['interval_level']:.0%} reach up to {max(f['widest_abs_bound'] for f in families):.2f}); "
            f"per family ({families[0]['cells']} cells each, n effective, |{basis}| the design detects above {b:.2f} at "
            f"{settings.power:.0%} power): {per_family}"
        ),
        families,
    )
