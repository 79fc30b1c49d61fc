"""Wiring an :class:`ExperimentConfig` into stages, running it, and publishing its results.

Per task: ``data`` → ``collect`` (statistics) → ``quality`` (1-shot) → ``features`` (embeddings,
label distributions, neuron sets) → ``select`` → ``evaluate`` → ``samples``; then ``analyse``
over all tasks, then the result tables and figures are written. Each stage's params hold exactly
the settings that determine its numbers, so changing, say, the analysis seed recomputes only the
analysis.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mechsel.errors import ConfigError
from mechsel.experiment.config import ExperimentConfig, SelectorRun
from mechsel.experiment.engine import Stage, prune_stale, run_stages
from mechsel.experiment.execution import make_executor
from mechsel.experiment.figures import write_figures
from mechsel.experiment.loading import dump_config
from mechsel.experiment.report import write_report
from mechsel.experiment.resources import Resources
from mechsel.experiment.results import write_results
from mechsel.experiment.rundir import RunDirectory
from mechsel.experiment.selection import CLAIM_FAMILY
from mechsel.experiment.stages.analyse import AnalyseParams, CellRun, analyse_stage
from mechsel.experiment.stages.base import ModelKey
from mechsel.experiment.stages.collect import CollectParams, collect_stage
from mechsel.experiment.stages.data import DataParams, data_stage
from mechsel.experiment.stages.evaluate import EvaluateParams, evaluate_stage
from mechsel.experiment.stages.features import FEATURES, FeaturesParams, features_stage
from mechsel.experiment.stages.quality import QualityParams, quality_stage
from mechsel.experiment.stages.representations import RepresentationsParams, representations_stage
from mechsel.experiment.stages.samples import SamplesParams, samples_stage
from mechsel.experiment.stages.select import SelectParams, select_stage
from mechsel.experiment.stages.sequential import SequentialParams, sequential_stage
from mechsel.paths import atomic_write_text
from mechsel.serialize import to_dict

__all__ = ["build_stages", "run_experiment", "RunResult", "regenerate_figures"]

logger = logging.getLogger(__name__)
EVAL_N_BOOT = 200
"""Bootstrap resamples of each single run's test-score CI (the comparison itself is over seeds)."""
NEUFS_TOP_N_FRACTION = 0.18
"""NeuFS keeps 2,000 neurons per layer of 11,008 (≈18%) in the paper; smaller models keep this fraction."""


