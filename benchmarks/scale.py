# ruff: noqa: E402  (imports follow the sys.path fix below)
"""Scaling out on Ray (issue 15): the Ray engine's overhead, its throughput, and per-unit costs.

* **Overhead.** The quick demo's config (``configs/quick.yaml``) from scratch, in this process:
  once on the local engine with ``model.n_threads = N`` (default 2, this machine's cores), once
  on a private Ray instance with N workers of one thread each (the driver keeps N threads for the
  stages that stay local): the same threads in total. Target: wall time ray / local <= 1.25.
  The runs go to ``--out``/local and ``--out``/ray (compare them with ``scripts/compare_runs.py``);
  here every table is compared too, exactly and by its largest float difference (the local run's
  2 threads and the workers' 1 round float32 sums differently).
* **Throughput.** K evaluation units of that run (a selection scored on the 48 test queries: the
  unit most of a run is made of) on a fresh checkpoint folder, after each worker has loaded the
  model (2 warm-up units per worker, not timed): units per second with 1 and 2 Ray workers of one
  thread each, and on the local engine with N threads for reference.
* **Per-unit costs** (the README's estimate for the paper grid): seconds per prompt of the
  quick config's collection chunks, quality blocks and evaluations on the local engine (warm),
  and per 1-shot E2E NLG generation (the generation task's quality and evaluation units).

Run: ``flock /tmp/mechsel/heavy.lock benchmarks/run.sh scale --out /tmp/mechsel-scale`` (about
11 minutes on 2 CPU cores: two quick runs of 3-4 minutes, then the throughput measurements).
"""

from __future__ import annotations

import os
import sys

# benchmarks/selectors.py shadows the standard library's ``selectors`` module (imported by
# asyncio and subprocess) when a script in this folder runs; drop the folder from the path.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from mechsel.experiment import RunResult, build_stages, demo_config, load_config, run_experiment
from mechsel.experiment.engine import Stage, StageContext
from mechsel.experiment.execution import LocalExecutor
from mechsel.experiment.resources import Resources
from mechsel.experiment.stages.collect import CollectChunk, collect_chunk
from mechsel.experiment.stages.evaluate import evaluation_unit, evaluation_units
from mechsel.experiment.stages.quality import quality_block_unit
from mechsel.icl import ICLRunner
from mechsel.icl.quality import quality_block
from mechsel.models.precision import matmul_precision
from mechsel.serialize import to_dict
from mechsel.tasks import SplitConfig, make_splits

log = logging.getLogger("benchmarks.scale")


def quick(out: Path, overrides: list[str]):
    """The quick demo's config into ``out`` (replaced), with ``overrides``."""
    shutil.rmtree(out, ignore_errors=True)
    return load_config(to_dict(demo_config(quick=True)), overrides, output_dir=str(out), progress=False)


def timed_run(config) -> tuple[float, RunResult]:
    start = time.perf_counter()
    result = run_experiment(config)
    return time.perf_counter() - start, result


def table_differences(a: dict, b: dict) -> tuple[list[str], float]:
    """Tables of ``a`` that differ from ``b`` at all, and the largest absolute float difference."""
    differ, worst = [], 0.0
    for name, frame in a.items():
        if not isinstance(frame, pd.DataFrame):
            continue
        other = b[name]
        try:
            pd.testing.assert_frame_equal(frame, other, check_exact=True)
            continue
        except AssertionError:
            differ.append(name)
        for col in frame.columns:
            if pd.api.types.is_float_dtype(frame[col]) and col in other:
                x, y = frame[col].to_numpy(), other[col].to_numpy()
                if x.shape == y.shape:
                    worst = max(worst, float(np.nanmax(np.abs(x - y), initial=0.0)))
    return differ, worst


def context(config, work: Path, executor) -> StageContext:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    return StageContext(Stage("bench", run=lambda ctx: {}), "bench", work, {}, Resources(config), progress=False, executor=executor)


