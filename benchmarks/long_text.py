"""Where the time of one long text goes: ``mechsel.collect`` on a single text of ``--tokens`` tokens.

Issue 14 measured 145 s for a 5,000-token text through ``mechsel.collect``. This benchmark runs
``collect`` (embedded Gemma 3 270M, float32, all 18 layers, the default moments, ``alone``) on one
text of SST-2 validation sentences joined to ``--tokens`` tokens, under ``cProfile``, and splits
the time by TransformerLens component: attention (scores, the causal / sliding-window masking,
softmax, the weighted sum), the MLPs, and everything mechsel itself does (hooks, statistics,
planning). Ratios within one run, so a shared machine's load affects all parts alike.

Run: ``python benchmarks/long_text.py --tokens 5000`` (``--threads``).
"""

from __future__ import annotations

import os
import sys

if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)  # benchmarks/selectors.py would shadow the standard library's selectors

import argparse  # noqa: E402
import cProfile  # noqa: E402
import json  # noqa: E402
import pstats  # noqa: E402
import time  # noqa: E402


def _cumulative(stats: pstats.Stats, file_part: str, function: str) -> float:
    return sum(v[3] for (f, _, name), v in stats.stats.items() if file_part in f and name == function)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=5000, help="tokens in the text (BOS included)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import torch

    import mechsel
    from mechsel.paths import data_dir

    torch.set_num_threads(args.threads)
    model = mechsel.load_model()
    with open(data_dir() / "sst2" / "validation.jsonl", encoding="utf-8") as fh:
        words = " ".join(json.loads(line)["sentence"] for line in fh)
    ids = model.tokenizer(words)["input_ids"][1 : args.tokens]
    text = model.tokenizer.decode(ids)
    mechsel.collect(model, ["warm up"], progress=False)
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    result = mechsel.collect(model, [text], progress=False)
    profile.disable()
    total = time.perf_counter() - start
    stats = pstats.Stats(profile)
    attention = _cumulative(stats, "abstract_attention.py", "forward")
    mlp = _cumulative(stats, "gated_mlp.py", "forward")
    model_time = _cumulative(stats, "HookedTransformer.py", "forward")
    n_tokens = int(result.to_frame()["n_tokens"].iloc[0]) + 1
    window = getattr(model.cfg, "window_size", None)
    local = sum(1 for t in (model.cfg.attn_types or []) if t == "local")
    print(f"RESULT long_text tokens={n_tokens} threads={args.threads} seconds={total:.1f}")
    print(
        f"RESULT long_text attention_share={attention / total:.3f} mlp_share={mlp / total:.3f} "
        f"outside_model_share={(total - model_time) / total:.3f}"
    )
    print(f"RESULT long_text sliding_window={window} local_layers={local}/{model.cfg.n_layers}")


if __name__ == "__main__":
    main()
