"""What a finished ``configs/sst2_probe.yaml`` run measured (issue 25): decodability and the probe.

    python benchmarks/probe_report.py RUN_DIR [--wall-seconds S]

Prints the seconds of every stage, the decodability table (out-of-fold R² of quality from each
layer × mask's mean ``hook_mlp_out`` with its bootstrap interval, within-label permutation p and
gain over the best baseline; the baselines' R² first), the summary's decodability sentence, and
the paired lines of every selector against random (diff with its interval, test, p, mde).
``benchmarks/probe_sst2.sh`` runs the config cold and calls this.
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

import pandas as pd  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--wall-seconds", type=float, default=None)
    args = parser.parse_args()
    run = args.run_dir
    if args.wall_seconds is not None:
        print(f"Wall clock: {args.wall_seconds:.0f} s")
    stages = json.loads((run / "manifest.json").read_text()).get("stages", {})
    print("Per stage (manifest.json, seconds; cached stages were read, not computed):")
    for name, rec in stages.items():
        print(f"  {name:28s} {rec['seconds']:8.1f}{'  (cached)' if rec.get('cached') else ''}")
    table = pd.read_parquet(run / "results" / "decodability.parquet")
    first = table.iloc[0]
    print(f"\nDecodability (target: {first['target']}; the label explains {first['label_share']:.0%} of quality's variance):")
    for _, b in table[table["kind"] == "baseline"].iterrows():
        print(f"  baseline {b['baseline_name']}: R² {b['r2']:+.3f} [{b['ci_low']:+.3f}, {b['ci_high']:+.3f}] p {b['p_value']:.3g}")
    print(f"  {'mask':9s} {'layer':>5s}  {'R² [95% CI]':24s} {'p':>7s}  gain over best baseline [95% CI]")
    for _, r in table[table["kind"] == "representation"].iterrows():
        print(
            f"  {r['mask']:9s} {int(r['layer']):5d}  {r['r2']:+.3f} [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]  {r['p_value']:7.3g}  "
            f"{r['gain']:+.3f} [{r['gain_low']:+.3f}, {r['gain_high']:+.3f}] over {r['baseline_name']}"
        )
    summary = (run / "results" / "summary.txt").read_text() if (run / "results" / "summary.txt").is_file() else ""
    for line in summary.splitlines():
        if "decod" in line.lower():
            print(line)
    comp = pd.read_parquet(run / "results" / "comparison.parquet")
    print("\nPaired lines against random (seeds paired; test and interval methods as named):")
    print(
        f"  {'k':>2s} {'selector':26s} {'mean [95% CI]':22s} {'diff [95% CI]':24s} {'upper':>7s} {'p':>7s} {'test':12s} {'mde':>6s} seeds"
    )
    for _, r in comp[comp["selector"] != comp["baseline"]].iterrows():
        print(
            f"  {int(r['budget']):2d} {r['selector']:26s} {r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]  "
            f"{r['mean_diff']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}]  {r['diff_upper']:+7.3f} {r['p_value']:7.3g} "
            f"{r['test']:12s} {r['mde']:6.3f} {int(r['n_pairs'])}"
        )
    for _, r in comp[comp["selector"] == comp["baseline"]].iterrows():
        print(
            f"  {int(r['budget']):2d} {r['selector']:26s} {r['mean']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]  (the baseline, {int(r['n_seeds'])} seeds)"
        )


if __name__ == "__main__":
    main()
