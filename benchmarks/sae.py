"""SAEs on the embedded model: reconstruction as the field measures it, and the cost of SAE statistics.

Two measurements on the embedded Gemma 3 270M (float32, no weight processing), in one process:

* **training and quality** — ``mechsel train-sae`` with its defaults for the data
  (:func:`mechsel.train_sae`): one TopK SAE on ``blocks.{L}.hook_mlp_out`` (default layer 9
  of 18, ``d_sae=4096``, ``k=32``, steps of 256 tokens, 500k training tokens) trained on
  *demonstration segments* of SST-2 and AG News train examples — template, text and label word,
  4 to a prompt after one BOS, read at the tokens the statistics read (text and label tokens; BOS
  and template excluded; mask ``full``) — with every candidate, dev and test example of the
  ``demo`` and ``quick`` configs left out (checked again here from the hashes saved beside the
  SAE). Reported on 20k held-out demonstration tokens (whole held-out prompts): FVU and explained
  variance against the held-out tokens' mean, per-token MSE, cosine, L0, dead fraction, and the
  spliced-in loss on the first 5k of those tokens: clean, with the SAE's reconstruction in place
  of ``hook_mlp_out``, and mean-ablated, giving the CE loss recovered. For comparison the same SAE
  is evaluated on plain text (BOS + sentence, every token but BOS) of the first ``--n-plain``
  SST-2 validation sentences, against their own mean. Targets: explained variance ≥ 0.7 on held-out
  demonstration segments, CE loss recovered ≥ 0.8, training ≤ 30 minutes on 2 CPU cores.
* **overhead** — ``collect`` with the six default moments *plus* the SAE statistics
  (:class:`~mechsel.sae.statistics.SAEStatistics`, the defaults, and the top 8 latents,
  :class:`~mechsel.sae.statistics.SAETopLatents`) against ``collect`` with the moments alone, on
  the same first ``--n-overhead`` SST-2 validation sentences, the same layer, batch 16. Paired
  design: each chunk of ``--chunk`` sentences is run by both methods back to back in alternating
  order; a method's time is the sum over chunks of its per-chunk median over ``--rounds`` rounds
  (after a warm-up). The SAE/model match check of :func:`~mechsel.sae.statistics.collect_sae`
  runs once, outside the timing (it is a one-off per call, not a per-token cost).

Run: ``python benchmarks/sae.py`` (full), or a smoke run, e.g.
``python benchmarks/sae.py --n-train-tokens 40000 --n-eval-tokens 4000 --buffer-tokens 16384 --n-overhead 64``.
``--sae-path`` skips training and measures the rest with a saved SAE folder.
"""

from __future__ import annotations

import os
import sys

# benchmarks/ holds selectors.py, named like the standard library module that subprocess (and
# so torch) imports; drop this script's folder from the import path so the stdlib one is found.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from mechsel import train_sae  # noqa: E402
from mechsel.collection import collect  # noqa: E402
from mechsel.models import load_model  # noqa: E402
from mechsel.sae.config import SAETrainConfig  # noqa: E402
from mechsel.sae.loading import check_sae_matches, load_sae  # noqa: E402
from mechsel.sae.statistics import SAEStatistics, SAETopLatents  # noqa: E402
from mechsel.stats import DEFAULT_MOMENTS  # noqa: E402
from mechsel.tasks.loading import load_rows  # noqa: E402

TARGET_MINUTES = 30.0
TARGET_TOKENS = 500_000
TARGET_EV = 0.7
TARGET_L0 = 64
TARGET_OVERHEAD = 1.5
TARGET_DEAD = 0.1
TARGET_CE_RECOVERED = 0.8


def sst2(n: int) -> list[str]:
    """The first ``n`` SST-2 validation sentences."""
    rows = [row["sentence"] for row in load_rows("sst2", "validation")[:n]]
    if len(rows) < n:
        raise SystemExit(f"Only {len(rows)} SST-2 validation sentences available; pass --n-overhead {len(rows)} or fewer.")
    return rows


def plain_text_quality(model, sae, layer: int, n: int) -> dict[str, float]:
    """The SAE on plain SST-2 validation sentences (BOS + sentence), against their own mean."""
    from mechsel.collection import CollectConfig
    from mechsel.collection.selected import iter_selected
    from mechsel.sae.evaluation import evaluate_sae

    config = CollectConfig(layers=(layer,), mask="alone", positions="all", progress=False)
    acts = torch.cat([block[layer] for block in iter_selected(model, sst2(n), config)])
    return evaluate_sae(sae, acts)


