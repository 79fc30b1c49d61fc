"""Mechanisms on the embedded model: induction heads, function-vector heads, and the causal test of SAE latents.

Three measurements on Gemma 3 270M (float32, no weight processing), in one process:

* **induction heads** — :func:`mechsel.heads.induction_scores` with its defaults (4 × 8
  sequences of BOS + 50 random tokens repeated twice): the top heads' scores against the median
  head's.
* **function-vector heads** — :func:`mechsel.heads.function_vector_scores` on SST-2 (``--fv-prompts``
  prompts of 4 demonstrations from SST-2 train examples outside the demo's and quick demo's
  candidates): each head's average indirect effect on the gold label's probability.
* **causal test of SAE latents** — :func:`mechsel.sae.causal_test` with the SAE trained by
  ``benchmarks/sae.py`` (``--sae-path``; layer 9, demonstration-format data disjoint from the
  demo's examples): on ``--n-queries`` SST-2 test queries (default: all 80 of the demo), each with 4 demonstrations drawn from
  the demo's SST-2 candidates, the ``m`` latents the ``label_contrast`` rule singles out (largest
  label difference in mean activation over the candidates) are zero- or mean-ablated inside the
  demonstration tokens only, against ``--draws`` sets of ``m`` random latents of matched
  activation frequency. Reported: the change in gold-label log-probability and in accuracy, and
  targeted − random with its paired 95% interval and paired t test over queries.

Run: ``python benchmarks/mechanisms.py --sae-path ~/.cache/mechsel/saes/<run>/layer_9``.
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/selectors.py would shadow the stdlib module

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mechsel.experiment import demo_config  # noqa: E402
from mechsel.experiment.resources import Resources  # noqa: E402
from mechsel.heads import FunctionVectorConfig, function_vector_scores, induction_scores  # noqa: E402
from mechsel.icl import ICLRunner  # noqa: E402
from mechsel.models import load_model  # noqa: E402
from mechsel.sae.causal import CausalTestConfig, causal_test  # noqa: E402
from mechsel.sae.loading import load_sae, sae_layer  # noqa: E402
from mechsel.tasks import load_examples  # noqa: E402


def heads(model, splits, args) -> list[str]:
    t0 = time.perf_counter()
    ind = induction_scores(model, cache=False)
    seconds = time.perf_counter() - t0
    flat = ind.scores.ravel()
    top = ind.top(5)
    print(f"induction scores ({seconds:.1f}s): top heads " + ", ".join(f"L{lay}H{h} {ind.scores[lay, h]:.3f}" for lay, h in top))
    print(f"  median head {np.median(flat):.4f}, 90th percentile {np.quantile(flat, 0.9):.4f}, heads above 0.3: {(flat > 0.3).sum()}")
    used = {e.text() for e in splits.examples}
    train = [e for e in load_examples("sst2", "train") if e.text() not in used][:2000]
    t0 = time.perf_counter()
    fv = function_vector_scores(model, "sst2", train, FunctionVectorConfig(n_prompts=args.fv_prompts), cache=False)
    fv_seconds = time.perf_counter() - t0
    print(
        f"function-vector AIE ({fv_seconds:.1f}s, {args.fv_prompts} prompts): top heads "
        + ", ".join(f"L{lay}H{h} {fv.scores[lay, h]:+.4f}" for lay, h in fv.top(5))
    )
    print(f"  median head AIE {np.median(fv.scores):+.5f}")
    best = ind.scores[top[0]]
    return [
        f"RESULT induction_top_head_score {best:.4f} (L{top[0][0]}H{top[0][1]})",
        f"RESULT induction_median_head_score {np.median(flat):.4f}",
        f"RESULT induction_top5_mean_over_median {np.mean([ind.scores[x] for x in top]) / max(np.median(flat), 1e-9):.1f}",
        f"RESULT fv_top_head_aie {fv.scores[fv.top(1)[0]]:+.4f} (L{fv.top(1)[0][0]}H{fv.top(1)[0][1]})",
        f"RESULT fv_median_head_aie {np.median(fv.scores):+.5f}",
    ]


def causal(model, splits, args) -> list[str]:
    sae = load_sae(path=args.sae_path)
    layer = sae_layer(sae)
    runner = ICLRunner(model, "sst2")
    config = CausalTestConfig(
        m_values=tuple(args.m), ablation=("zero", "mean"), n_random_draws=args.draws, n_queries=args.n_queries, k=4, seed=0
    )
    t0 = time.perf_counter()
    result = causal_test(runner, {layer: sae}, list(splits.pool), list(splits.test), config)
    seconds = time.perf_counter() - t0
    table = result.table
    cols = ["layer", "m", "ablation", "latent_set", "metric", "effect", "ci_low", "ci_high", "p_value", "draw_rank_p", "n_queries"]
    with pd.option_context("display.width", 200, "display.max_rows", 200):
        print(f"causal test, layer {layer} ({seconds:.0f}s):")
        print(table[table["latent_set"].isin(["targeted", "random", "targeted - random"])][cols].to_string(index=False))
    out = []
    comp = table[table["latent_set"] == "targeted - random"]
    for row in comp.itertuples():
        out.append(
            f"RESULT causal_{row.metric}_targeted_minus_random_m{row.m}_{row.ablation} {row.effect:+.4f} "
            f"[{row.ci_low:+.4f}, {row.ci_high:+.4f}] paired-t p={row.p_value:.3g} rank-among-draws p={row.draw_rank_p:.3g} n={row.n_queries}"
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sae-path", default=None, help="SAE folder for the causal test (skipped without)")
    parser.add_argument("--n-queries", type=int, default=80, help="test queries (the demo has 80 SST-2 test queries)")
    parser.add_argument("--m", type=int, nargs="+", default=[4, 16])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--fv-prompts", type=int, default=8)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = load_model(device="cpu")
    splits = Resources(demo_config()).splits("sst2")
    results = heads(model, splits, args)
    if args.sae_path:
        results += causal(model, splits, args)
    print()
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
