"""ICL scoring speed-ups on the embedded Gemma 3 270M, and what they do to the numbers.

Three engines score the same prompts in one process, workload by workload, back to back:

* **before** — the engine as it was: weights contiguous as loaded by TransformerLens (so every
  forward pass copies the MLP, query, output and unembedding weights), float32 matmuls at
  ``highest``, batches of 16 rows whatever their length.
* **layout** — weights laid out as TransformerLens multiplies them
  (:func:`mechsel.models.transpose_friendly_layout`) and batches capped at 1,024 padded tokens
  (``ScoringConfig.max_batch_tokens``); still ``highest``.
* **medium** — the same plus ``matmul_precision("medium")``, used only if its measured error on
  this machine is float32-class (the check is printed).

(All three unembed answer positions in blocks of 128, which is not switchable.) Workloads, on
SST-2 and AG News test queries with demonstrations from the first 40 pool examples (seeded):
``fixed``: 3 random 4-shot sets, each shared by ``--queries`` queries (prefix encoded once);
``per-query``: a random 8-shot set per query (like KATE), ``--queries`` // 2 queries.

Reported per workload and in total: time ÷ before, the largest |difference| of label
log-probabilities from ``before``, and the share of predictions (argmax over labels) that agree.

Run: ``python benchmarks/scoring.py`` (about 5 minutes on 2 idle CPU cores).
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
from contextlib import nullcontext  # noqa: E402

import numpy as np  # noqa: E402

from mechsel.icl import ICLRunner, ScoringConfig  # noqa: E402
from mechsel.models import load_model, matmul_precision, measure_matmul_error  # noqa: E402
from mechsel.models.layout import contiguous_copy  # noqa: E402
from mechsel.models.precision import FLOAT32_CLASS_ERROR  # noqa: E402
from mechsel.tasks import SplitConfig, make_splits  # noqa: E402


def workloads(task: str, n_queries: int, seed: int):
    splits = make_splits(task, SplitConfig(pool_size=40, dev_size=1, test_size=n_queries, seed=seed))
    pool, test = list(splits.pool), list(splits.test)
    rng = np.random.default_rng(seed)
    fixed_sets = [[pool[i] for i in rng.choice(len(pool), 4, replace=False)] for _ in range(3)]
    fixed = ([s for s in fixed_sets for _ in test], [q for _ in fixed_sets for q in test])
    half = test[: n_queries // 2]
    per_query = ([[pool[i] for i in rng.choice(len(pool), 8, replace=False)] for _ in half], half)
    return {f"{task} fixed 4-shot": fixed, f"{task} per-query 8-shot": per_query}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queries", type=int, default=96, help="test queries per fixed set (half as many per-query prompts)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    model = load_model(device="cpu")
    before_model = contiguous_copy(model)
    error = measure_matmul_error("medium")
    print(
        f"matmul precision 'medium' on this CPU: relative error {error:.1e} (float32-class if <= {FLOAT32_CLASS_ERROR:.0e}; "
        f"otherwise the 'medium' engine runs at 'highest')"
    )
    engines = {
        "before": (before_model, ScoringConfig(batch_size=16, max_batch_tokens=None), "highest"),
        "layout": (model, ScoringConfig(), "highest"),
        "medium": (model, ScoringConfig(), "medium"),
    }
    totals = {name: 0.0 for name in engines}
    print(
        f"{'workload':28s} {'prompts':>7s} {'before s':>9s} {'layout/before':>14s} {'medium/before':>14s} "
        f"{'max|dlogp| layout':>18s} {'max|dlogp| medium':>18s} {'agree medium':>13s}"
    )
    for task in ("sst2", "ag_news"):
        for name, (demo_sets, queries) in workloads(task, args.queries, args.seed).items():
            seconds, logprobs = {}, {}
            for engine, (m, scoring, level) in engines.items():
                runner = ICLRunner(m, task, scoring=scoring)
                with matmul_precision(level) if level != "highest" else nullcontext():
                    runner.label_logprobs(demo_sets[:2], queries[:2])  # warm-up
                    start = time.perf_counter()
                    logprobs[engine] = runner.label_logprobs(demo_sets, queries)
                    seconds[engine] = time.perf_counter() - start
                totals[engine] += seconds[engine]
            ref = logprobs["before"]
            agree = float((logprobs["medium"].argmax(1) == ref.argmax(1)).mean())
            print(
                f"{name:28s} {len(queries):7d} {seconds['before']:9.1f} {seconds['layout'] / seconds['before']:14.3f} "
                f"{seconds['medium'] / seconds['before']:14.3f} {np.abs(logprobs['layout'] - ref).max():18.2e} "
                f"{np.abs(logprobs['medium'] - ref).max():18.2e} {agree:13.4f}",
                flush=True,
            )
    print(
        f"{'total':28s} {'':7s} {totals['before']:9.1f} {totals['layout'] / totals['before']:14.3f} {totals['medium'] / totals['before']:14.3f}"
    )
    print(f"RESULT scoring_time_layout_over_before {totals['layout'] / totals['before']:.3f} target < 1")
    print(f"RESULT scoring_time_medium_over_before {totals['medium'] / totals['before']:.3f} target <= 0.5")
    print(f"RESULT scoring_speedup_total {totals['before'] / totals['medium']:.2f} target >= 2.1 (95-minute demo to 45)")


if __name__ == "__main__":
    main()
