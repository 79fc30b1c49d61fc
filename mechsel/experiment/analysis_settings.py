"""The ``analysis`` and ``plots`` sections of an :class:`~mechsel.experiment.ExperimentConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from mechsel.analysis.claims import GainClaim
from mechsel.analysis.correlation import CIMethod, PMethod
from mechsel.analysis.grid import FdrFamily
from mechsel.analysis.partial import ConfoundBasis
from mechsel.analysis.verdict import RhoAdjust, VerdictSettings
from mechsel.errors import ConfigError
from mechsel.experiment.checks import choice, positive
from mechsel.plots.io import PlotlyJS

DecodabilityTarget = Literal["auto", "quality", "residualised"]
"""Target of the decodability analysis (see :attr:`AnalysisSettings.decodability_target`)."""

__all__ = ["AnalysisSettings", "PlotSettings"]


@dataclass(frozen=True)
class AnalysisSettings:
    """Statistics of the analysis stage and how the verdict decides (see :mod:`mechsel.analysis.verdict`)."""

    rho_test: PMethod = "t"
    """p-value of each ρ: ``t`` (analytic, as scipy's spearmanr; no floor) or ``permutation``
    (floor 1/(1 + n_perm): after BH over m cells no q falls below m/(1 + n_perm))."""
    rho_interval: CIMethod = "fisher"
    """Interval of each ρ: ``fisher`` (Bonett–Wright, analytic) or ``bootstrap`` (percentile)."""
    fdr_family: FdrFamily = "task_family"
    """Cells sharing one Benjamini–Hochberg correction: one family per (task, statistic family)
    — moments and SAE latents never share one — or ``global`` (every cell)."""
    n_boot: int = 2000
    """Bootstrap resamples of every Δρ CI (and of ρ CIs under ``rho_interval: bootstrap``)."""
    n_perm: int = 2000
    """Permutations of every ρ p-value under ``rho_test: permutation``."""
    level: float = 0.95
    """Coverage of every reported interval."""
    alpha: float = 0.05
    """Level of the verdict's tests and FDR of every Benjamini–Hochberg correction."""
    rho_threshold: float = 0.33
    """The paper's largest |ρ|: the correlation part holds when every cell is shown below it."""
    rho_basis: Literal["partial", "raw"] = "partial"
    """Which ρ the verdict's correlation part decides on: ``partial`` (Spearman ρ given the token
    count, the label and the candidate's slot in its packed prompt; the length confound removed)
    or ``raw``. Both are in the grid table."""
    rho_adjust: RhoAdjust = "max_t"
    """How the correlation part's claims are adjusted over a family's cells: ``max_t``
    (simultaneous max-T bands and family-wise adjusted p-values that use the dependence between
    cells, :mod:`mechsel.analysis.simultaneous`), ``bonferroni`` (simultaneous Bonferroni
    intervals, BH for the cells above) or ``intersection_union`` (each cell at alpha; valid for
    the all-cells-below claim)."""
    confound_basis: ConfoundBasis = "spline"
    """How the partial ρ removes the token count and slot (:mod:`mechsel.analysis.partial`):
    ``spline`` (cubic B-spline of the ranks, then Spearman of the residuals; holds its level when
    length drives both sides), ``bins`` or ``linear`` (the classical rank partial correlation)."""
    margin: float = 0.03
    """Margin of the gain part, as a fraction of the metric's range (0.03 accuracy): a gain below
    it is no gain."""
    gain_claim: GainClaim = "non_superiority"
    """What the gain part must show to hold: ``non_superiority`` (the paper's "no gain": every
    line's one-sided upper bound below the margin) or ``equivalence`` (inside ±margin, TOST)."""
    decodability_target: DecodabilityTarget = "auto"
    """What the decodability analysis (runs with a ``probe``) decodes: ``quality`` (as measured),
    ``residualised`` (quality residualised on label, length and slot, so a probe is credited only
    for what those do not tell) or ``auto`` (residualised when the label alone explains more than
    half of quality's variance, else quality)."""
    exact_below: int = 10
    """Paired comparisons with fewer seeds use the exact sign-flip test (and its inverted interval)."""
    power: float = 0.8
    """Power at which every comparison's minimum detectable effect is stated."""
    n_extreme: int = 3
    """Best and worst candidates whose raw activations are sampled for the distribution figure."""
    samples_per_example: int = 2000
    """Activation values sampled per (example, layer) for that figure."""
    seed: int = 0
    """Seed of all resampling."""

    def __post_init__(self) -> None:
        choice("analysis.rho_test", self.rho_test, get_args(PMethod))
        choice("analysis.rho_interval", self.rho_interval, get_args(CIMethod))
        choice("analysis.fdr_family", self.fdr_family, get_args(FdrFamily))
        choice("analysis.rho_adjust", self.rho_adjust, get_args(RhoAdjust))
        choice("analysis.rho_basis", self.rho_basis, ("partial", "raw"))
        choice("analysis.confound_basis", self.confound_basis, get_args(ConfoundBasis))
        choice("analysis.gain_claim", self.gain_claim, get_args(GainClaim))
        choice("analysis.decodability_target", self.decodability_target, get_args(DecodabilityTarget))
        positive("analysis.exact_below", self.exact_below, minimum=0)
        positive("analysis.n_boot", self.n_boot, minimum=0)
        positive("analysis.n_perm", self.n_perm, minimum=0)
        positive("analysis.n_extreme", self.n_extreme)
        positive("analysis.samples_per_example", self.samples_per_example)
        positive("analysis.seed", self.seed, minimum=0)
        for name in ("level", "alpha", "rho_threshold", "margin", "power"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
                raise ConfigError(f"analysis.{name} must lie in (0, 1), got {v!r}.")
        if self.power <= self.alpha:
            raise ConfigError(f"analysis.power ({self.power}) must exceed analysis.alpha ({self.alpha}); 0.8 is the convention.")

    def verdict_settings(self) -> VerdictSettings:
        """The verdict's settings, read from these fields."""
        return VerdictSettings(
            alpha=self.alpha,
            margin=self.margin,
            gain_claim=self.gain_claim,
            rho_bound=self.rho_threshold,
            rho_adjust=self.rho_adjust,
            power=self.power,
        )


@dataclass(frozen=True)
class PlotSettings:
    """How figures are written (never changes a number)."""

    formats: tuple[str, ...] = ("png", "svg")
    """Static formats besides HTML, written when a Chromium is available."""
    plotlyjs: PlotlyJS = "directory"
    """How HTML files get plotly.js (see :data:`mechsel.plots.io.PlotlyJS`)."""

    def __post_init__(self) -> None:
        for f in self.formats:
            choice("plots.formats[]", f, ("png", "svg"))
        choice("plots.plotlyjs", self.plotlyjs, get_args(PlotlyJS))
