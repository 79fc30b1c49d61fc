"""``select/<task>``: every selector run, at every budget and seed, on that seed's selection pool.

Seed ``s`` draws its selection pool from the candidates (``tasks[].seed_pool_size`` of them,
seeded by the split seed and ``s``), seeds the selector, and later orders the demonstrations. Annotation
runs choose ``k`` demonstrations once; retrieval runs choose ``k`` per test query from the
annotated set (the whole pool, or another run's selection). Each (run, seed) is one checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mechsel.errors import DataError
from mechsel.experiment import results
from mechsel.experiment.config import SelectorRun
from mechsel.experiment.engine import StageContext
from mechsel.experiment.stages.base import TaskStageParams
from mechsel.icl.evaluate import ConfidenceKind
from mechsel.selectors.base import Selection, Selector

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["SelectParams", "Selecting", "select_stage", "pool_positions", "wide_statistics"]

SELECTION_COLUMNS = list(results.SELECTION_COLUMNS)
"""Columns of the ``selections`` output (defined once, in :mod:`mechsel.experiment.results`)."""

PROTOCOLS = ("fixed", "retrieve_from_pool", "annotate_then_retrieve")
"""How a run spends its labels: ``fixed`` labels k examples and uses them as every query's prompt
(annotation budget B = k); ``retrieve_from_pool`` retrieves each query's k demonstrations from the
whole labelled selection pool (B = the pool size, e.g. KATE over the pool); ``annotate_then_retrieve``
labels B examples chosen by another run, then retrieves each query's k most similar among them."""


def pool_positions(n_candidates: int, pool_size: int, split_seed: int, seed: int) -> np.ndarray:
    """Candidate positions of seed ``seed``'s selection pool (sorted; all when ``pool_size >= n``)."""
    if pool_size >= n_candidates:
        return np.arange(n_candidates)
    rng = np.random.default_rng([split_seed, seed, 0x5E1])
    return np.sort(rng.choice(n_candidates, size=pool_size, replace=False))


def wide_statistics(stats: pd.DataFrame, family: str, mask: str, ids: list[str]) -> pd.DataFrame:
    """Candidates × ``(layer, statistic)`` table of one family and mask, rows in ``ids`` order."""
    sub = stats[(stats["family"] == family) & (stats["mask"] == mask)]
    if sub.empty:
        raise DataError(f"No {family!r} statistics under mask {mask!r} were collected; check collect.masks and sae.saes.")
    wide = sub.pivot_table(index="example_id", columns=["layer", "statistic"], values="value", aggfunc="first", dropna=False)
    return wide.reindex(ids).reset_index(drop=True)


@dataclass(frozen=True)
class SelectParams(TaskStageParams):
    """Settings of ``select/<task>``."""

    runs: tuple[SelectorRun, ...]
    """The task's selector runs, each with its mask resolved (``None`` → the first collected)."""
    budgets: tuple[int, ...]
    """Numbers of demonstrations k."""
    seeds: tuple[int, ...]
    """The task's seeds (a run's ``n_seeds`` takes the first of them)."""
    seed_pool_size: int
    """Candidates in each seed's selection pool (:attr:`TaskSettings.effective_seed_pool_size`)."""
    split_seed: int
    """Seed of the selection pools (with each seed)."""
    confidence_k: int
    """Demonstrations in the prompts behind model confidences."""
    confidence: ConfidenceKind
    """What those confidences are (:func:`mechsel.icl.make_confidence_fn`)."""


def _selector(
    run: SelectorRun, quality: np.ndarray | None, all_stats: pd.DataFrame | None, **available: Any
) -> tuple[Selector[Any], dict[str, Any]]:
    """The configured selector (and what was chosen on the way, e.g. a dev-chosen statistic).

    ``available``: the constructor arguments the caller can build (``confidence_fn``, ``model``),
    as zero-argument factories; the selector gets those its :meth:`~Selector.needs_for` names."""
    from mechsel.selectors import SELECTORS

    cls = SELECTORS.get(run.selector)
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in run.params.items()}
    detail: dict[str, Any] = {}
    if run.choose_statistic:
        assert all_stats is not None and quality is not None, "choose_statistic reads the statistics and the quality"
        params, detail = cls.choose_on_dev(params, all_stats, quality)
    config = cls.configure(params)  # the run's typed config (checked when the experiment config loaded)
    needs = cls.needs_for(params)
    kwargs = {name: make() for name, make in available.items() if name in needs}
    return cls(config, **kwargs), detail


