"""Cost per token of the paper's model shape against the embedded model, measured in one process.

The paper ran Qwen2.5-3B and Llama-3.2-3B. Their weights are not reachable offline, but cost
depends on shapes, not values: this builds a **random-weight HookedTransformer with Qwen2.5-3B's
exact shapes** (36 layers, d_model 2,048, 16 query and 2 key/value heads of 128, gated SiLU MLP
of 11,008, vocabulary 151,936, RMSNorm, rotary base 10⁶, q/k/v biases; about 3.4 billion
parameters, 13.7 GB in float32 with TransformerLens's separate unembedding) and times the two
workloads the study spends its time on, against the embedded Gemma 3 270M on the same machine:

* **collect**: :func:`mechsel.collect` of every layer's ``hook_mlp_out`` moments (mask ``alone``)
  over SST-2 candidate sentences;
* **scoring**: :func:`mechsel.icl.evaluate` of a 4-shot set over SST-2 test queries (the
  demonstrations' keys and values encoded once and shared, the unit of ``evaluate`` and of the
  sequential stage).

Each model's tokenizer sets its own token counts (the random model carries a byte-level stand-in,
so the same sentences cost it more tokens); the figures are seconds per processed token, and
their ratio — the 3B shape's cost per token over the embedded model's — is what the paper-grid
estimate multiplies by (instead of the parameter ratio). ``--device cuda`` runs both on a GPU
(bfloat16 for the 3B shape there) and reports tokens/s and the fraction of the bf16 peak given
with ``--peak-tflops``.

Run: ``benchmarks/run.sh arch_cost`` (about 10 minutes on 2 cores; needs ~16 GB free RAM).
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import gc  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from mechsel.collection import collect  # noqa: E402
from mechsel.icl import ICLRunner, ScoringConfig, evaluate  # noqa: E402
from mechsel.models import load_model, tiny_model  # noqa: E402
from mechsel.tasks import PromptEncoder, SplitConfig, make_splits  # noqa: E402

QWEN25_3B = {
    "n_layers": 36,
    "d_model": 2048,
    "n_heads": 16,
    "d_mlp": 11008,
    "d_vocab": 151936,
    "n_ctx": 2048,
    "act_fn": "silu",
    "gated_mlp": True,
    "n_key_value_heads": 2,
    "rotary_dim": 128,
    "final_rms": True,
    "original_architecture": "Qwen2ForCausalLM",
    "rotary_base": 1000000.0,
    "eps": 1e-6,
}
"""Qwen2.5-3B's shapes (its published config.json), as HookedTransformerConfig fields."""


def qwen_shaped(device: str, dtype: torch.dtype) -> torch.nn.Module:
    """A random-weight model with Qwen2.5-3B's shapes (d_head = 2048 / 16 = 128)."""
    model = tiny_model(seed=0, **QWEN25_3B)
    if dtype != torch.float32:
        model = model.to(dtype)
    return model.to(device) if device != "cpu" else model


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def time_workloads(model, splits, n_collect: int, n_queries: int, rounds: int) -> dict[str, float]:
    """Seconds per token of collect and scoring (best of ``rounds``, after one warm-up)."""
    texts = [e.text() for e in list(splits.pool)[:n_collect]]
    runner = ICLRunner(model, "sst2", scoring=ScoringConfig())
    enc = PromptEncoder("sst2", runner.tokenizer, bos_token_id=runner.tokenizer.bos_token_id)
    demos, queries = list(splits.pool)[:4], list(splits.test)[:n_queries]
    collect_tokens = sum(1 + len(runner.tokenizer.encode(t)) for t in texts)
    prompts = [enc.build(demos, q).tokens for q in queries]
    prefix = next(i for i, (a, b) in enumerate(zip(prompts[0], prompts[1])) if a != b)  # the shared demonstrations
    score_tokens = prefix + sum(len(t) - prefix for t in prompts)  # the prefix is encoded once
    out: dict[str, float] = {"collect_tokens": collect_tokens, "score_tokens": score_tokens}
    for name, fn in (
        ("collect", lambda: collect(model, texts, mask="alone", batch_size=8, progress=False)),
        ("score", lambda: evaluate(runner, queries, demos, n_boot=10)),
    ):
        fn()  # warm-up
        best = float("inf")
        for _ in range(rounds):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        out[f"{name}_seconds"] = best
        out[f"{name}_s_per_token"] = best / out[f"{name}_tokens"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collect", type=int, default=16, help="candidate sentences collected")
    parser.add_argument("--queries", type=int, default=16, help="test queries scored against one 4-shot set")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's dense bf16 peak, for the fraction reached")
    args = parser.parse_args()
    splits = make_splits("sst2", SplitConfig(pool_size=48, dev_size=8, test_size=max(args.queries, 8), seed=0))
    print(
        f"device: {args.device}"
        + (f" ({torch.cuda.get_device_name()})" if args.device.startswith("cuda") else f" ({os.cpu_count()} cores)")
    )

    gemma = load_model()
    if args.device != "cpu":
        gemma = gemma.to(args.device)
    small = time_workloads(gemma, splits, args.collect, args.queries, args.rounds)
    small_params = n_params(gemma)
    del gemma
    gc.collect()

    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    t0 = time.perf_counter()
    big_model = qwen_shaped(args.device, dtype)
    built = time.perf_counter() - t0
    big_params = n_params(big_model)
    big = time_workloads(big_model, splits, args.collect, args.queries, args.rounds)

    print(f"embedded Gemma 3 270M: {small_params / 1e6:.0f} M parameters (float32)")
    print(f"Qwen2.5-3B shape, random weights: {big_params / 1e9:.2f} B parameters ({dtype}), built in {built:.0f} s")
    for label, r in (("gemma-270m", small), ("qwen2.5-3b-shape", big)):
        print(
            f"  {label:18s} collect {r['collect_seconds']:7.2f} s for {int(r['collect_tokens'])} tokens "
            f"({1 / r['collect_s_per_token']:8.1f} tok/s); scoring {r['score_seconds']:7.2f} s for {int(r['score_tokens'])} tokens "
            f"({1 / r['score_s_per_token']:8.1f} tok/s)"
        )
    ratio_c = big["collect_s_per_token"] / small["collect_s_per_token"]
    ratio_s = big["score_s_per_token"] / small["score_s_per_token"]
    print(f"parameter ratio: {big_params / small_params:.1f}")
    if args.peak_tflops:
        for name in ("collect", "score"):
            achieved = 2 * big_params / big[f"{name}_s_per_token"] / 1e12
            print(f"  {name}: {achieved:.1f} TFLOP/s = {achieved / args.peak_tflops:.1%} of the {args.peak_tflops:.0f} TFLOP/s bf16 peak")
    print(f"RESULT qwen3b_shape_collect_cost_per_token_over_gemma270m {ratio_c:.2f} target measured")
    print(f"RESULT qwen3b_shape_scoring_cost_per_token_over_gemma270m {ratio_s:.2f} target measured")


if __name__ == "__main__":
    main()