def disjointness(sae_folder) -> int:
    """How many candidate, dev and test examples of the demo and quick configs the SAE trained on."""
    from mechsel.experiment import demo_config
    from mechsel.experiment.resources import Resources
    from mechsel.sae.demonstrations import training_overlap

    texts = []
    for quick in (False, True):
        config = demo_config(quick=quick)
        res = Resources(config)
        for task in config.tasks:
            splits = res.splits(task.name)
            texts += [e.text() for e in splits.examples]
    overlap = training_overlap(sae_folder, texts)
    if overlap is None:
        raise SystemExit(f"{sae_folder} holds no record of its training texts; train it with mechsel train-sae.")
    return overlap


def train(model, args) -> tuple[object, dict[str, float], dict[str, float], int]:
    config = SAETrainConfig(
        layers=(args.layer,),
        d_sae=args.d_sae,
        k=args.k,
        n_train_tokens=args.n_train_tokens,
        n_eval_tokens=args.n_eval_tokens,
        batch_size=args.batch_size,
        buffer_tokens=args.buffer_tokens,
        lr=args.lr,
        dead_feature_window=args.dead_feature_window,
        seed=args.seed,
        progress=False,
    )
    print(f"training config: {json.dumps(config.to_dict())}", flush=True)
    result = train_sae(model, config)
    metrics = result.metrics[args.layer]
    return result, metrics, result.seconds, config.n_steps * config.batch_size


def overhead(model, sae, layer: int, texts: list[str], chunk: int, rounds: int) -> tuple[float, dict[str, float]]:
    check_sae_matches(sae, model, "mlp_out", layer=layer)
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]

    def moments(part):
        return collect(model, part, layers=[layer], statistics=DEFAULT_MOMENTS, progress=False)

    def with_sae(part):
        reducers = [*DEFAULT_MOMENTS, SAEStatistics({layer: sae}), SAETopLatents({layer: sae}, k=8)]
        return collect(model, part, layers=[layer], statistics=reducers, progress=False)

    methods = {"moments": moments, "moments+sae": with_sae}
    for fn in methods.values():  # warm-up
        fn(chunks[-1])
    times = {name: np.zeros((rounds, len(chunks))) for name in methods}
    for r in range(rounds):
        for i, part in enumerate(chunks):
            order = list(methods) if (i + r) % 2 == 0 else list(methods)[::-1]
            for name in order:
                start = time.perf_counter()
                methods[name](part)
                times[name][r, i] = time.perf_counter() - start
        print(f"overhead round {r + 1}: " + ", ".join(f"{k} {v[r].sum():.2f}s" for k, v in times.items()), flush=True)
    med = {name: float(np.median(v, axis=0).sum()) for name, v in times.items()}
    return med["moments+sae"] / med["moments"], med


