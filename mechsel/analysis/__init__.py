"""Statistics of the study: correlations with example quality (raw and partial, per example and
per demonstration set), masking effects, selector comparisons, power, and the three-way verdict.

Pure numpy / scipy / pandas; every function takes and returns tidy frames (see each module).
"""

from mechsel.analysis.baselines import baseline_check, format_baselines
from mechsel.analysis.comparison import compare_selectors, mean_ci, paired_comparison, paired_interval
from mechsel.analysis.correlation import SpearmanResult, exceeds_bound_p, fisher_interval, spearman, spearman_p_value, spearman_test
from mechsel.analysis.grid import correlation_grid, join_quality
from mechsel.analysis.masking import masking_effect, paired_delta_rho
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.analysis.partial import PartialSpearmanResult, partial_correlation_grid, partial_spearman
from mechsel.analysis.power import paired_mde, paired_t_power
from mechsel.analysis.sets import pooled_set_correlation_grid, set_correlation_grid, set_features, set_scores
from mechsel.analysis.summary import PAPER_RHO_BOUND, describe_cell, family_best, format_family_best, format_summary, summary_table
from mechsel.analysis.verdict import PartVerdict, Verdict, VerdictSettings, verdict

__all__ = [
    "SpearmanResult",
    "spearman",
    "spearman_test",
    "spearman_p_value",
    "fisher_interval",
    "exceeds_bound_p",
    "benjamini_hochberg",
    "PartialSpearmanResult",
    "partial_spearman",
    "partial_correlation_grid",
    "set_features",
    "set_scores",
    "set_correlation_grid",
    "pooled_set_correlation_grid",
    "correlation_grid",
    "join_quality",
    "masking_effect",
    "paired_delta_rho",
    "mean_ci",
    "paired_interval",
    "paired_comparison",
    "compare_selectors",
    "paired_t_power",
    "paired_mde",
    "PAPER_RHO_BOUND",
    "summary_table",
    "format_summary",
    "describe_cell",
    "family_best",
    "format_family_best",
    "baseline_check",
    "format_baselines",
    "VerdictSettings",
    "PartVerdict",
    "Verdict",
    "verdict",
]
