"""SAE latent-statistic panels (ρ with quality per SAE statistic), per task and mask; nothing when the run had no SAE.

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/sae_panel.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables); see mechsel.experiment.figures.sae_figures.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(["sae"], __doc__))
