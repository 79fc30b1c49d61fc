"""Wiring an :class:`ExperimentConfig` into stages, running it, and publishing its results.

Per task: ``data`` → ``collect`` (statistics) → ``quality`` (1-shot) → ``features`` (embeddings,
label distributions, neuron sets) → ``select`` → ``evaluate`` → ``samples``; then ``analyse``
over all tasks, then the result tables and figures are written. Each stage's params hold exactly
the settings that determine its numbers, so changing, say, the analysis seed recomputes only the
analysis.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mechsel.experiment.config import ExperimentConfig, SelectorRun, to_dict
from mechsel.experiment.engine import Stage, prune_stale, run_stages
from mechsel.experiment.figures import write_figures
from mechsel.experiment.loading import dump_config
from mechsel.experiment.resources import Resources
from mechsel.experiment.results import write_results
from mechsel.experiment.rundir import RunDirectory
from mechsel.experiment.stages.analyse import analyse_stage
from mechsel.experiment.stages.collect import collect_stage
from mechsel.experiment.stages.data import data_stage
from mechsel.experiment.stages.evaluate import evaluate_stage
from mechsel.experiment.stages.features import features_stage
from mechsel.experiment.stages.quality import quality_stage
from mechsel.experiment.stages.samples import samples_stage
from mechsel.experiment.stages.select import select_stage
from mechsel.paths import atomic_write_text

__all__ = ["build_stages", "run_experiment", "RunResult", "regenerate_figures"]

logger = logging.getLogger(__name__)
EVAL_N_BOOT = 200
"""Bootstrap resamples of each single run's test-score CI (the comparison itself is over seeds)."""
NEUFS_TOP_N_FRACTION = 0.18
"""NeuFS keeps 2,000 neurons per layer of 11,008 (≈18%) in the paper; smaller models keep this fraction."""


def _model_params(config: ExperimentConfig) -> dict[str, Any]:
    m = config.model
    return {
        "name": m.name,
        "weight_processing": m.weight_processing,
        "dtype": m.dtype,
        "device": m.device,
        "matmul_precision": m.matmul_precision,
    }


def _needs(runs: Sequence[SelectorRun]) -> tuple[set[str], int | None]:
    """Features the selectors of ``runs`` read (beyond statistics), and an explicit NeuFS ``top_n``."""
    from mechsel.selectors import SELECTORS

    needs: set[str] = set()
    top_n = None
    for r in runs:
        needs.update(SELECTORS.get(r.selector).needs)
        if r.selector == "least_confidence" and r.params.get("iterative") is False:
            needs.add("label_probs")
        if r.selector == "neufs":
            top_n = r.params.get("top_n")
    needs.discard("statistics")
    return needs, top_n


