"""What every part of the verdict shares: the three outcomes, the settings, a decided part."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mechsel.analysis.summary import PAPER_RHO_BOUND
from mechsel.errors import ConfigError

__all__ = ["Outcome", "RhoAdjust", "GainClaim", "VerdictSettings", "PartVerdict", "WORD", "jsonable"]

Outcome = Literal["holds", "does_not_hold", "inconclusive"]
"""The three ways a claim can come out."""
RhoAdjust = Literal["max_t", "bonferroni", "intersection_union"]
"""How the correlation part's all-cells-below claim is adjusted for the number of cells."""
GainClaim = Literal["non_superiority", "equivalence"]
"""What the gain part must show to hold: ``non_superiority`` (the paper's "no gain": every line's
upper one-sided bound below the margin) or ``equivalence`` (every line inside ±margin, TOST)."""

WORD = {"holds": "HOLDS", "does_not_hold": "DOES NOT HOLD", "inconclusive": "is INCONCLUSIVE"}


@dataclass(frozen=True)
class VerdictSettings:
    """How the verdict decides (module docstring)."""

    alpha: float = 0.05
    """Level of every test and FDR of every Benjamini–Hochberg correction."""
    margin: float = 0.03
    """Margin of the gain part, as a fraction of the metric's range: a gain below it is no gain."""
    gain_claim: GainClaim = "non_superiority"
    """What the gain part must show to hold (:data:`GainClaim`)."""
    rho_bound: float = PAPER_RHO_BOUND
    """|ρ| above which a correlation is stronger than the paper reports."""
    rho_adjust: RhoAdjust = "max_t"
    """Adjustment of the correlation part's intervals for the number of cells."""
    power: float = 0.8
    """Power at which minimum detectable effects are stated."""

    def __post_init__(self) -> None:
        for name in ("alpha", "margin", "rho_bound", "power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ConfigError(f"verdict {name} must lie in (0, 1), got {v!r}.")
        if self.power <= self.alpha:
            raise ConfigError(f"power ({self.power}) must exceed alpha ({self.alpha}); 0.8 is the convention.")
        if self.gain_claim not in ("non_superiority", "equivalence"):
            raise ConfigError(f"gain_claim must be 'non_superiority' or 'equivalence', got {self.gain_claim!r}.")
        if self.rho_adjust not in ("max_t", "bonferroni", "intersection_union"):
            raise ConfigError(f"rho_adjust must be 'max_t', 'bonferroni' or 'intersection_union', got {self.rho_adjust!r}.")


@dataclass(frozen=True)
class PartVerdict:
    """One part of the finding (gain or correlation), decided."""

    outcome: Outcome
    """holds / does_not_hold / inconclusive."""
    text: str
    """Why, in one sentence."""
    lines: list[dict[str, Any]] = field(default_factory=list)
    """The evidence: one dict per comparison line (gain) or per family (correlation)."""


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_, bool)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    return obj
