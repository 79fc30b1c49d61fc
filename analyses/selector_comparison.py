"""Selector comparison: mean test score ± 95% CI over seeds at each budget, per task.

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/selector_comparison.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables); see mechsel.experiment.figures.selector_figures.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(["selectors"], __doc__))