def build_stages(config: ExperimentConfig) -> list[Stage]:
    """The stages of ``config``, in order."""
    model = _model_params(config)
    c, q, s, a = config.collect, config.quality, config.selection, config.analysis
    stages: list[Stage] = []
    analyse_inputs = []
    cell_runs: list[dict[str, Any]] = []
    for t in config.tasks:
        name = t.name
        needs, top_n = _needs(s.runs_for(name))
        runs = [dict(to_dict(r), mask=r.mask or c.masks[0]) for r in s.runs_for(name)]
        task_desc = t.task_config().describe()
        data = f"data/{name}"
        # version 2: label-stratified subsets, a dev split of its own (SST-2: dev validation, test the labelled test)
        stages.append(
            Stage(
                data,
                data_stage,
                version=2,
                params={
                    "task": name,
                    "describe": task_desc,
                    "sizes": [t.n_candidates, t.dev_size, t.test_size],
                    "seed": config.split_seed,
                    "source": t.source,
                    "splits": t.task_config().subset_splits(t.source),
                    "stratify": t.stratify,
                    "min_words": t.min_words,
                },
                source=True,
            )
        )
        base = {"task": name, "model": model, "max_tokens": t.max_tokens}
        # version 2 with SAEs: their top latents became a separate output (moment-only caches stay valid)
        stages.append(
            Stage(
                f"collect/{name}",
                collect_stage,
                inputs=(data,),
                version=4 if config.sae.enabled else 3,
                params={
                    **base,
                    "masks": list(c.masks),
                    "layers": c.layers if c.layers == "all" else list(c.layers),
                    "hook": c.hook,
                    "positions": c.positions,
                    "statistics": list(c.statistics),
                    "context_size": c.context_size,
                    "seed": config.split_seed,
                    "chunk_size": c.chunk_size,
                    "batch_size": c.batch_size,
                    "sae": {str(k): v for k, v in config.sae.saes.items()},
                    "sae_statistics": None if config.sae.statistics is None else list(config.sae.statistics),
                },
            )
        )
        stages.append(
            Stage(
                f"quality/{name}",
                quality_stage,
                inputs=(data,),
                params={
                    **base,
                    "metric": t.metric,
                    "block_size": q.block_size,
                    "marginal_gain": q.marginal_gain,
                    "gain_k": q.gain_k,
                    "gain_seeds": list(q.gain_seeds),
                },
            )
        )
        stages.append(
            Stage(
                f"features/{name}",
                features_stage,
                inputs=(data,),
                params={
                    **base,
                    "needs": sorted(needs),
                    "embedder": s.embedder,
                    "neufs_top_n": top_n,
                    "neufs_top_n_fraction": NEUFS_TOP_N_FRACTION,
                },
            )
        )
        sel_inputs = (data, f"collect/{name}", f"quality/{name}", f"features/{name}")
        stages.append(
            Stage(
                f"select/{name}",
                select_stage,
                inputs=sel_inputs,
                version=2,
                params={
                    **base,
                    "runs": runs,
                    "budgets": list(s.budgets),
                    "seeds": list(s.seeds_for(t)),
                    "pool_size": t.pool_size,
                    "split_seed": config.split_seed,
                    "confidence_k": s.confidence_k,
                    "confidence": s.confidence,
                },
            )
        )
        stages.append(
            Stage(
                f"evaluate/{name}",
                evaluate_stage,
                inputs=(data, f"select/{name}"),
                version=2,
                params={
                    **base,
                    "runs": [{"label": r["label"], "order": r["order"]} for r in runs],
                    "calibrate": s.calibrate,
                    "n_boot": EVAL_N_BOOT,
                },
            )
        )
        stages.append(
            Stage(
                f"samples/{name}",
                samples_stage,
                inputs=(data, f"quality/{name}"),
                params={
                    **base,
                    "n_extreme": a.n_extreme,
                    "samples_per_example": a.samples_per_example,
                    "seed": a.seed,
                    "layers": c.layers if c.layers == "all" else list(c.layers),
                    "hook": c.hook,
                    "positions": c.positions,
                },
            )
        )
        analyse_inputs += [data, f"collect/{name}", f"quality/{name}", f"select/{name}", f"evaluate/{name}"]
        cell_runs += [
            {
                "task": name,
                "label": r["label"],
                "mask": r["mask"],
                "layer": r["params"].get("layer"),
                "statistic": r["params"].get("statistic"),
            }
            for r in runs
            if r["family"] in ("activation", "sae")
        ]
    stages.append(
        Stage(
            "analyse",
            analyse_stage,
            inputs=tuple(analyse_inputs),
            version=6,
            params={
                "rho_test": a.rho_test,
                "rho_interval": a.rho_interval,
                "fdr_family": a.fdr_family,
                "n_boot": a.n_boot,
                "n_perm": a.n_perm,
                "level": a.level,
                "alpha": a.alpha,
                "seed": a.seed,
                "rho_threshold": a.rho_threshold,
                "rho_adjust": a.rho_adjust,
                "margin": a.margin,
                "power": a.power,
                "rho_basis": a.rho_basis,
                "baseline": s.baseline,
                "retrieval_baseline": s.retrieval_baseline,
                "model": config.model.name,
                "cell_runs": cell_runs,
            },
        )
    )
    return stages


