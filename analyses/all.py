"""Every figure family of a finished run (the same as ``mechsel figures RUN_DIR -o figures``).

Usage (from the repository root; RUN_DIR defaults to results/demo, figures go to figures/)::

    python analyses/all.py [RUN_DIR] [--out figures] [--formats png svg]

Reads only RUN_DIR/results (the saved tables): no model is loaded.
"""

import sys

from _common import main

if __name__ == "__main__":
    sys.exit(main(None, __doc__))
