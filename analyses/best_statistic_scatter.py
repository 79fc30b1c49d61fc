"""Example quality against the strongest moment statistic (largest |ρ|), with its monotone (isotonic) trend and each example's text on hover, per task.

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/best_statistic_scatter.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables); see mechsel.experiment.figures.scatter_figures.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(["scatter"], __doc__))