@dataclass
class RunResult:
    """What a finished run produced."""

    output_dir: Path
    """The run directory."""
    tables: dict[str, Any]
    """Every result table (DataFrames) and ``verdict`` (dict)."""
    figures: list[Path]
    """Figure files written."""
    records: list[Any]
    """One :class:`~mechsel.experiment.engine.StageRecord` per stage (cached or computed, seconds)."""

    @property
    def summary(self) -> pd.DataFrame:
        return self.tables["summary"]

    @property
    def verdict(self) -> dict[str, Any]:
        return self.tables["verdict"]

    def report(self) -> str:
        """The summary table and the verdict, as printed by the CLI."""
        return f"{self.verdict['table']}\n\n{self.verdict['text']}"


def _collect_tables(config: ExperimentConfig, outputs: dict[str, dict[str, Any]]) -> dict[str, pd.DataFrame]:
    def cat(prefix: str, name: str) -> pd.DataFrame:
        frames = [outputs[f"{prefix}/{t.name}"][name] for t in config.tasks if name in outputs.get(f"{prefix}/{t.name}", {})]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    tables = {
        "examples": cat("data", "examples"),
        "statistics": cat("collect", "statistics"),
        "quality": cat("quality", "quality"),
        "selections": cat("select", "selections"),
        "scores": cat("evaluate", "scores"),
        "predictions": cat("evaluate", "predictions"),
        "activation_samples": cat("samples", "activation_samples"),
    }
    for name in ("grid", "masking", "comparison", "summary", "summary_sae", "sets"):
        if name in outputs["analyse"]:
            tables[name] = outputs["analyse"][name]
    return tables


def run_experiment(config: ExperimentConfig, *, overwrite: bool = False, model: Any = None) -> RunResult:
    """Run (or resume, or load from cache) the whole study of ``config``.

    Args:
        config: the experiment.
        overwrite: replace a run of other provenance in ``config.output_dir`` instead of refusing.
        model: an already loaded model to use instead of loading ``config.model`` (its name must
            still be ``config.model.name`` for the provenance to be honest).
    """
    from mechsel.experiment.loading import validate_against_model
    from mechsel.models.loading import resolve_device
    from mechsel.models.precision import matmul_precision

    config = validate_against_model(config)  # layer indices against the model's config, before anything loads
    out = Path(config.output_dir)
    with RunDirectory(out, config.identity(), config=to_dict(config), overwrite=overwrite, log_level=config.log_level) as run_dir:
        atomic_write_text(out / "config.yaml", dump_config(config))
        resources = Resources(config, model=model, on_model_loaded=lambda info: run_dir.record("model", "loaded", info))
        with matmul_precision(config.model.matmul_precision, resolve_device(config.model.device)) as precision:
            run_dir.record("model", "matmul_precision", precision.as_dict())
            outputs, records = run_stages(
                build_stages(config),
                out,
                resources=resources,
                progress=config.progress,
                on_stage_done=lambda r: run_dir.record(
                    "stages", r.name, {"key": r.key, "cached": r.cached, "seconds": round(r.seconds, 2)}
                ),
            )
        for t in config.tasks:
            run_dir.record("data", t.name, outputs[f"data/{t.name}"]["fingerprint"])
            run_dir.record("collect_provenance", t.name, outputs[f"collect/{t.name}"]["provenance"])
        tables = _collect_tables(config, outputs)
        verdict = outputs["analyse"]["verdict"]
        write_results(out / "results", tables, verdict)
        figures = write_figures(
            {**tables, "verdict": verdict}, out / "figures", formats=config.plots.formats, plotlyjs=config.plots.plotlyjs
        )
        prune_stale(out, records)
        run_dir.manifest["results"] = {name: {"rows": len(frame), "columns": list(frame.columns)} for name, frame in tables.items()}
        run_dir.manifest["verdict"] = {
            "outcome": verdict["outcome"],
            "decided_by": verdict["decided_by"],
            "text": verdict["text"],
            "parts": {k: v["outcome"] for k, v in verdict["parts"].items()},
        }
        run_dir.manifest["status"] = "complete"
    return RunResult(out, {**tables, "verdict": verdict}, figures, records)


def regenerate_figures(run_dir: str | Path, out_dir: str | Path | None = None, **kwargs: Any) -> list[Path]:
    """Rewrite every figure of a finished run from its saved results (``mechsel figures``)."""
    run_dir = Path(run_dir)
    return write_figures(run_dir, out_dir or run_dir / "figures", **kwargs)