def throughput(config, executor, warm, timed, params, work: Path) -> tuple[float, float]:
    """``(units per second, seconds)`` of the ``timed`` evaluation units, after the ``warm`` ones (not timed)."""
    ctx = context(config, work, executor)
    ctx.map_units(evaluation_unit, warm, params)
    start = time.perf_counter()
    ctx.map_units(evaluation_unit, timed, params)
    seconds = time.perf_counter() - start
    return len(timed) / seconds, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="/tmp/mechsel-scale", help="folder of the two quick runs and scratch checkpoints")
    parser.add_argument("--threads", type=int, default=2, help="threads in total (local engine) = workers (Ray)")
    parser.add_argument("--units", type=int, default=12, help="evaluation units timed per throughput measurement")
    parser.add_argument("--generations", type=int, default=4, help="E2E NLG generations timed (per-unit cost of generation)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    out, n = Path(args.out), args.threads

    local_config = quick(out / "local", [f"model.n_threads={n}"])
    ray_config = quick(
        out / "ray", [f"model.n_threads={n}", "execution.engine=ray", f"execution.workers={n}", "execution.threads_per_worker=1"]
    )
    log.info("quick config, local engine, %d threads", n)
    t_local, local = timed_run(local_config)
    log.info("quick config, Ray engine, %d workers x 1 thread", n)
    t_ray, ray = timed_run(ray_config)
    differ, worst = table_differences(local.tables, ray.tables)
    stage_s = {r.name: r.seconds for r in local.records}
    ray_stage_s = {r.name: r.seconds for r in ray.records}

    # Units of the finished run: evaluations (the same timed ones everywhere), collection chunks, quality blocks.
    stages = {s.name: s for s in build_stages(local_config)}
    task = local_config.tasks[0].name
    splits = Resources(local_config).splits(task)
    selections = local.tables["selections"]
    eval_params = stages[f"evaluate/{task}"].params
    groups = list(selections[selections["task"] == task].groupby(["selector", "budget", "seed"], sort=False))
    units = list(dict(evaluation_units(groups, splits, eval_params)).items())  # distinct evaluations, in order
    if len(units) < args.units + 4:
        raise SystemExit(f"the quick run has {len(units)} distinct evaluations; --units {args.units} needs {args.units + 4}")
    timed, warm = units[: args.units], units[args.units : args.units + 4]

    with matmul_precision(local_config.model.matmul_precision, "cpu"):  # as in the runs (workers check it themselves)
        local_ups, t_eval = throughput(local_config, LocalExecutor(), warm[:2], timed, eval_params, out / "scratch-local")
        ctx = context(local_config, out / "scratch-local", LocalExecutor())
        ctx.map_units(evaluation_unit, warm[:1], eval_params)  # loads the model
        chunks = [(f"c-{m}", CollectChunk("moments", m, 0)) for m in local_config.collect.masks]
        start = time.perf_counter()
        ctx.map_units(collect_chunk, chunks, stages[f"collect/{task}"].params)
        t_collect = time.perf_counter() - start
        blocks = [(f"q-{s}", s) for s in range(0, len(splits.pool), local_config.quality.block_size)]
        start = time.perf_counter()
        ctx.map_units(quality_block_unit, blocks, stages[f"quality/{task}"].params)
        t_quality = time.perf_counter() - start
        e2e = make_splits("e2e_nlg", SplitConfig(pool_size=1, dev_size=args.generations, test_size=1, seed=0))
        runner = ICLRunner(ctx.resources.model, "e2e_nlg")
        quality_block(runner, list(e2e.pool), list(e2e.dev)[:1])  # warm-up
        start = time.perf_counter()
        quality_block(runner, list(e2e.pool), list(e2e.dev))
        t_generate = (time.perf_counter() - start) / args.generations
    prompts = len(chunks) * -(-len(splits.pool) // local_config.collect.context_size)
    pairs = len(splits.pool) * len(splits.dev)

    import ray

    from mechsel.experiment.ray_executor import RayExecutor

    ray.init(num_cpus=n, include_dashboard=False, logging_level=logging.WARNING)
    per_workers = {}
    try:
        for workers in (1, 2):
            config = load_config(to_dict(ray_config), [f"execution.workers={workers}"])
            with RayExecutor(config) as executor:  # 2 warm-up units per worker load its model
                per_workers[workers], _ = throughput(
                    config, executor, warm[: 2 * workers], timed, eval_params, out / f"scratch-ray-{workers}"
                )
    finally:
        ray.shutdown()

    print(f"quick config (configs/quick.yaml): {len(units)} distinct evaluations of {len(splits.test)} test queries; total threads {n}")
    print(f"{'stage':<18}{'local s':>10}{'ray s':>10}")
    for name in stage_s:
        print(f"{name:<18}{stage_s[name]:>10.1f}{ray_stage_s[name]:>10.1f}")
    print(f"{'whole run':<18}{t_local:>10.1f}{t_ray:>10.1f}")
    print(f"tables that differ (local {n} threads vs Ray workers of 1): {differ or 'none'}; largest float difference {worst:.3g}")
    print()
    print("per-unit costs, local engine, warm:")
    print(f"  collection  {t_collect / prompts:.3f} s per prompt of {local_config.collect.context_size} demonstrations, all layers")
    print(f"  quality     {t_quality / pairs:.4f} s per 1-shot prompt ({pairs} in {len(blocks)} blocks)")
    print(f"  generation  {t_generate:.2f} s per 1-shot E2E NLG generation (greedy, at most 64 new tokens; {args.generations} timed)")
    print(
        f"  evaluation  {t_eval / args.units:.2f} s per unit of {len(splits.test)} test queries ({t_eval / (args.units * len(splits.test)):.4f} s per query)"
    )
    print(f"evaluation units/s: local ({n} threads) {local_ups:.3f}; Ray 1 worker {per_workers[1]:.3f}; Ray 2 workers {per_workers[2]:.3f}")
    print()
    print(f"RESULT ray_overhead_quick_wall_ratio {t_ray / t_local:.3f} target <= 1.25")
    print(f"RESULT ray_units_per_second_1_worker {per_workers[1]:.3f} target (none; context)")
    print(f"RESULT ray_units_per_second_2_workers {per_workers[2]:.3f} target (none; context)")
    print(f"RESULT ray_speedup_2_over_1_workers {per_workers[2] / per_workers[1]:.2f} target (none; 2 cores)")
    print(f"RESULT ray_tables_differing_from_local {len(differ)} target (none; float rounding, see text)")


if __name__ == "__main__":
    main()
