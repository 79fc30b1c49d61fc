"""Spearman ρ heatmaps (layer × statistic, one panel per attention mask), per task and statistic family.

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/correlation_heatmaps.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables); see mechsel.experiment.figures.correlation_figures.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(["correlation"], __doc__))