def _features(task: str, runs: Sequence[SelectorRun]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The features (:data:`~mechsel.experiment.stages.features.FEATURES`) the selectors of
    ``runs`` need, and the feature settings their configs carry (each selector says both). A run
    that needs representations adds ``embeddings``: the decodability analysis it triggers uses
    the sentence embedding as one of its baselines."""
    from mechsel.selectors import SELECTORS

    needs: set[str] = set()
    settings: dict[str, Any] = {}
    for r in runs:
        cls = SELECTORS.get(r.selector)
        run_needs = cls.needs_for(r.params)
        needs |= run_needs & set(FEATURES)
        if "representations" in run_needs:  # the decodability analysis compares with KATE's sentence embedding
            needs.add("embeddings")
        for name, value in cls.feature_settings(r.params).items():
            if settings.get(name, value) != value:
                raise ConfigError(
                    f"Task {task!r}: runs ask for {name}={settings[name]!r} and {name}={value!r}; the feature is computed "
                    f"once per task, so give every run the same value."
                )
            settings[name] = value
    return tuple(sorted(needs)), settings


def build_stages(config: ExperimentConfig) -> list[Stage[Any]]:
    """The stages of ``config``, in order."""
    from mechsel.icl.runner import default_quality_metric
    from mechsel.selectors import SELECTORS

    model = ModelKey.of(config.model)
    c, s, a = config.collect, config.selection, config.analysis
    stages: list[Stage[Any]] = []
    analyse_inputs: list[str] = []
    cell_runs: list[CellRun] = []
    for t in config.tasks:
        name = t.name
        task_config = t.task_config()
        runs = tuple(dataclasses.replace(r, mask=config.mask_of(r)) for r in s.runs_for(name))
        needs, feature_settings = _features(name, runs)
        data = f"data/{name}"
        base = {"task": name, "model": model, "max_tokens": t.max_tokens}
        # version 2: label-stratified subsets, a dev split of its own (SST-2: dev validation, test the labelled test)
        data_params = DataParams(
            name, task_config.describe(), t.split_config(config.split_seed), t.source, task_config.subset_splits(t.source)
        )
        stages.append(Stage(data, data_stage, version=2, params=data_params, source=True))
        # with SAEs, version 4: their top latents became a separate output; 5: FVU against the dataset
        # mean, new statistics and the training-data check (moment-only caches stay valid)
        collect_params = CollectParams(**base, collect=c, sae=config.sae, split_seed=config.split_seed)
        stages.append(
            Stage(f"collect/{name}", collect_stage, inputs=(data,), version=5 if config.sae.enabled else 3, params=collect_params)
        )
        metric = t.quality_metric or default_quality_metric(task_config.kind)
        stages.append(
            Stage(f"quality/{name}", quality_stage, inputs=(data,), params=QualityParams(**base, metric=metric, quality=config.quality))
        )
        features = FeaturesParams(
            **base,
            needs=needs,
            embedder=s.embedder,
            neuron_sets_fraction=NEUFS_TOP_N_FRACTION,
            **{"neuron_sets_top_n": None, **feature_settings},
        )
        stages.append(Stage(f"features/{name}", features_stage, inputs=(data,), params=features))
        sel_inputs: tuple[str, ...] = (data, f"collect/{name}", f"quality/{name}", f"features/{name}")
        if any("representations" in SELECTORS.get(r.selector).needs_for(r.params) for r in runs):
            reps = RepresentationsParams(**base, collect=collect_params)
            stages.append(Stage(f"representations/{name}", representations_stage, inputs=(data,), params=reps))
            sel_inputs += (f"representations/{name}",)
        select = SelectParams(
            **base,
            runs=runs,
            budgets=s.budgets,
            seeds=s.seeds_for(t),
            seed_pool_size=t.effective_seed_pool_size,
            split_seed=config.split_seed,
            confidence_k=s.confidence_k,
            confidence=s.confidence,
        )
        stages.append(Stage(f"select/{name}", select_stage, inputs=sel_inputs, version=2, params=select))
        evaluate = EvaluateParams(**base, orders={r.label or r.selector: r.order for r in runs}, calibrate=s.calibrate, n_boot=EVAL_N_BOOT)
        # version 3: the task's baselines (0-shot score, majority-class share) as an output of their own
        stages.append(Stage(f"evaluate/{name}", evaluate_stage, inputs=(data, f"select/{name}"), version=3, params=evaluate))
        if s.sequential.applies_to(name):
            stages.append(_sequential_stage(config, t, select, evaluate, runs, sel_inputs))
            analyse_inputs.append(f"sequential/{name}")
        samples = SamplesParams(**base, summary=c.summary(), n_extreme=a.n_extreme, samples_per_example=a.samples_per_example, seed=a.seed)
        stages.append(Stage(f"samples/{name}", samples_stage, inputs=(data, f"quality/{name}"), params=samples))
        analyse_inputs += [data, f"collect/{name}", f"quality/{name}", f"select/{name}", f"evaluate/{name}"]
        if f"representations/{name}" in sel_inputs:  # the decodability analysis reads them and the embeddings
            analyse_inputs += [f"representations/{name}", f"features/{name}"]
        cell_runs += [
            CellRun(name, r.label or r.selector, config.mask_of(r), *SELECTORS.get(r.selector).cell(r.params))
            for r in runs
            if SELECTORS.get(r.selector).reads is not None
        ]
    seq = [st.params.design for st in stages if st.name.startswith("sequential/")]
    params = AnalyseParams(
        a, s.baseline, s.retrieval_baseline, config.model.name, tuple(cell_runs), n_looks=len(seq[0].looks) if seq else None
    )
    stages.append(Stage("analyse", analyse_stage, inputs=tuple(analyse_inputs), version=6, params=params))
    return stages


def _sequential_stage(
    config: ExperimentConfig,
    t: Any,
    select: SelectParams,
    evaluate: EvaluateParams,
    runs: Sequence[SelectorRun],
    sel_inputs: tuple[str, ...],
) -> Stage[Any]:
    """``sequential/<task>``: seeds added to the task's undecided gain lines (:class:`SequentialSettings`)."""
    from mechsel.analysis.sequential import SequentialDesign

    s, a = config.selection, config.analysis
    q = s.sequential
    seeds = s.seeds_for(t)
    first = q.first_look or len(seeds)
    if q.max_seeds < first:
        raise ConfigError(
            f"selection.sequential.max_seeds={q.max_seeds} is below the first look ({first} seeds of task {t.name!r}); "
            f"raise max_seeds or lower first_look."
        )
    design = SequentialDesign.of(first, q.batch, q.max_seeds, alpha=a.alpha, rho=float(q.spending))
    start = max(s.seeds) + 1
    params = SequentialParams(
        task=t.name,
        model=select.model,
        max_tokens=select.max_tokens,
        select=select,
        evaluate=evaluate,
        baseline=s.baseline,
        competing=tuple(str(r.label) for r in runs if r.family == CLAIM_FAMILY),
        design=design,
        margin=a.margin,
        new_seeds=tuple(range(start, start + q.max_seeds)),
        analysis_n_boot=a.n_boot,
        analysis_seed=a.seed,
    )
    return Stage(f"sequential/{t.name}", sequential_stage, inputs=(*sel_inputs, f"evaluate/{t.name}"), params=params)


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
    report_path: Path | None = None
    """The run's one-page ``report.html`` (verdict, summary, every figure, links to the tables)."""

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

    def both(name: str, first: str) -> pd.DataFrame:
        frames = [f for f in (cat(first, name), cat("sequential", name)) if not f.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()

    tables = {
        "examples": cat("data", "examples"),
        "statistics": cat("collect", "statistics"),
        "quality": cat("quality", "quality"),
        "selections": both("selections", "select"),
        "scores": both("scores", "evaluate"),
        "predictions": both("predictions", "evaluate"),
        "baselines": cat("evaluate", "baselines"),
        "activation_samples": cat("samples", "activation_samples"),
    }
    looks = cat("sequential", "looks")
    if not looks.empty:
        tables["looks"] = looks
    for name in ("grid", "masking", "comparison", "summary", "summary_sae", "sets", "decodability"):
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
        with (
            matmul_precision(config.model.matmul_precision, resolve_device(config.model.device)) as precision,
            make_executor(config, model=model) as executor,
        ):
            run_dir.record("model", "matmul_precision", precision.as_dict())
            outputs, records = run_stages(
                build_stages(config),
                out,
                resources=resources,
                progress=config.progress,
                on_stage_done=lambda r: run_dir.record(
                    "stages", r.name, {"key": r.key, "cached": r.cached, "seconds": round(r.seconds, 2)}
                ),
                executor=executor,
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
        report = write_report(out, tables={**tables, "verdict": verdict})
        prune_stale(out, records)
        run_dir.manifest["results"] = {name: {"rows": len(frame), "columns": list(frame.columns)} for name, frame in tables.items()}
        run_dir.manifest["verdict"] = {
            "outcome": verdict["outcome"],
            "decided_by": verdict["decided_by"],
            "text": verdict["text"],
            "parts": {k: v["outcome"] for k, v in verdict["parts"].items()},
        }
        run_dir.manifest["status"] = "complete"
    return RunResult(out, {**tables, "verdict": verdict}, figures, records, report)


def regenerate_figures(run_dir: str | Path, out_dir: str | Path | None = None, **kwargs: Any) -> list[Path]:
    """Rewrite every figure of a finished run from its saved results, then its ``report.html``
    (``mechsel figures``); the figure files and the report are returned, the report last.

    The report goes to ``<run_dir>/report.html``, or beside the figures when ``out_dir`` is given
    (so a read-only run directory can be redrawn elsewhere); it always shows every figure family.
    """
    from mechsel.experiment.results import load_results

    run_dir = Path(run_dir)
    tables = load_results(run_dir)
    figures_dir = Path(out_dir) if out_dir is not None else run_dir / "figures"
    written = write_figures(tables, figures_dir, **kwargs)
    report = write_report(
        run_dir, (figures_dir if out_dir is not None else run_dir) / "report.html", tables=tables, figures_dir=figures_dir
    )
    return [*written, report]
