"""Check that two finished runs computed the same numbers: ``python scripts/compare_runs.py A B``.

Compares ``results/summary.txt`` and ``results/verdict.json`` as text, and every
``results/*.parquet`` table exactly (pandas, values and dtypes; column order ignored), and
says which files are also byte-identical. Exit status 0 when every table and text matches, 1
otherwise, naming the first difference of each table. Used to show that a refactor moved no
number (issue 11: the quick demo before and after).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd


def compare(a: Path, b: Path) -> list[str]:
    """The differences between the results of runs ``a`` and ``b`` (empty: identical)."""
    problems: list[str] = []
    ra, rb = a / "results", b / "results"
    missing = [str(r) for r in (ra, rb) if not r.is_dir()]
    if missing:
        return [f"no results folder at {', '.join(missing)}: pass the folders of two finished runs"]
    names_a = {p.name for p in ra.iterdir() if p.suffix in (".parquet", ".txt", ".json")}
    names_b = {p.name for p in rb.iterdir() if p.suffix in (".parquet", ".txt", ".json")}
    for missing in sorted(names_a ^ names_b):
        problems.append(f"{missing}: only in {'A' if missing in names_a else 'B'}")
    for name in sorted(names_a & names_b):
        pa, pb = ra / name, rb / name
        same_bytes = pa.read_bytes() == pb.read_bytes()
        if name.endswith(".parquet"):
            fa, fb = pd.read_parquet(pa), pd.read_parquet(pb)
            fb = fb[list(fa.columns)] if set(fa.columns) == set(fb.columns) else fb
            try:
                pd.testing.assert_frame_equal(fa, fb, check_exact=True)
            except AssertionError as err:
                problems.append(f"{name}: {' '.join(str(err).split())[:300]}")
                continue
            print(f"{name:<28} identical ({len(fa)} rows){' , byte-identical' if same_bytes else ''}")
        elif not same_bytes:
            problems.append(f"{name}: text differs")
        else:
            print(f"{name:<28} identical text")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", type=Path, help="first run folder")
    parser.add_argument("b", type=Path, help="second run folder")
    args = parser.parse_args(argv)
    problems = compare(args.a, args.b)
    for p in problems:
        print(f"DIFFERENT {p}")
    print("RESULT identical" if not problems else f"RESULT {len(problems)} difference(s)")
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
