"""What a finished ``mechsel demo`` measured: stage times and the design's power.

    python benchmarks/demo_report.py RUN_DIR [--wall-seconds S] [--task sst2]

Prints the seconds of every stage (from the run's ``manifest.json``), then ``RESULT`` lines for
the issue's acceptance points: the largest minimum detectable effect of the task's comparison
lines (activation vs random, paired; goal ≤ 0.05), the largest half-width of its ρ intervals
(raw and partial; goal ≤ 0.15), the verdict's outcome, and the cold wall time when given.
``benchmarks/demo_timing.sh`` runs the demo from a clean clone and calls this.
"""

from __future__ import annotations

import os
import sys

# benchmarks/ holds selectors.py, named like a standard library module; keep it off the path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--wall-seconds", type=float, default=None, help="measured cold wall time of the run")
    parser.add_argument("--task", default="sst2", help="the task whose power is checked")
    args = parser.parse_args()
    manifest = json.loads((args.run_dir / "manifest.json").read_text())
    results = args.run_dir / "results"
    print("Per stage (manifest.json, seconds):")
    for name, rec in manifest["stages"].items():
        print(f"  {name:24s} {rec['seconds']:9.1f}{'  (cached)' if rec['cached'] else ''}")
    summary = pd.read_parquet(results / "summary.parquet")
    grid = pd.read_parquet(results / "grid.parquet")
    verdict = json.loads((results / "verdict.json").read_text())
    mine = summary[summary["task"] == args.task]
    print(f"\n{args.task} comparison lines (activation vs random):")
    for _, r in mine.iterrows():
        print(
            f"  k {int(r['budget'])}: {r['selector']}: diff {r['mean_diff']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}], "
            f"sd of paired differences {r['sd_diff']:.3f} over {int(r['n_pairs'])} seeds, mde {r['mde']:.3f}"
        )
    cells = grid[(grid["task"] == args.task) & (grid["family"] == "moments")]
    half = ((cells["ci_high"] - cells["ci_low"]) / 2).to_numpy(float)
    half_partial = ((cells["ci_high_partial"] - cells["ci_low_partial"]) / 2).to_numpy(float)
    print(f"\n{args.task} grid: {len(cells)} cells, n = {int(cells['n'].max())} candidates")
    print(f"RESULT {args.task}_max_mde {mine['mde'].max():.4f} target <= 0.05")
    print(f"RESULT {args.task}_max_rho_half_width {np.nanmax(half):.4f} target <= 0.15")
    print(f"RESULT {args.task}_max_partial_rho_half_width {np.nanmax(half_partial):.4f} target <= 0.15")
    print(f"RESULT verdict_outcome {verdict['outcome']} parts {json.dumps({k: v['outcome'] for k, v in verdict['parts'].items()})}")
    if args.wall_seconds is not None:
        print(f"RESULT demo_full_cold_min {args.wall_seconds / 60:.1f} target <= 45")


if __name__ == "__main__":
    main()
