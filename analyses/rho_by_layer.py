"""|ρ| between each moment statistic and example quality, by layer, per task.

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/rho_by_layer.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables); see mechsel.experiment.figures.layer_figures.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(["layers"], __doc__))
