# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Selection time and memory of every selector on a 10,000-example SST-2 pool, k = 18 and 100.

Embeddings (offline all-MiniLM-L6-v2) are computed once and cached before any timing. Model-
dependent inputs are stand-ins with the right shapes, so the numbers are selection overhead
only: label distributions and confidences are seeded random arrays (``votek`` and iterative
``least_confidence`` call a ``confidence_fn`` that returns them instantly), activation
statistics a random 18-layer table, NeuFS neuron sets drawn around 30 latent "topics".
Retrieval (``knn``, ``bm25``, ``random``) is timed for the 872 SST-2 validation sentences against
1,000 annotated pool examples.

Baselines measured in the same run: the vote-k and IDEAL reference code's algorithms (a Python
dict loop over all voters per greedy step; per-candidate cascades re-simulated for every
candidate in every round) are timed on a sample and extrapolated to the full run.

Run: ``python benchmarks/selectors.py`` (``--n`` to change the pool size).
"""

from __future__ import annotations

import os
import sys

# This file is named like the standard library's ``selectors`` module (which asyncio, socket and
# subprocess import); drop the script's folder from the import path so the stdlib one is found.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import json
import logging
import random
import time
import tracemalloc
from collections import defaultdict

import numpy as np
import pandas as pd

from mechsel.embeddings import embed_texts
from mechsel.paths import data_dir
from mechsel.selectors import Pool, Queries, get_selector
from mechsel.selectors.graphs import knn, unit_rows
from mechsel.selectors.ideal import influence_graph

KS = (18, 100)


def load(split: str, n: int | None) -> list[str]:
    rows = []
    with open(data_dir() / "sst2" / f"{split}.jsonl") as fh:
        for line in fh:
            rows.append(json.loads(line)["sentence"])
            if n is not None and len(rows) == n:
                break
    return rows


def synthetic_inputs(n: int, rng: np.random.Generator) -> dict:
    probs = rng.dirichlet([1.0, 1.0], size=n)
    cols = pd.MultiIndex.from_tuples([(layer, s) for layer in range(18) for s in ("mean", "variance", "skewness", "kurtosis")])
    stats = pd.DataFrame(rng.normal(size=(n, len(cols))), columns=cols)
    topics = rng.integers(30, size=n)
    preferred = rng.integers(2048, size=(30, 18, 40))
    sets = []
    for t in topics:
        own = preferred[t][:, rng.random(40) < 0.7]
        noise = rng.integers(2048, size=(18, 8))
        sets.append(frozenset((layer, int(x)) for layer in range(18) for x in np.concatenate([own[layer], noise[layer]])))
    return {"label_probs": probs, "statistics": stats, "neuron_sets": sets, "confidence": rng.random(n)}


def timed(fn, *, trace: bool = False) -> tuple[float, float, object]:
    """(seconds, peak traced MiB or nan, result)."""
    if trace:
        tracemalloc.start()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    peak = float("nan")
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return dt, peak, out


def reference_votek_step_seconds(unit: np.ndarray, k_nbrs: int, steps: int = 2) -> float:
    """Seconds per greedy step of the reference loop (dict of voter lists, rescored from scratch)."""
    nbrs, _ = knn(unit, k_nbrs)
    vote_stat = defaultdict(list)
    for v in range(len(unit)):
        for u in nbrs[v].tolist():
            vote_stat[u].append(v)
    votes = sorted(vote_stat.items(), key=lambda x: len(x[1]), reverse=True)
    selected, times = [], defaultdict(int)
    t = time.perf_counter()
    for _ in range(steps):
        scores = defaultdict(int)
        chosen = set(selected)
        for idx, cands in votes:
            if idx in chosen:
                scores[idx] = -100
                continue
            for v in cands:
                if v not in chosen:
                    scores[idx] += 10 ** (-times[v])
        best = max(scores.items(), key=lambda x: x[1])[0]
        selected.append(best)
        for v in vote_stat[best]:
            times[v] += 1
    return (time.perf_counter() - t) / steps


def reference_knn_loop_seconds(unit: np.ndarray, k_nbrs: int, sample: int = 200) -> float:
    """Seconds for the reference's one-row-at-a-time kNN graph (full argsort per row), extrapolated to n rows."""
    t = time.perf_counter()
    for i in range(sample):
        np.argsort(unit @ unit[i])[-k_nbrs - 1 : -1]
    return (time.perf_counter() - t) / sample * len(unit)