def main() -> None:
    defaults = SAETrainConfig()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layer", type=int, default=9, help="block whose hook_mlp_out the SAE reads")
    parser.add_argument("--d-sae", type=int, default=defaults.d_sae)
    parser.add_argument("--k", type=int, default=defaults.k, help="TopK active latents per token")
    parser.add_argument("--n-train-tokens", type=int, default=TARGET_TOKENS)
    parser.add_argument("--n-eval-tokens", type=int, default=defaults.n_eval_tokens)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="tokens per SAE step")
    parser.add_argument("--buffer-tokens", type=int, default=defaults.buffer_tokens)
    parser.add_argument("--lr", type=float, default=defaults.lr)
    parser.add_argument("--dead-feature-window", type=int, default=defaults.dead_feature_window, help="steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sae-path", default=None, help="skip training; measure the overhead with this saved SAE folder")
    parser.add_argument("--n-overhead", type=int, default=256, help="SST-2 validation sentences for the overhead ratio")
    parser.add_argument("--n-plain", type=int, default=500, help="SST-2 validation sentences for the plain-text comparison")
    parser.add_argument("--chunk", type=int, default=32, help="sentences per paired timing chunk")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    t0 = time.perf_counter()
    model = load_model(device="cpu")
    print(
        f"model {model.cfg.model_name}, {model.cfg.n_layers} layers, threads {torch.get_num_threads()}, "
        f"loaded in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )

    results: list[str] = []
    if args.sae_path is None:
        result, m, seconds, tokens = train(model, args)
        sae, layer = result.saes[args.layer], args.layer
        minutes = seconds["total"] / 60
        act_tps = tokens / seconds["activations"] if seconds["activations"] > 0 else float("nan")
        total_tps = tokens / seconds["total"]
        print(f"saved SAE (sae-lens format): {result.path / f'layer_{layer}'}")
        print(
            f"trained layer {layer}: {tokens} tokens in {seconds['total']:.0f}s "
            f"(activations {seconds['activations']:.0f}s, SAE steps + eval + saving {seconds['training']:.0f}s)"
        )
        print(f"throughput: {total_tps:.0f} tokens/s overall, {act_tps:.0f} tokens/s activation generation")
        print("held-out demonstration-segment metrics: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items()))
        print(f"training data: {json.dumps(sae.cfg.metadata.mechsel.get('disjoint_from'))}")
        projected = TARGET_TOKENS / total_tps / 60
        missed = []
        if minutes > TARGET_MINUTES or tokens < TARGET_TOKENS:
            missed.append(
                f"time/tokens: at the measured {total_tps:.0f} tokens/s, {TARGET_TOKENS} tokens take {projected:.1f} min "
                f"(activation generation alone {TARGET_TOKENS / act_tps / 60:.1f} min); the 30-minute budget needs "
                f"{TARGET_TOKENS / (TARGET_MINUTES * 60):.0f} tokens/s overall."
            )
        if m.get("ce_loss_recovered", 1.0) < TARGET_CE_RECOVERED:
            missed.append(
                f"CE loss recovered {m['ce_loss_recovered']:.3f} < {TARGET_CE_RECOVERED}: the reconstruction loses what the "
                f"model uses downstream; a larger d_sae or k, or more training tokens."
            )
        if m["explained_variance"] < TARGET_EV:
            missed.append(
                f"explained variance {m['explained_variance']:.3f} < {TARGET_EV} at L0 {m['l0']:.1f}: needs a larger k "
                f"(up to {TARGET_L0}), more training tokens or steps (smaller --batch-size), or a larger d_sae."
            )
        if m["l0"] > TARGET_L0:
            missed.append(f"L0 {m['l0']:.1f} > {TARGET_L0}: lower k.")
        if m["dead_fraction"] > TARGET_DEAD:
            missed.append(
                f"dead fraction {m['dead_fraction']:.3f} > {TARGET_DEAD}: revive latents sooner (lower "
                f"--dead-feature-window, a larger aux_loss_coefficient) or train on more tokens."
            )
        for line in missed:
            print("TARGET MISSED — " + line)
        results += [
            f"RESULT sae_train_minutes {minutes:.2f} target <= {TARGET_MINUTES:.0f}",
            f"RESULT sae_train_tokens {tokens} target >= {TARGET_TOKENS}",
            f"RESULT sae_minutes_for_500k_tokens_projected {projected:.2f} target <= {TARGET_MINUTES:.0f}",
            f"RESULT sae_heldout_demo_explained_variance {m['explained_variance']:.4f} target >= {TARGET_EV}",
            f"RESULT sae_heldout_demo_fvu {m['fvu']:.4f} target <= {1 - TARGET_EV:.1f}",
            f"RESULT sae_heldout_demo_mse_per_token {m['mse']:.1f}",
            f"RESULT sae_heldout_demo_cosine {m['cosine']:.4f}",
            f"RESULT sae_ce_loss_recovered {m['ce_loss_recovered']:.4f} target >= {TARGET_CE_RECOVERED}",
            f"RESULT sae_spliced_loss_nats {m['spliced_loss']:.4f} (clean {m['clean_loss']:.4f}, mean-ablated {m['ablated_loss']:.4f})",
            f"RESULT sae_l0 {m['l0']:.2f} target <= {TARGET_L0}",
            f"RESULT sae_dead_fraction {m['dead_fraction']:.4f} target <= {TARGET_DEAD}",
            f"RESULT sae_fvu_over_mean_baseline {m['fvu'] / m['baseline_fvu']:.4f} target < 1",
        ]
    else:
        sae = load_sae(path=args.sae_path)
        from mechsel.sae.loading import sae_layer

        layer = sae_layer(sae)
        print(f"loaded SAE {args.sae_path} (layer {layer}, d_sae {sae.cfg.d_sae})")

    folder = args.sae_path if args.sae_path is not None else result.path / f"layer_{layer}"
    overlap = disjointness(folder)
    plain = plain_text_quality(model, sae, layer, args.n_plain)
    print("plain-text metrics (SST-2 validation, BOS + sentence): " + ", ".join(f"{k} {v:.4f}" for k, v in plain.items()))
    results += [
        f"RESULT sae_training_overlap_with_demo_examples {overlap} target == 0",
        f"RESULT sae_plain_text_explained_variance {plain['explained_variance']:.4f}",
    ]
    texts = sst2(args.n_overhead)
    ratio, med = overhead(model, sae, layer, texts, args.chunk, args.rounds)
    print(
        f"overhead on {len(texts)} SST-2 sentences, layer {layer}: moments {med['moments']:.2f}s, "
        f"moments+sae {med['moments+sae']:.2f}s (sum of per-chunk medians over {args.rounds} rounds)"
    )
    results.insert(0, f"RESULT sae_overhead_ratio {ratio:.3f} target <= {TARGET_OVERHEAD}")
    print()
    for line in results:
        print(line)


if __name__ == "__main__":
    main()
