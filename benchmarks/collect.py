"""Cost of streaming statistics: ``collect`` against a bare forward pass and against ``run_with_cache``.

On the embedded Gemma 3 270M (float32, no weight processing) over the first ``--n`` (default
256) SST-2 validation sentences, batch 16, all 18 layers, the six default moments, ``alone``
(BOS + sentence), measured in one run:

* **time** — ``collect`` end to end (tokenisation, planning, hooks, statistics, result object)
  against the bare forward passes over the *same* right-padded batches without hooks:
  (a) stopped after the last block (``stop_at_layer=n_layers``, what ``collect`` itself runs: the
  honest target) and (b) the full ``model(tokens)`` including the 262k-word unembedding.
  Paired design: each batch is run by every method back to back in rotating order (so the
  background load of a shared machine affects all methods alike); a method's time is the sum
  over batches of its per-batch median over ``--rounds`` rounds, after a warm-up.
* **memory** — extra peak memory over the bare stopped forward pass. Measured exactly, not from
  RSS: PyTorch's profiler (``profile_memory=True``) records every tensor allocation and free, and
  the running sum's maximum is the peak of live tensor bytes during the run; ``tracemalloc``
  adds the peak of Python/NumPy allocations (result arrays). For CUDA runs,
  ``torch.cuda.max_memory_allocated`` is used instead. The baseline ``run_with_cache`` keeps all
  18 ``hook_mlp_out`` activations of each batch (``names_filter``, same stop layer) and computes
  the same moments from the cache, one batch at a time.
* **throughput** — real tokens (BOS included) per second of ``collect``.

Run: ``python benchmarks/collect.py`` (``--n``, ``--rounds``, ``--device``).
"""

from __future__ import annotations

import os
import sys

# benchmarks/ holds selectors.py, named like the standard library module that subprocess (and
# so torch) imports; drop this script's folder from the import path so the stdlib one is found.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mechsel.collection import CollectConfig, collect  # noqa: E402
from mechsel.collection.plan import build_plan, make_batches, pad_batch  # noqa: E402
from mechsel.models import load_model  # noqa: E402
from mechsel.stats import Moments  # noqa: E402
from mechsel.tasks.loading import load_rows  # noqa: E402


def sst2(n: int) -> list[str]:
    """The first ``n`` SST-2 validation sentences."""
    rows = [row["sentence"] for row in load_rows("sst2", "validation")[:n]]
    if len(rows) < n:
        raise SystemExit(f"Only {len(rows)} SST-2 validation sentences available; pass --n {len(rows)} or fewer.")
    return rows


def batches_like_collect(model, texts: list[str], batch_size: int):
    cfg = CollectConfig(batch_size=batch_size, progress=False)
    plan = build_plan(model, texts, cfg)
    pad = model.tokenizer.pad_token_id if model.tokenizer.pad_token_id is not None else 0
    return [pad_batch(b, pad) for b in make_batches(plan, batch_size)]


def run_collect(model, texts, batch_size):
    return collect(model, texts, batch_size=batch_size, progress=False)


def run_forward(model, batches, stop):
    device = model.cfg.device
    with torch.inference_mode():
        for b in batches:
            out = model(b.tokens.to(device), attention_mask=b.attention_mask.to(device), stop_at_layer=stop)
            del out


