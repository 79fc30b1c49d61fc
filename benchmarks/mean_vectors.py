"""What keeping each candidate's mean ``hook_mlp_out`` vector adds to collection (issue 25).

On the embedded Gemma 3 270M over the first ``--n`` (default 256) SST-2 validation sentences,
all 18 layers, the six default moments, mask ``alone``, batch 16: :func:`mechsel.collect` with
``mean_vectors=False`` and ``True``, alternated for ``--rounds`` rounds after a warm-up (so a
shared machine's background load falls on both alike). The ratio of the medians is the cost of
the vectors; the goal is at most 1.10.

Run: ``benchmarks/run.sh mean_vectors`` (about 3 minutes on 2 cores).
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from mechsel.collection import collect  # noqa: E402
from mechsel.models import load_model  # noqa: E402
from mechsel.tasks.loading import load_rows  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts = [row["sentence"] for row in load_rows("sst2", "validation")[: args.n]]
    model = load_model()
    times: dict[bool, list[float]] = {False: [], True: []}
    collect(model, texts[:32], progress=False, mean_vectors=True)  # warm-up
    for r in range(args.rounds):
        for flag in (False, True) if r % 2 == 0 else (True, False):
            start = time.perf_counter()
            result = collect(model, texts, progress=False, mean_vectors=flag)
            times[flag].append(time.perf_counter() - start)
            if flag:
                vec = result.vectors["mean"]
    off, on = float(np.median(times[False])), float(np.median(times[True]))
    print(f"texts: {len(texts)}; layers: {vec.shape[1]}; d_model: {vec.shape[2]}; vectors: {vec.nbytes / 2**20:.1f} MiB float32")
    print("seconds without vectors:", " ".join(f"{t:.2f}" for t in times[False]))
    print("seconds with vectors:   ", " ".join(f"{t:.2f}" for t in times[True]))
    print(f"RESULT mean_vectors_collect_time_ratio {on / off:.3f} target <= 1.10")


if __name__ == "__main__":
    main()
