# ruff: noqa: E402  (imports follow the sys.path fix below)
"""SST-2 baselines on the embedded Gemma 3 270M: 0-shot and random k-shot test accuracy.

Test queries: 500 examples drawn (seed 0) from GLUE SST-2 validation (the hub's test split is
unlabelled); demonstrations: ``k`` examples drawn uniformly from a 1,000-example pool of SST-2
train, one draw per seed, in drawn order. Template ``Review: {sentence}\\nSentiment:``, answers
`` negative`` / `` positive``, scored by full-vocabulary log-probability. Each condition is
reported with a 95% percentile-bootstrap CI over test queries, raw and with contextual
calibration (Zhao et al. 2021); both come from one scoring pass per condition (the raw
predictions are kept next to the calibrated ones). Writes ``benchmarks/results/icl_baseline.json``
and ``benchmarks/results/icl_baseline.md``.

Run: ``python benchmarks/icl_baseline.py`` (a few minutes on 2 CPU cores).
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
from pathlib import Path

import numpy as np
import scipy.stats

from mechsel.icl import ICLRunner, accuracy, bootstrap_ci, evaluate, macro_f1
from mechsel.models import load_model
from mechsel.tasks import SplitConfig, get_task, make_splits, sample_demonstrations

HERE = Path(__file__).resolve().parent

REFERENCE_RANGE = {4: "within [0.67,0.89]", 8: "~= 0.86"}
"""The issue's reference accuracies for random k-shot (plain ``transformers``, 100 dev
sentences); 0-shot ≈ 0.63. Reference numbers to compare with, not thresholds."""


def _row(pred, gold, k, seed, calibrated, demos):
    acc_ci = bootstrap_ci(lambda idx: accuracy(pred[idx], gold[idx]), len(gold), n_boot=1000, seed=seed)
    return {
        "k": k,
        "seed": seed,
        "calibrated": calibrated,
        "accuracy": accuracy(pred, gold),
        "ci_low": acc_ci[0],
        "ci_high": acc_ci[1],
        "macro_f1": macro_f1(pred, gold, labels=[0, 1]),
        "share_predicted_positive": float(np.mean(pred == 1)),
        "demo_ids": [d.id for d in demos],
        "demo_labels": [d.label for d in demos],
    }


def run_condition(runner, test, demos, k, seed):
    """Raw and calibrated rows of one condition, from one scoring pass."""
    res = evaluate(runner, test, demos, calibrate=True, n_boot=1000, seed=seed)
    frame = res.predictions
    gold = frame["gold"].to_numpy()
    raw = _row(frame["pred_uncalibrated"].to_numpy(), gold, k, seed, False, demos)
    cal = _row(frame["pred"].to_numpy(), gold, k, seed, True, demos)
    assert abs(cal["accuracy"] - res.scores["accuracy"]) < 1e-12
    return raw, cal


def markdown(rows, meta) -> str:
    lines = [
        "# SST-2 in-context baselines on the embedded Gemma 3 270M",
        "",
        f"Produced by `benchmarks/icl_baseline.py` on {meta['date']} ({meta['seconds']:.0f} s, CPU).",
        "",
        f"- Model: `{meta['model']}`, weights {meta['source']}, float32, weight processing `none`.",
        f"- Test: {meta['n_test']} examples drawn (seed 0) from GLUE SST-2 validation; {meta['positive_share']:.2f} of them positive.",
        f"- Demonstrations: drawn uniformly from a {meta['pool']}-example pool of SST-2 train, one draw per seed, in drawn order.",
        f"- Prompt: BOS, then per demonstration `{meta['template']!s}` + label word, separated by a blank line; "
        f"label words {meta['label_words']}, scored by full-vocabulary log-probability at the answer position.",
        "- CI: 95% percentile bootstrap over test queries (1,000 resamples). `cal.` = contextual calibration (Zhao et al. 2021).",
        "",
        "| k | seed | accuracy | 95% CI | macro-F1 | predicted positive | accuracy (cal.) | 95% CI (cal.) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    raw = [r for r in rows if not r["calibrated"]]
    cal = {(r["k"], r["seed"]): r for r in rows if r["calibrated"]}
    for r in raw:
        c = cal[(r["k"], r["seed"])]
        lines.append(
            f"| {r['k']} | {r['seed'] if r['k'] else '—'} | {r['accuracy']:.3f} | [{r['ci_low']:.3f}, {r['ci_high']:.3f}] | "
            f"{r['macro_f1']:.3f} | {r['share_predicted_positive']:.2f} | {c['accuracy']:.3f} | [{c['ci_low']:.3f}, {c['ci_high']:.3f}] |"
        )
    lines += [
        "",
        "Summary over seeds (the spread comes from which demonstrations were drawn; the interval is a",
        "95% t-interval of the mean over seeds):",
        "",
    ]
    for calibrated in (False, True):
        for k in sorted({r["k"] for r in raw}):
            accs = np.array([r["accuracy"] for r in rows if r["k"] == k and r["calibrated"] == calibrated])
            what = "calibrated" if calibrated else "raw"
            if len(accs) > 1:
                half = scipy.stats.t.ppf(0.975, len(accs) - 1) * accs.std(ddof=1) / np.sqrt(len(accs))
                lines.append(
                    f"- {what}, k = {k}: mean {accs.mean():.3f} [{accs.mean() - half:.3f}, {accs.mean() + half:.3f}], "
                    f"sd {accs.std(ddof=1):.3f}, range {accs.min():.3f}–{accs.max():.3f} ({len(accs)} seeds)"
                )
            else:
                lines.append(f"- {what}, k = {k}: {accs[0]:.3f} (no demonstrations to vary)")
    lines += [
        "",
        "Reference (the issue; plain `transformers`, 100 dev sentences): 0-shot ≈ 0.63, random 4-shot 0.67–0.89, 8-shot ≈ 0.86.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--test", type=int, default=500)
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--shots", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results" / "icl_baseline"), help="path stem of the .json and .md outputs")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    log = logging.getLogger("benchmarks.icl_baseline")

    start = time.perf_counter()
    model = load_model(device="cpu")
    splits = make_splits("sst2", SplitConfig(pool_size=args.pool, dev_size=0, test_size=args.test, seed=0))
    test, pool = list(splits.test), list(splits.pool)
    runner = ICLRunner(model, "sst2")
    rows = []
    conditions = [(0, 0)] + [(k, s) for k in args.shots for s in range(args.seeds)]
    for k, seed in conditions:
        demos = sample_demonstrations(pool, k, seed=seed) if k else []
        raw, cal = run_condition(runner, test, demos, k, seed)
        rows += [raw, cal]
        log.info(
            "k=%d seed=%d accuracy=%.3f calibrated=%.3f (%.0f s)", k, seed, raw["accuracy"], cal["accuracy"], time.perf_counter() - start
        )
    task = get_task("sst2")
    meta = {
        "date": time.strftime("%Y-%m-%d"),
        "seconds": time.perf_counter() - start,
        "model": model.mechsel_info.name,
        "source": model.mechsel_info.source,
        "n_test": len(test),
        "positive_share": float(np.mean([q.label for q in test])),
        "pool": len(pool),
        "template": task.template.replace("\n", "\\n"),
        "label_words": list(task.label_words),
        "provenance": runner.provenance(data_hash=splits.data_hash).to_dict(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2, default=str))
    table = markdown(rows, meta)
    out.with_suffix(".md").write_text(table)
    print(table)
    raw = [r for r in rows if not r["calibrated"]]
    zero = raw[0]
    # The issue gives reference numbers, not thresholds (see REFERENCE_RANGE).
    print(f"RESULT sst2_0shot_accuracy {zero['accuracy']:.3f} target ~= 0.63")
    print(f"RESULT sst2_0shot_accuracy_ci95 [{zero['ci_low']:.3f},{zero['ci_high']:.3f}] target contains 0.63")
    for k in args.shots:
        accs = np.array([r["accuracy"] for r in raw if r["k"] == k])
        print(f"RESULT sst2_random_{k}shot_mean_accuracy {accs.mean():.3f} target > {zero['accuracy']:.3f}")
        if k in REFERENCE_RANGE:
            print(f"RESULT sst2_random_{k}shot_seed_range [{accs.min():.3f},{accs.max():.3f}] target {REFERENCE_RANGE[k]}")


if __name__ == "__main__":
    main()