def run_cache(model, batches, n_rows):
    """The naive pipeline: cache every layer's hook_mlp_out of a batch, then compute the moments."""
    device, n_layers = model.cfg.device, model.cfg.n_layers
    names = [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)]
    reducer = Moments()
    out = {name: np.full((n_rows, n_layers), np.nan) for name in reducer.statistic_names()}
    with torch.inference_mode():
        for b in batches:
            tokens, mask = b.tokens.to(device), b.attention_mask.to(device)
            _, cache = model.run_with_cache(tokens, attention_mask=mask, names_filter=names, stop_at_layer=n_layers)
            select, groups = b.select.to(device), b.groups.to(device)
            for layer, name in enumerate(names):
                acts = cache[name].reshape(-1, cache[name].shape[-1]).index_select(0, select)
                for stat, value in reducer.reduce(acts, groups, len(b.rows), layer).items():
                    out[stat][b.rows, layer] = value.cpu().numpy()
            del cache
    return out


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_extra_bytes(fn: Callable[[], object], device: str) -> int:
    """Peak bytes allocated by ``fn`` above what was live when it started (see module docstring)."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    tracemalloc.start()
    py_base = tracemalloc.get_traced_memory()[0]
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    py_peak = tracemalloc.get_traced_memory()[1] - py_base
    tracemalloc.stop()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"), key=lambda e: e.start_ns())
    live = np.cumsum([e.nbytes() for e in events]) if events else np.zeros(1)
    return int(max(0, live.max())) + py_peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=256, help="number of SST-2 validation sentences (>= 256 for the report)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=1, help="timing rounds (per-batch median, summed)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    model = load_model(device=args.device)
    texts = sst2(args.n)
    n_layers = model.cfg.n_layers
    batches = batches_like_collect(model, texts, args.batch_size)
    n_tokens = int(sum(b.attention_mask.sum() for b in batches))
    padded = int(sum(b.tokens.numel() for b in batches))
    print(f"model {model.cfg.model_name}, {n_layers} layers, device {args.device}, threads {torch.get_num_threads()}")
    print(f"{len(texts)} sentences, {len(batches)} batches of <= {args.batch_size}, {n_tokens} tokens ({padded} with padding)")

    # Paired design: every batch is run by every method back to back (order rotating), so
    # background load on a shared machine hits all methods alike; totals are sums over batches.
    batch_texts = [[texts[row] for row in b.rows] for b in batches]
    per_batch = {
        "collect": lambda i: run_collect(model, batch_texts[i], args.batch_size),
        "forward_stopped": lambda i: run_forward(model, batches[i : i + 1], n_layers),
        "forward_full": lambda i: run_forward(model, batches[i : i + 1], None),
        "run_with_cache": lambda i: run_cache(model, batches[i : i + 1], len(texts)),
    }
    for fn in per_batch.values():  # warm-up on the shortest batch
        fn(len(batches) - 1)
    times: dict[str, np.ndarray] = {name: np.zeros((args.rounds, len(batches))) for name in per_batch}
    for r in range(args.rounds):
        for i in range(len(batches)):
            names = list(per_batch)
            shift = (i + r) % len(names)
            for name in names[shift:] + names[:shift]:
                times[name][r, i] = timed(lambda name=name, i=i: per_batch[name](i))
        print(f"round {r + 1}: " + ", ".join(f"{k} {v[r].sum():.1f}s" for k, v in times.items()), flush=True)
    med = {name: float(np.median(v, axis=0).sum()) for name, v in times.items()}
    whole_runs = {  # memory is measured over the whole data set, in one call per method
        "forward_stopped": lambda: run_forward(model, batches, n_layers),
        "collect": lambda: run_collect(model, texts, args.batch_size),
        "run_with_cache": lambda: run_cache(model, batches, len(texts)),
    }
    mem = {name: peak_extra_bytes(fn, args.device) for name, fn in whole_runs.items()}
    extra_collect = mem["collect"] - mem["forward_stopped"]
    extra_cache = mem["run_with_cache"] - mem["forward_stopped"]

    ratio_stop = med["collect"] / med["forward_stopped"]
    ratio_full = med["collect"] / med["forward_full"]
    mem_ratio = extra_collect / extra_cache
    tps = n_tokens / med["collect"]
    print()
    print(f"{'method':<16}{'median s':>10}{'tokens/s':>12}{'peak MiB':>10}")
    for name in med:
        peak = f"{mem[name] / 2**20:10.1f}" if name in mem else f"{'-':>10}"
        print(f"{name:<16}{med[name]:10.2f}{n_tokens / med[name]:12.0f}{peak}")
    print(f"extra peak over forward_stopped: collect {extra_collect / 2**20:.2f} MiB, run_with_cache {extra_cache / 2**20:.2f} MiB")
    print(f"run_with_cache time / forward_stopped: {med['run_with_cache'] / med['forward_stopped']:.3f}")
    print()
    print(f"RESULT collect_time_over_forward_stopped {ratio_stop:.3f} target <= 1.15")
    print(f"RESULT collect_time_over_forward_full {ratio_full:.3f} target <= 1.15")
    print(f"RESULT collect_extra_peak_memory_over_run_with_cache {mem_ratio:.3f} target <= 0.1")
    print(f"RESULT collect_tokens_per_second {tps:.0f} target >= {n_tokens / med['forward_stopped'] / 1.15:.0f}")


if __name__ == "__main__":
    main()