class Selecting:
    """Everything one task's selector runs read (statistics, quality, features, the pools), and
    :meth:`one_run`, which makes one run's selections for one seed. ``select/<task>`` runs it for
    every configured seed; the sequential design (:mod:`mechsel.experiment.stages.sequential`)
    for the seeds it adds."""

    def __init__(self, inputs: Mapping[str, Mapping[str, Any]], p: SelectParams, res: Resources) -> None:
        self.p = p
        self.res = res
        task = p.task
        self.splits = res.splits(task)
        self.cands = list(self.splits.pool)
        self.ids = [str(e.id) for e in self.cands]
        self.stats = inputs[f"collect/{task}"]["statistics"]
        self.top_latents = inputs[f"collect/{task}"].get("sae_top_latents")
        self.quality = inputs[f"quality/{task}"]["quality"].set_index("example_id")["quality"].reindex(self.ids).to_numpy()
        feats = inputs[f"features/{task}"]
        self.emb = feats.get("embeddings")
        self.label_probs = feats.get("label_probs")
        self.nsets = None
        if "neuron_sets" in feats:
            from mechsel.experiment.stages.features import unpack_neuron_sets

            self.nsets = unpack_neuron_sets(feats["neuron_sets"])
        self.reps = inputs.get(f"representations/{task}", {}).get("representations")
        self.runs = {r.label: r for r in p.runs}
        self.tables: dict[tuple[str, str], pd.DataFrame] = {}

    def table(self, family: str, mask: str) -> pd.DataFrame:
        if (family, mask) not in self.tables:
            wide = wide_statistics(self.stats, family, mask, self.ids)
            if family == "sae" and self.top_latents is not None:  # the SAE selectors read top latents too
                wide = pd.concat([wide, wide_statistics(self.top_latents, family, mask, self.ids)], axis=1)
            self.tables[family, mask] = wide
        return self.tables[family, mask]

    def make_pool(self, pos: np.ndarray, run: SelectorRun) -> Any:
        from mechsel.selectors import SELECTORS, Pool

        reads = SELECTORS.get(run.selector).reads
        cands, emb, label_probs, nsets = self.cands, self.emb, self.label_probs, self.nsets
        reps = self.representation(run)
        return Pool(
            ids=[self.ids[i] for i in pos],
            texts=[cands[i].text() for i in pos],
            labels=np.array([-1 if cands[i].label is None else cands[i].label for i in pos]),
            embeddings=None if emb is None else emb["candidates"][pos],
            statistics=None if reads is None else self.table(reads, run.mask or "").iloc[pos].reset_index(drop=True),
            label_probs=None if label_probs is None else label_probs[pos],
            neuron_sets=None if nsets is None else [nsets[i] for i in pos],
            representations=None if reps is None else reps[pos],
        )

    def representation(self, run: SelectorRun) -> np.ndarray | None:
        """``[n_candidates, d]``: the candidates' mean vectors under the run's mask at the layer
        its selector names (``None``: the last collected), for runs that need representations."""
        from mechsel.selectors import SELECTORS

        cls = SELECTORS.get(run.selector)
        if self.reps is None or "representations" not in cls.needs_for(run.params):
            return None
        layers = [int(x) for x in self.reps["layers"]]
        layer, _ = cls.cell(run.params)
        if layer is not None and int(layer) not in layers:
            raise DataError(f"selection.runs[{run.label}]: layer {layer} has no representation; collected layers: {layers}.")
        return np.asarray(self.reps[run.mask or ""][:, layers.index(int(layer)) if layer is not None else -1], dtype=np.float64)

    def probe_training(self, run: SelectorRun, pos: np.ndarray) -> Any:
        """What a probe learns from: the candidates outside seed's pool ``pos`` (so it never sees
        the quality of one it can pick), their representations and measured quality."""
        from mechsel.selectors import ProbeTraining

        reps = self.representation(run)
        if reps is None:
            raise DataError(f"selection.runs[{run.label}] needs representations, which were not collected.")
        outside = np.setdiff1d(np.arange(len(self.cands)), pos)
        outside = outside[np.isfinite(self.quality[outside])]
        if outside.size < 10:
            raise DataError(
                f"selection.runs[{run.label}]: only {outside.size} candidates lie outside the seed's selection pool to train "
                f"the probe on; lower tasks[{self.p.task}].seed_pool_size (half of n_candidates is the usual choice)."
            )
        return ProbeTraining([self.ids[i] for i in outside], reps[outside], self.quality[outside])

    def annotate(self, run: SelectorRun, pos: np.ndarray, k: int, seed: int) -> tuple[Selection, dict[str, Any]]:
        from mechsel.selectors import SELECTORS

        p, res, cands, emb = self.p, self.res, self.cands, self.emb
        pool = self.make_pool(pos, run)

        def confidence_fn() -> Any:
            from mechsel.icl import make_confidence_fn

            return make_confidence_fn(
                res.runner(p.task),
                [cands[i] for i in pos],
                k=p.confidence_k,
                kind=p.confidence,
                embeddings=None if emb is None else emb["candidates"][pos],
            )

        reads = SELECTORS.get(run.selector).reads
        all_stats = self.table(reads, run.mask or "") if run.choose_statistic and reads is not None else None
        selector, detail = _selector(
            run,
            self.quality,
            all_stats,
            confidence_fn=confidence_fn,
            model=lambda: res.model,
            probe_training=lambda: self.probe_training(run, pos),
        )
        return selector.select(pool, k, seed=seed), detail

    def one_run(self, run: SelectorRun, seed: int, budgets: Sequence[int] | None = None) -> pd.DataFrame:
        """The selections of ``run`` for ``seed`` at ``budgets`` (default: every configured budget)."""
        from mechsel.selectors import SELECTORS, Queries

        p, ids, emb = self.p, self.ids, self.emb
        pos = pool_positions(len(self.cands), p.seed_pool_size, p.split_seed, seed)
        rows = []
        retrieval = "annotate" not in SELECTORS.get(run.selector).modes or run.annotated is not None
        protocol = "fixed" if not retrieval else "annotate_then_retrieve" if run.annotated is not None else "retrieve_from_pool"
        for k in p.budgets if budgets is None else budgets:
            if not retrieval:
                sel, detail = self.annotate(run, pos, k, seed)
                for rank, (i, score) in enumerate(zip(sel.indices, sel.scores)):
                    rows.append((k, k, -1, rank, ids[pos[i]], score, detail))
                continue
            pool = self.make_pool(pos, run)
            annotated = np.arange(len(pos))
            detail = {}
            if run.annotated is not None:
                size = min(run.annotation_budget or 4 * max(p.budgets), len(pos))
                base, _ = self.annotate(self.runs[run.annotated], pos, size, seed)
                annotated = np.array(base.indices)
                detail = {"annotated_by": run.annotated, "annotated": [ids[pos[i]] for i in base.indices]}
            queries = Queries(texts=[e.text() for e in self.splits.test], embeddings=None if emb is None else emb["test"])
            selector, _ = _selector(run, None, None, model=lambda: self.res.model)
            for q, sel in enumerate(selector.retrieve(pool, annotated, queries, min(k, len(annotated)), seed=seed)):
                for rank, (i, score) in enumerate(zip(sel.indices, sel.scores)):
                    rows.append((k, len(annotated), q, rank, ids[pos[i]], score, detail if q == 0 and rank == 0 else {}))
        frame = pd.DataFrame(rows, columns=["budget", "annotation_budget", "query", "rank", "example_id", "score", "detail"])
        frame["detail"] = frame["detail"].map(lambda d: json.dumps(d, default=str) if d else "")
        return frame.assign(task=p.task, selector=run.label, selector_name=run.selector, family=run.family, seed=seed, protocol=protocol)


def select_stage(ctx: StageContext[SelectParams]) -> dict[str, Any]:
    """Outputs ``selections``: task, selector (run label), selector_name, family, budget, seed,
    query (test position for retrieval, -1 for a fixed set), rank (prompt order), example_id,
    score (the selector's score of the pick), detail (JSON: e.g. the statistic chosen)."""
    p = ctx.params
    task = p.task
    selecting = Selecting(ctx.inputs, p, ctx.resources)
    runs = selecting.runs
    one_run = selecting.one_run
    frames = []
    jobs = [(j, label, seed) for j, label in enumerate(runs) for seed in p.seeds[: runs[label].n_seeds or None]]
    for j, label, seed in tqdm(jobs, desc=f"select {task}", unit="run", disable=not ctx.progress):
        frames.append(ctx.checkpoint(f"run{j:02d}-s{seed}", lambda label=label, seed=seed: one_run(runs[label], seed)))
    return {"selections": pd.concat(frames, ignore_index=True)[SELECTION_COLUMNS]}
