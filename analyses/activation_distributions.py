"""hook_mlp_out value distributions per layer for the best and worst candidates, per task.

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/activation_distributions.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables); see mechsel.experiment.figures.activation_figures.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(["activations"], __doc__))
