"""The command line shared by the ``analyses/`` scripts: a finished run's saved results in,
figures out. No model is loaded and no activation is recomputed; the figures come from
:func:`mechsel.experiment.figures.write_figures`, one figure family per script."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUN_DIR = REPO / "results" / "demo"
DEFAULT_OUT = REPO / "figures"


def main(families: Sequence[str] | None, description: str | None, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, write the figures of ``families`` (``None``: all), list them; exit status."""
    from mechsel.errors import MechselError
    from mechsel.experiment.figures import write_figures

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "run_dir",
        nargs="?",
        default=str(DEFAULT_RUN_DIR),
        help=f"output directory of a finished run (default: {DEFAULT_RUN_DIR.relative_to(REPO)} of this repository)",
    )
    parser.add_argument("--out", "-o", default=str(DEFAULT_OUT), help="figure folder (default: figures/ at the repository root)")
    parser.add_argument(
        "--formats",
        nargs="*",
        default=["png", "svg"],
        choices=["png", "svg"],
        help="static formats besides HTML, written when a Chromium is available (none: HTML only)",
    )
    parser.add_argument(
        "--plotlyjs",
        default="directory",
        choices=["directory", "embed", "cdn"],
        help="how the HTML files get plotly.js (see mechsel.plots.io.PlotlyJS)",
    )
    args = parser.parse_args(argv)
    try:
        written = write_figures(args.run_dir, args.out, families=families, formats=args.formats, plotlyjs=args.plotlyjs)
    except MechselError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not written:
        print(f"No figures of {list(families or ['all'])} in {args.run_dir} (e.g. no SAE statistics were collected).")
    for path in written:
        print(path)
    return 0
