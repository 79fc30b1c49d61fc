"""Out-of-fold R² of ridge probes of quality by layer, against the baselines, per task.

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/decodability.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables; only runs with a ``probe`` run have the
decodability table); see mechsel.experiment.figures.decodability_figures.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(["decodability"], __doc__))