def reference_ideal_eval_seconds(unit: np.ndarray, sample: int = 40) -> float:
    """Seconds per candidate evaluation of the reference's greedy: 10 fresh cascades from {seed, candidate}."""
    nbrs, w = influence_graph(unit, 10)
    succ = [list(zip(nbrs[v].tolist(), w[v].tolist())) for v in range(len(unit))]
    rnd = random.Random(0)
    t = time.perf_counter()
    for c in range(1, sample + 1):
        for _ in range(10):
            active, frontier = {0, c}, [0, c]
            while frontier:
                nxt = []
                for v in frontier:
                    for u, p in succ[v]:
                        if u not in active and rnd.random() < p:
                            active.add(u)
                            nxt.append(u)
                frontier = nxt
    return (time.perf_counter() - t) / sample


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="pool size (first n SST-2 training sentences)")
    ap.add_argument("--annotated", type=int, default=1_000, help="annotated set size for retrieval timings")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    texts = load("train", args.n)
    queries = load("validation", None)
    t = time.perf_counter()
    emb, q_emb = embed_texts(texts), embed_texts(queries)
    print(f"embeddings: {emb.shape} pool + {q_emb.shape} queries in {time.perf_counter() - t:.1f} s (cached after the first run)")
    rng = np.random.default_rng(0)
    syn = synthetic_inputs(len(texts), rng)
    pool = Pool.from_texts(
        texts, embeddings=emb, label_probs=syn["label_probs"], statistics=syn["statistics"], neuron_sets=syn["neuron_sets"]
    )
    n = len(pool)
    nxn_mib = n * n * 4 / 2**20
    confidence_fn = lambda selected: syn["confidence"]  # noqa: E731

    annotate = {
        "random": {},
        "activation": {"statistic": "kurtosis"},
        "diversity": {},
        "kmeans": {},
        "facility_location": {},
        "sub_sa": {},
        "fast_votek": {},
        "votek": {"confidence_fn": confidence_fn},
        "ideal": {},
        "least_confidence": {"confidence_fn": confidence_fn},
        "margin": {},
        "entropy": {},
        "neufs": {},
    }
    times: dict[tuple[str, int], float] = {}
    peaks: dict[str, float] = {}
    print(f"\n{'selector':<20}{'k':>5}{'seconds':>10}{'peak MiB':>10}")
    for name, params in annotate.items():
        for k in KS:
            dt, _, sel = timed(lambda: get_selector(name, **params).select(pool, k, seed=0))
            times[name, k] = dt
            peak = float("nan")
            if k == KS[-1] and name in ("fast_votek", "ideal", "facility_location", "votek", "diversity", "sub_sa"):
                _, peak, _ = timed(lambda: get_selector(name, **params).select(pool, k, seed=0), trace=True)
                peaks[name] = peak
            print(f"{name:<20}{k:>5}{dt:>10.2f}{peak:>10.1f}", flush=True)

    annotated = np.random.default_rng(1).choice(n, size=min(args.annotated, n), replace=False)
    qs = Queries(texts=queries, embeddings=q_emb)
    for name in ("knn", "bm25", "random"):
        for k in KS:
            dt, _, _ = timed(lambda: get_selector(name).retrieve(pool, annotated, qs, k, seed=0))
            times[f"retrieve:{name}", k] = dt
            print(f"{'retrieve:' + name:<20}{k:>5}{dt:>10.2f}{'':>10}  ({len(queries)} queries)", flush=True)

    unit = unit_rows(emb, center=True)
    ref_knn = reference_knn_loop_seconds(unit, 150)
    ref_votek = {k: ref_knn + k * reference_votek_step_seconds(unit, 150) for k in KS}
    ref_ideal = {k: ref_knn + k * n * reference_ideal_eval_seconds(unit) for k in KS}
    print(f"\nreference-style estimates (extrapolated): fast vote-k {ref_votek}, IDEAL {ref_ideal}")
    print(f"n x n float32 matrix at n={n}: {nxn_mib:.0f} MiB; peak traced MiB at k={KS[-1]}: {peaks}\n")

    for k in KS:
        print(f"RESULT fast_votek_k{k}_seconds {times['fast_votek', k]:.2f} target <= 60")
        print(f"RESULT ideal_k{k}_seconds {times['ideal', k]:.2f} target <= 60")
    print(f"RESULT fast_votek_speedup_vs_reference_k{KS[-1]} {ref_votek[KS[-1]] / times['fast_votek', KS[-1]]:.1f} target >= 1")
    print(f"RESULT ideal_speedup_vs_reference_k{KS[-1]} {ref_ideal[KS[-1]] / times['ideal', KS[-1]]:.0f} target >= 1")
    print(f"RESULT fast_votek_peak_memory_fraction_of_nxn {peaks['fast_votek'] / nxn_mib:.3f} target <= 0.25")
    print(f"RESULT ideal_peak_memory_fraction_of_nxn {peaks['ideal'] / nxn_mib:.3f} target <= 0.25")
    print(f"RESULT facility_location_peak_memory_fraction_of_nxn {peaks['facility_location'] / nxn_mib:.3f} target <= 0.25")


if __name__ == "__main__":
    main()
