"""Statistics of the study: correlations with example quality, masking effects, selector comparisons.

Pure numpy / scipy / pandas; every function takes and returns tidy frames (see each module).
"""

from mechsel.analysis.comparison import compare_selectors, mean_ci, paired_comparison
from mechsel.analysis.correlation import SpearmanResult, spearman, spearman_test
from mechsel.analysis.grid import correlation_grid, join_quality
from mechsel.analysis.masking import masking_effect, paired_delta_rho
from mechsel.analysis.multiple import benjamini_hochberg
from mechsel.analysis.summary import PAPER_RHO_BOUND, Verdict, describe_cell, format_summary, summary_table, verdict

__all__ = [
    "SpearmanResult",
    "spearman",
    "spearman_test",
    "benjamini_hochberg",
    "correlation_grid",
    "join_quality",
    "masking_effect",
    "paired_delta_rho",
    "mean_ci",
    "paired_comparison",
    "compare_selectors",
    "PAPER_RHO_BOUND",
    "summary_table",
    "Verdict",
    "verdict",
    "format_summary",
    "describe_cell",
]
