# ruff: noqa: E402  (imports follow the sys.path fix below)
"""1-shot example-quality matrix on the embedded Gemma 3 270M: the engine against the naive way.

Task SST-2; 64 candidates from the pool × 64 dev queries (``--candidates``, ``--dev``), every
candidate the single demonstration of every dev query, 4,096 prompts.

* **Engine** (:func:`mechsel.icl.quality_matrix`): per candidate, BOS + demonstration (and the
  query template's first tokens) encoded once and its keys/values reused by the 64 queries,
  batched with right padding, logits only at the answer position.
* **Naive**: one plain forward pass per prompt with full-vocabulary logits at every position
  (``model(tokens)``), ``log_softmax``, read the label tokens, on the model as TransformerLens
  loads it (contiguous weights). For context it is also timed on mechsel's laid-out weights
  (:func:`mechsel.models.transpose_friendly_layout`), which spare the naive way's full forward a
  copy of the 262k-word unembedding per call (not a target: the layout is part of the engine).

The naive way takes seconds per prompt on 2 CPU cores (hours for the whole matrix), so it
runs on a seeded random sample of pairs (``--naive-pairs``, default 64; ``all`` for every pair),
half before and half after the engine to balance drift in machine load; its total is the mean
time per prompt × the number of pairs. Predictions and log-probabilities are compared on every
sampled pair.

Run: ``python benchmarks/quality.py --naive-pairs 128`` (about 4 minutes on 2 idle CPU cores:
the engine still runs every query token of all 4,096 prompts, about 2.5 minutes; the naive way
about 0.7 s per sampled prompt).
"""

from __future__ import annotations

import os
import sys

# benchmarks/selectors.py shadows the standard library's ``selectors`` module (imported by
# asyncio and subprocess) when a script in this folder runs; drop the folder from the path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import json
import logging
import time

import numpy as np

from mechsel.icl import ICLRunner, ScoringConfig, naive_label_logprobs, quality_matrix
from mechsel.models import load_model
from mechsel.models.layout import contiguous_copy
from mechsel.tasks import SplitConfig, make_splits


def naive_pairs(model, runner, candidates, dev, pairs):
    """Label log-probabilities of ``pairs`` the naive way, and the seconds it took."""
    start = time.perf_counter()
    out = []
    for c, q in pairs:
        prompt = runner.encoder.build([candidates[c]], dev[q])
        out.append(naive_label_logprobs(model, [prompt], runner.encoder.label_token_ids)[0].numpy())
    return np.array(out), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=64)
    parser.add_argument("--dev", type=int, default=64)
    parser.add_argument("--naive-pairs", default="64", help="number of sampled pairs for the naive way, or 'all'")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="optional JSON file for the numbers")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("benchmarks.quality")

    model = load_model(device="cpu")
    plain = contiguous_copy(model)  # the naive way's model: weights contiguous, as TransformerLens loads them
    splits = make_splits("sst2", SplitConfig(pool_size=args.candidates, dev_size=args.dev, test_size=1, seed=args.seed))
    candidates, dev = list(splits.pool), list(splits.dev)
    runner = ICLRunner(model, "sst2", scoring=ScoringConfig(batch_size=args.batch_size, padding_side="right"))
    n_pairs = len(candidates) * len(dev)
    all_pairs = [(c, q) for c in range(len(candidates)) for q in range(len(dev))]
    if args.naive_pairs == "all":
        sample = all_pairs
    else:
        rng = np.random.default_rng(args.seed)
        sample = [all_pairs[i] for i in sorted(rng.choice(n_pairs, size=min(int(args.naive_pairs), n_pairs), replace=False))]
    half = len(sample) // 2

    # Warm-up (first-call allocations, lazy initialisation) outside every timed region.
    naive_pairs(plain, runner, candidates, dev, sample[:1])
    naive_pairs(model, runner, candidates, dev, sample[:1])
    runner.label_logprobs([[candidates[0]]] * 2, dev[:2])
    log.info("naive, first half: %d prompts", half)
    naive_a, t_a = naive_pairs(plain, runner, candidates, dev, sample[:half])
    _, tl_a = naive_pairs(model, runner, candidates, dev, sample[:half])
    log.info("engine: %d candidates x %d dev queries", len(candidates), len(dev))
    start = time.perf_counter()
    result = quality_matrix(runner, candidates, dev, progress=True)
    t_engine = time.perf_counter() - start
    log.info("naive, second half: %d prompts", len(sample) - half)
    naive_b, t_b = naive_pairs(plain, runner, candidates, dev, sample[half:])
    _, tl_b = naive_pairs(model, runner, candidates, dev, sample[half:])

    naive = np.concatenate([naive_a, naive_b])
    engine = np.array([result.label_logprobs[c, q] for c, q in sample])
    per_prompt_naive = (t_a + t_b) / len(sample)
    t_naive = per_prompt_naive * n_pairs
    same = float(np.mean(naive.argmax(1) == engine.argmax(1)))
    max_diff = float(np.abs(naive - engine).max())
    numbers = {
        "pairs": n_pairs,
        "naive_pairs_timed": len(sample),
        "engine_seconds": t_engine,
        "engine_seconds_per_prompt": t_engine / n_pairs,
        "naive_seconds_per_prompt": per_prompt_naive,
        "naive_seconds_extrapolated": t_naive,
        "speedup": t_naive / t_engine,
        "naive_laid_out_seconds_per_prompt": (tl_a + tl_b) / len(sample),
        "speedup_over_naive_on_laid_out_weights": (tl_a + tl_b) / len(sample) * n_pairs / t_engine,
        "identical_predictions": same,
        "max_abs_logprob_diff": max_diff,
        "mean_quality": float(result.table()["quality"].mean()),
    }
    print(
        f"model {model.cfg.model_name}; SST-2 {len(candidates)} candidates x {len(dev)} dev queries = {n_pairs} 1-shot prompts, batch {args.batch_size}"
    )
    for key, value in numbers.items():
        print(f"{key:<28}{value:.6g}" if isinstance(value, float) else f"{key:<28}{value}")
    print()
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(numbers, fh, indent=2)
    print(f"RESULT quality_matrix_speedup {numbers['speedup']:.1f} target >= 10")
    print(f"RESULT quality_matrix_identical_predictions {same:.4f} target == 1.0")
    print(f"RESULT quality_matrix_max_abs_logprob_diff {max_diff:.2e} target <= 1e-4")
    print(
        f"RESULT quality_matrix_speedup_over_naive_on_mechsel_layout {numbers['speedup_over_naive_on_laid_out_weights']:.1f} target (none; context)"
    )


if __name__ == "__main__":
    main()
