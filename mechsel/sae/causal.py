"""A causal test of SAE latents: ablate them inside the demonstrations, measure what ICL loses.

For an SAE on ``blocks.L.hook_mlp_out`` and k-shot prompts (demonstrations + test query, built by
the task's :class:`~mechsel.tasks.PromptEncoder`, so every demonstration token's position is
known), :func:`causal_test` scores each query's label after

* the clean prompt, and
* the prompt with a latent set ``S`` ablated at the demonstration tokens only (roles ``text`` and
  ``label``, plus ``template`` with ``include_template``; BOS, separators and the query are never
  touched): ``x' = x − Σ_{j∈S} (f_j(x) − a_j) W_dec[j]`` with ``f = sae.encode(x)`` and ``a_j = 0``
  (``zero``) or the latent's mean activation over the reference tokens (``mean``). Only the
  latents' own terms change: the SAE's reconstruction error ``x − x̂`` stays in ``x'``.

The *targeted* sets are the top-``m`` latents singled out by a rule on the candidate pool's
statistics (one :func:`~mechsel.collection.collect` pass over every candidate encoded as a
demonstration, BOS + demonstration; its selected tokens are the *reference tokens*):

* ``label_contrast``: the task relevance of ``sae_coverage`` — the spread across labels of the
  latent's mean top-latent activation (:func:`mechsel.selectors.sae.task_relevance` on
  :func:`~mechsel.selectors.sae.latent_profiles`), latents in fewer than ``min_examples``
  candidates' top lists scoring 0;
* ``top_frequency``: in how many candidates' top-latent lists the latent appears (ties: larger
  summed top activation, then lower index).

Each targeted set is compared with ``n_random_draws`` *random* sets of matched activation
frequency: latents are binned by the fraction of reference tokens where they fire (quantile bins
of the live latents' frequencies; never-firing latents form bin ``-1``) and each target's stand-in
is drawn from the target's bin, excluding every target and the draw's earlier picks
(:func:`matched_random_latents`).

Per query ``i`` and run, ``Δ_i = score_ablated − score_clean`` (accuracy, gold-label full-vocabulary
log-probability) on the same prompt. :func:`summarise_effects` reports each set's mean ``Δ`` with
its paired Student-t interval and paired t-test against the clean run, and the comparison
``targeted − random``: per query ``Δ_targeted,i − mean_draws Δ_random,i``, with its interval,
paired t-test (:func:`mechsel.analysis.comparison.paired_comparison`, i.e. ``scipy.stats.ttest_rel``)
and minimum detectable effect. Accuracy intervals are kept inside ``[-1, 1]``, the range of a
difference of accuracies.

Exactness: the hook returns the activations unchanged outside the ablated positions (bit for bit,
checked in the unit tests), and an empty set leaves the whole run identical to the clean one.
Scoring is :class:`~mechsel.icl.scoring.LabelScorer` with the runner's batching but no prefix
reuse and right padding, so the hook sees every prompt position at its own index.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any, Literal, cast, get_args

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm.auto import tqdm

from mechsel.analysis.comparison import paired_comparison, paired_interval
from mechsel.analysis.power import paired_mde
from mechsel.errors import ConfigError, DataError, did_you_mean
from mechsel.icl.evaluate import DemoSpec, resolve_demo_sets
from mechsel.icl.metrics import METRIC_RANGES
from mechsel.icl.runner import ICLRunner, gold_labels, pair_scores
from mechsel.icl.scoring import LabelScorer
from mechsel.masks.segments import SegmentedPrompt
from mechsel.provenance import Provenance
from mechsel.sae.statistics import SAETopLatents, top_latents_frame
from mechsel.selectors.sae import latent_profiles, task_relevance
from mechsel.tasks.base import Example
from mechsel.tasks.prompts import sample_demonstrations
from mechsel.tasks.splits import examples_hash

__all__ = [
    "AblationKind",
    "LatentRule",
    "CausalTestConfig",
    "CausalTestResult",
    "causal_test",
    "ablate_latents",
    "demo_positions",
    "frequency_bins",
    "matched_random_latents",
    "rank_latents",
    "summarise_effects",
]

logger = logging.getLogger(__name__)

AblationKind = Literal["zero", "mean"]
"""``zero``: ``a_j = 0``; ``mean``: ``a_j`` = the latent's mean activation over the reference tokens."""
LatentRule = Literal["label_contrast", "top_frequency"]
"""How the targeted latents are singled out (module docstring)."""
METRICS: tuple[str, ...] = ("accuracy", "gold_logprob")
DEMO_ROLES: tuple[str, ...] = ("text", "label")
"""Roles ablated inside a demonstration: the tokens ``collect(positions="all")`` summarises."""


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"CausalTestConfig.{name} must be a positive integer, got {value!r}.")


@dataclass(frozen=True)
class CausalTestConfig:
    """Every choice of one causal test (:func:`causal_test`)."""

    layers: tuple[int, ...] | None = None
    """Layers to test, each needing an SAE on ``blocks.L.hook_mlp_out``; ``None``: every SAE's layer."""
    m_values: tuple[int, ...] = (1, 4, 16)
    """Sizes ``m`` of the ablated latent sets (targeted and random alike)."""
    ablation: tuple[AblationKind, ...] = ("zero",)
    """Ablation kinds to run (:data:`AblationKind`); a single string is accepted."""
    rule: LatentRule = "label_contrast"
    """How the targeted latents are singled out (:data:`LatentRule`)."""
    n_random_draws: int = 5
    """Random matched-frequency sets per (layer, m); each is one more run over every query."""
    n_queries: int | None = 100
    """Test queries used, drawn at random (seeded) from those given; ``None``: all of them."""
    k: int = 4
    """Demonstrations per prompt, drawn at random (seeded) from the pool for each query; ignored
    when :func:`causal_test` is given ``demos``."""
    top_k: int = 16
    """Top latents kept per candidate (:class:`~mechsel.sae.statistics.SAETopLatents`); the rules read them."""
    min_examples: int = 2
    """``label_contrast``: a latent must be in at least this many candidates' top lists (as ``sae_coverage``)."""
    n_frequency_bins: int = 10
    """Quantile bins of the live latents' activation frequency for the matched random draws."""
    include_template: bool = False
    """Also ablate (and take reference statistics over) the template tokens inside each demonstration."""
    level: float = 0.95
    """Coverage of every interval; the tests' level is ``1 − level``."""
    seed: int = 0
    """Seeds the one generator that draws, in order: the queries, each query's demonstrations, then
    the random latent sets per (layer, m)."""
    progress: bool = True
    """Show a tqdm bar over the runs."""

    def __post_init__(self) -> None:
        if self.layers is not None:
            layers = (self.layers,) if isinstance(self.layers, int) else tuple(self.layers)
            if not layers or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in layers):
                raise ConfigError(f"CausalTestConfig.layers must be non-negative layer indices or None, got {self.layers!r}.")
            object.__setattr__(self, "layers", tuple(sorted(set(layers))))
        m_values = (self.m_values,) if isinstance(self.m_values, int) else tuple(self.m_values)
        if not m_values:
            raise ConfigError("CausalTestConfig.m_values is empty; give at least one set size, e.g. (1, 4, 16).")
        for m in m_values:
            _positive_int("m_values", m)
        object.__setattr__(self, "m_values", tuple(sorted(set(m_values))))
        kinds = (self.ablation,) if isinstance(self.ablation, str) else tuple(self.ablation)
        valid = get_args(AblationKind)
        bad = [a for a in kinds if a not in valid]
        if bad or not kinds:
            hint = did_you_mean(bad[0], valid) if bad else ""
            raise ConfigError(f"CausalTestConfig.ablation must be one or more of {valid}, got {self.ablation!r}.{hint}")
        object.__setattr__(self, "ablation", tuple(dict.fromkeys(kinds)))
        if self.rule not in get_args(LatentRule):
            raise ConfigError(
                f"CausalTestConfig.rule must be one of {get_args(LatentRule)}, got {self.rule!r}.{did_you_mean(self.rule, get_args(LatentRule))}"
            )
        for name in ("n_random_draws", "k", "top_k", "min_examples", "n_frequency_bins"):
            _positive_int(name, getattr(self, name))
        if self.n_queries is not None:
            _positive_int("n_queries", self.n_queries)
            if self.n_queries < 2:
                raise ConfigError("CausalTestConfig.n_queries must be at least 2: the paired test needs two queries.")
        if not 0.0 < self.level < 1.0:
            raise ConfigError(f"CausalTestConfig.level must lie in (0, 1), got {self.level!r}.")


@dataclass
class CausalTestResult:
    """What :func:`causal_test` measured."""

    table: pd.DataFrame
    """The tidy summary (:func:`summarise_effects`)."""
    per_query: pd.DataFrame
    """One line per (run, query): ``layer, m, ablation, latent_set, kind, draw, query_id``, the
    ablated and clean ``accuracy`` / ``gold_logprob`` and their changes ``d_accuracy``, ``d_gold_logprob``."""
    latent_sets: pd.DataFrame
    """One line per (layer, m, set): ``latent_set, kind, draw, latents`` (list) and their ``bins``."""
    reference: pd.DataFrame
    """Per layer and latent: ``frequency`` (fraction of reference tokens with f > 0),
    ``mean_activation`` (``a_j`` of mean ablation), ``bin``, the rule's ``score`` and ``rank``."""
    config: CausalTestConfig
    """The settings."""
    provenance: Provenance
    """Model, BOS, padding, task, queries and pool hashes, SAEs and settings."""


# ------------------------------------------------------------------------------------ ablation
@contextmanager
def ablate_latents(
    model: Any,
    sae: Any,
    latents: Sequence[int] | Int[Tensor, " m"],
    positions: Sequence[int] | Int[Tensor, " pos"],
    baseline: Float[Tensor, " m"] | None = None,
) -> Iterator[None]:
    """Inside the block, ``sae.cfg.metadata.hook_name`` of every forward pass of ``model`` has the
    ``latents`` ablated at ``positions`` (the same sequence indices in every row; indices past a
    batch's length are skipped): ``x' = x − Σ_j (f_j(x) − baseline_j) W_dec[j]`` (module docstring).

    Args:
        model: the ``HookedTransformer`` the SAE reads.
        sae: a sae-lens SAE without activation normalisation.
        latents: latent indices ``S`` (empty: nothing changes).
        positions: sequence positions to edit.
        baseline: ``a_j`` per latent (default zeros: zero-ablation).
    """
    idx = torch.as_tensor(latents, dtype=torch.long, device=sae.W_dec.device).reshape(-1)
    pos = torch.as_tensor(positions, dtype=torch.long).reshape(-1)
    base = torch.zeros(idx.numel(), dtype=sae.W_dec.dtype, device=sae.W_dec.device)
    if baseline is not None:
        base = torch.as_tensor(baseline, dtype=sae.W_dec.dtype, device=sae.W_dec.device).reshape(-1)
        if base.numel() != idx.numel():
            raise DataError(f"baseline has {base.numel()} values for {idx.numel()} latents; give one per latent.")
    w_dec = sae.W_dec[idx]  # [m, d_in]

    def hook(acts: Float[Tensor, "batch pos d"], hook: Any) -> Float[Tensor, "batch pos d"]:
        where = pos[pos < acts.shape[1]].to(acts.device)
        if idx.numel() == 0 or where.numel() == 0:
            return acts
        sel = acts[:, where]
        coef = sae.encode(sel.to(w_dec.device, w_dec.dtype))[..., idx] - base
        out = acts.clone()
        out[:, where] = sel - (coef @ w_dec).to(acts.device, acts.dtype)
        return out

    with model.hooks(fwd_hooks=[(sae.cfg.metadata.hook_name, hook)]):
        yield


def demo_positions(prompt: SegmentedPrompt, include_template: bool = False) -> tuple[int, ...]:
    """Indices of the demonstration tokens ablated in ``prompt``: roles :data:`DEMO_ROLES` (and
    ``template`` with ``include_template``) inside ``demo`` segments."""
    roles = set(DEMO_ROLES) | ({"template"} if include_template else set())
    return tuple(i for seg in prompt.segments if seg.kind == "demo" for i in range(seg.start, seg.end) if prompt.roles[i] in roles)


# ------------------------------------------------------------------------------------ latents
class _TokenTally:
    """Reducer counting, per layer and latent, the reference tokens where it fires and its summed activation."""

    family = "sae_tally"

    def __init__(self, saes: Mapping[int, Any]) -> None:
        self.saes = dict(saes)
        self.n_tokens = dict.fromkeys(self.saes, 0)
        self.fired = {layer: torch.zeros(sae.cfg.d_sae, dtype=torch.int64) for layer, sae in self.saes.items()}
        self.total = {layer: torch.zeros(sae.cfg.d_sae, dtype=torch.float64) for layer, sae in self.saes.items()}

    def statistic_names(self) -> tuple[str, ...]:
        return ("sae_reference_tokens",)

    def reduce(
        self, acts: Float[Tensor, "tokens d"], groups: Int[Tensor, " tokens"], n_groups: int, layer: int
    ) -> dict[str, Float[Tensor, " n_groups"]]:
        sae = self.saes[layer]
        f = sae.encode(acts.to(sae.W_dec.device, sae.W_dec.dtype)).to("cpu", torch.float64)
        self.n_tokens[layer] += int(f.shape[0])
        self.fired[layer] += (f > 0).sum(0)
        self.total[layer] += f.sum(0)
        return {"sae_reference_tokens": torch.bincount(groups.cpu(), minlength=n_groups).to(torch.float64)}


def rank_latents(result: Any, layer: int, rule: LatentRule, labels: np.ndarray, d_sae: int, min_examples: int = 2) -> np.ndarray:
    """``[d_sae]`` rule scores of every latent at ``layer`` from a top-latent result (0: not singled out)."""
    score = np.zeros(d_sae)
    if rule == "label_contrast":
        wide = result.to_wide()
        profiles, ids = latent_profiles(wide, layer)
        if np.unique(labels).size < 2:
            raise DataError("rule='label_contrast' needs candidates of at least two labels; the pool has one.")
        score[ids] = task_relevance(profiles, np.asarray(labels), min_examples)
        return score
    top = top_latents_frame(result, layer)
    counts = top.groupby("latent").agg(n=("row", "nunique"), mass=("activation", "sum"))
    mass = counts["mass"].to_numpy(np.float64)
    # count first, summed top activation as the tie-break (scaled below one count)
    score[counts.index.to_numpy()] = counts["n"].to_numpy(np.float64) + 0.5 * mass / (1.0 + mass.max())
    return score


def frequency_bins(frequency: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each latent: quantile bins ``0..n_bins-1`` of the live (``frequency > 0``) latents'
    frequencies (equal frequencies always share a bin); ``-1`` for latents that never fire."""
    freq = np.asarray(frequency, dtype=np.float64)
    live = freq > 0
    bins = np.full(freq.shape, -1, dtype=np.int64)
    if live.any():
        inner = np.quantile(freq[live], np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
        bins[live] = np.searchsorted(inner, freq[live], side="right")
    return bins


def matched_random_latents(bins: np.ndarray, targets: Sequence[int] | np.ndarray, n_draws: int, rng: np.random.Generator) -> np.ndarray:
    """``[n_draws, m]`` random latents, column ``i`` drawn uniformly from the bin of ``targets[i]``,
    never a target nor an earlier pick of the same draw. When a bin runs out, the nearest bins
    (by index distance) supply the rest, with a logged warning; a live target's stand-in is never a
    latent that does not fire (bin ``-1``), whose ablation would change nothing."""
    bins = np.asarray(bins)
    tgt = np.asarray(targets, dtype=np.int64)
    if 2 * tgt.size > bins.size:
        raise ConfigError(f"Random sets of {tgt.size} latents other than the targets need d_sae ≥ {2 * tgt.size}; it is {bins.size}.")
    out = np.empty((n_draws, tgt.size), dtype=np.int64)
    widened = 0
    for d in range(n_draws):
        free = np.ones(bins.size, dtype=bool)
        free[tgt] = False
        for i, t in enumerate(tgt):
            distance = np.abs(bins - bins[t]).astype(np.float64)
            if bins[t] >= 0:
                distance[bins < 0] = np.inf
            if not np.isfinite(distance[free]).any():
                raise DataError(f"No live latent is left to stand in for target latent {int(t)}; lower m.")
            step = distance[free].min()  # 0 unless the target's own bin has run out
            widened += step > 0
            pick = int(rng.choice(np.flatnonzero(free & (distance == step))))
            out[d, i] = pick
            free[pick] = False
    if widened:
        logger.warning("%d random latent(s) came from a neighbouring frequency bin: their own bin had too few latents.", widened)
    return out


# ------------------------------------------------------------------------------------ summary
def _row(keys: dict[str, Any], metric: str, a: np.ndarray, b: np.ndarray, level: float, mde: bool) -> dict[str, Any]:
    pair = paired_comparison(a, b)
    bounds = None
    if metric in METRIC_RANGES:
        lo, hi = METRIC_RANGES[metric]
        bounds = (-(hi - lo), hi - lo)
    ci = paired_interval(pair["mean_diff"], pair["sd_diff"], int(pair["n_pairs"]), level, bounds)
    alpha = 1.0 - level
    return {
        **keys,
        "metric": metric,
        "effect": pair["mean_diff"],
        "sd": pair["sd_diff"],
        "ci_low": ci[0],
        "ci_high": ci[1],
        "t_stat": pair["t_stat"],
        "p_value": pair["p_ttest"],
        "n_queries": int(pair["n_pairs"]),
        "mde": paired_mde(pair["sd_diff"], int(pair["n_pairs"]), alpha=alpha) if mde else float("nan"),
        "significant": bool(pair["p_ttest"] < alpha),
    }


def summarise_effects(per_query: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The tidy table of :class:`CausalTestResult` from its per-query frame.

    One line per ``(layer, m, ablation, latent_set, metric)``: ``effect`` (mean change versus the
    clean run), ``sd``, paired t-interval ``ci_low``/``ci_high``, ``t_stat``, ``p_value`` (paired t
    test), ``n_queries``, ``significant`` (``p < 1 − level``) and, on the comparison lines, ``mde``.
    ``latent_set`` is ``targeted``, ``random draw i``, ``random`` (per query, the draws' mean) or
    ``targeted - random`` (compared by the paired t-test of ``Δ_targeted`` against ``Δ_random``,
    which treats the drawn random sets as fixed; ``draw_rank_p`` treats them as a sample:
    ``(1 + #{draws whose mean |effect| ≥ the targeted set's}) / (1 + n_draws)``, whose floor is
    ``1 / (1 + n_draws)``).
    """
    need = {"layer", "m", "ablation", "kind", "draw", "query_id", *METRICS, *(f"clean_{m}" for m in METRICS)}
    missing = sorted(need - set(per_query.columns))
    if missing:
        raise DataError(f"The per-query frame lacks columns {missing}; pass CausalTestResult.per_query.")
    rows = []
    for key, runs in per_query.groupby(["layer", "m", "ablation"], sort=True):
        keys = dict(zip(("layer", "m", "ablation"), cast(tuple, key)))
        targeted = runs[runs["kind"] == "targeted"].set_index("query_id")
        draws = runs[runs["kind"] == "random draw"].pivot(index="query_id", columns="draw")
        order = targeted.index
        for metric in METRICS:
            clean = targeted[f"clean_{metric}"].to_numpy(np.float64)
            t = targeted[metric].to_numpy(np.float64)
            rows.append(_row({**keys, "latent_set": "targeted", "kind": "targeted", "draw": -1}, metric, t, clean, level, False))
            r = draws[metric].reindex(order)
            for d in r.columns:
                row_keys = {**keys, "latent_set": f"random draw {d}", "kind": "random draw", "draw": int(d)}
                rows.append(_row(row_keys, metric, r[d].to_numpy(np.float64), clean, level, False))
            r_mean = r.to_numpy(np.float64).mean(axis=1)
            rows.append(_row({**keys, "latent_set": "random", "kind": "random", "draw": -1}, metric, r_mean, clean, level, False))
            row_keys = {**keys, "latent_set": "targeted - random", "kind": "difference", "draw": -1}
            rows.append(_row(row_keys, metric, t, r_mean, level, True))
            # the paired t test treats the drawn random sets as fixed; this rank test treats them as
            # a sample: how many draws moved the metric at least as much as the targeted set did
            draw_effects = (r.to_numpy(np.float64) - clean[:, None]).mean(axis=0)
            target_effect = float((t - clean).mean())
            rows[-1]["draw_rank_p"] = (1 + int((np.abs(draw_effects) >= abs(target_effect)).sum())) / (1 + draw_effects.size)
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------ the test
def _check_inputs(runner: ICLRunner, by_layer: dict[int, Any], cfg: CausalTestConfig) -> tuple[int, ...]:
    from mechsel.sae.loading import check_sae_matches

    if runner.task.kind != "classification":
        raise ConfigError(f"The causal test scores label words; task {runner.task.name!r} is a {runner.task.kind} task.")
    layers = cfg.layers if cfg.layers is not None else tuple(sorted(by_layer))
    missing = [layer for layer in layers if layer not in by_layer]
    if missing:
        raise ConfigError(
            f"CausalTestConfig.layers asks for layers {missing} without an SAE; the SAEs given cover layers "
            f"{sorted(by_layer)}. Pass an SAE for each layer, or set layers to a subset of {sorted(by_layer)}."
        )
    for layer in layers:
        sae = by_layer[layer]
        check_sae_matches(sae, runner.model, "mlp_out", layer=layer)
        norm = getattr(sae.cfg, "normalize_activations", "none")
        if norm != "none":
            raise ConfigError(
                f"The SAE of layer {layer} normalises its inputs (normalize_activations={norm!r}), so W_dec rows are not "
                f"directions in hook_mlp_out; fold the normalisation into the weights (sae.fold_activation_norm_scaling_factor) first."
            )
        too_big = [m for m in cfg.m_values if 2 * m > sae.cfg.d_sae]
        if too_big:
            raise ConfigError(
                f"CausalTestConfig.m_values {too_big} are too large for layer {layer}'s SAE (d_sae={sae.cfg.d_sae}): each "
                f"random set needs m latents other than the m targets, so m ≤ {sae.cfg.d_sae // 2}."
            )
        if cfg.top_k > sae.cfg.d_sae:
            raise ConfigError(f"CausalTestConfig.top_k={cfg.top_k} exceeds layer {layer}'s d_sae={sae.cfg.d_sae}; lower it.")
    return layers


def _score(
    runner: ICLRunner,
    prompts: Sequence[SegmentedPrompt],
    groups: dict[tuple[int, ...], list[int]],
    edit: Callable[[Sequence[int]], Any] | None,
) -> np.ndarray:
    """``[n, n_labels]`` label log-probabilities, prompts sharing ablated positions scored together."""
    scoring = replace(runner.scoring, prefix_reuse=False, padding_side="right", progress=False)
    scorer = LabelScorer(runner.model, runner.encoder.label_token_ids, scoring)
    out = np.zeros((len(prompts), len(runner.encoder.label_token_ids)))
    for positions, idx in groups.items():
        with edit(positions) if edit is not None else nullcontext():
            out[idx] = scorer.logprobs([prompts[i] for i in idx]).numpy()
    return out


def _reference(
    runner: ICLRunner, by_layer: dict[int, Any], pool: list[Example], cfg: CausalTestConfig, rng: np.random.Generator
) -> tuple[pd.DataFrame, list[dict[str, Any]], Any]:
    """Reference statistics of the pool (one collect pass), then the targeted and random latent sets."""
    from mechsel.collection import collect

    reducer_top, tally = SAETopLatents(by_layer, k=cfg.top_k), _TokenTally(by_layer)
    result = collect(
        runner.model,
        [runner.encoder.demonstrations([e]) for e in pool],
        layers=sorted(by_layer),
        mask="full",
        statistics=[reducer_top, tally],
        include_template=cfg.include_template,
        progress=False,
    )
    labels = np.array([e.label for e in pool], dtype=np.int64)
    reference, sets = [], []
    for layer, sae in sorted(by_layer.items()):
        d_sae, n_tokens = sae.cfg.d_sae, max(tally.n_tokens[layer], 1)
        freq = tally.fired[layer].numpy() / n_tokens
        bins = frequency_bins(freq, cfg.n_frequency_bins)
        score = rank_latents(result, layer, cfg.rule, labels, d_sae, cfg.min_examples)
        ranked = np.lexsort((np.arange(d_sae), -score))
        rank = np.empty(d_sae, dtype=np.int64)
        rank[ranked] = np.arange(d_sae)
        columns = {"latent": np.arange(d_sae), "frequency": freq, "mean_activation": tally.total[layer].numpy() / n_tokens}
        reference.append(pd.DataFrame({"layer": layer, **columns, "bin": bins, "score": score, "rank": rank}))
        n_singled = int((score > 0).sum())
        for m in cfg.m_values:
            if m > n_singled:
                raise DataError(
                    f"Rule {cfg.rule!r} singles out only {n_singled} latents at layer {layer}, fewer than m={m}. Use a "
                    f"larger pool or top_k, a smaller min_examples, or m ≤ {n_singled}."
                )
            draws = matched_random_latents(bins, ranked[:m], cfg.n_random_draws, rng)
            for d, latents in enumerate([ranked[:m], *draws], start=-1):
                name, kind = ("targeted", "targeted") if d < 0 else (f"random draw {d}", "random draw")
                keys = {"layer": layer, "m": m, "latent_set": name, "kind": kind, "draw": d}
                sets.append({**keys, "latents": latents.tolist(), "bins": bins[latents].tolist()})
    return pd.concat(reference, ignore_index=True), sets, reducer_top


def causal_test(
    runner: ICLRunner,
    saes: Any,
    pool: Sequence[Example],
    queries: Sequence[Example],
    config: CausalTestConfig | None = None,
    *,
    demos: DemoSpec | None = None,
) -> CausalTestResult:
    """Ablate rule-chosen SAE latents in the demonstrations versus matched random latents (module docstring).

    Args:
        runner: the model bound to a classification task (prompts, BOS, scoring batch size).
        saes: ``{layer: SAE}`` on ``hook_mlp_out``, or one SAE.
        pool: labelled candidates: the reference tokens, the rules' statistics and (without
            ``demos``) the demonstrations drawn for each query.
        queries: labelled test queries (``config.n_queries`` of them are drawn).
        config: the settings (:class:`CausalTestConfig`).
        demos: demonstrations instead of ``config.k`` random ones per query (as for
            :func:`mechsel.icl.evaluate`: a fixed set, ``{query_id: demos}`` or a callable).
    """
    cfg = config or CausalTestConfig()
    top = SAETopLatents(saes, k=cfg.top_k)
    by_layer = {layer: top.saes[layer] for layer in _check_inputs(runner, top.saes, cfg)}
    pool, queries = list(pool), list(queries)
    if not pool or any(e.label is None for e in pool):
        raise DataError("The candidate pool must be non-empty and labelled: the demonstrations show labels, and label_contrast reads them.")
    if cfg.n_queries is not None and cfg.n_queries > len(queries):
        raise DataError(f"CausalTestConfig.n_queries={cfg.n_queries} but only {len(queries)} queries were given; lower n_queries.")
    if len({q.id for q in queries}) != len(queries):
        raise DataError("Query ids must be distinct: the paired tests match runs by query id.")
    rng = np.random.default_rng(cfg.seed)
    if cfg.n_queries is not None:
        queries = [queries[i] for i in np.sort(rng.choice(len(queries), size=cfg.n_queries, replace=False))]
    gold = gold_labels(queries)
    if demos is None:
        demos = {q.id: sample_demonstrations(pool, cfg.k, seed=int(rng.integers(2**31))) for q in queries}
    demo_sets = resolve_demo_sets(queries, demos)
    prompts = runner.prompts(demo_sets, queries)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, prompt in enumerate(prompts):
        groups.setdefault(demo_positions(prompt, cfg.include_template), []).append(i)
    reference, sets, reducer_top = _reference(runner, by_layer, pool, cfg, rng)

    def scores(logprobs: np.ndarray) -> dict[str, np.ndarray]:
        return {metric: pair_scores(metric, logprobs=logprobs, gold=gold) for metric in METRICS}  # type: ignore[misc]

    parts = []
    with tqdm(total=1 + len(sets) * len(cfg.ablation), desc="causal test", unit="run", disable=not cfg.progress) as bar:
        clean = scores(_score(runner, prompts, groups, None))
        bar.update(1)
        for s in sets:
            sae, latents = by_layer[s["layer"]], s["latents"]
            means = reference.loc[reference["layer"] == s["layer"], "mean_activation"].to_numpy(np.float64)
            for kind in cfg.ablation:
                base = torch.as_tensor(means[latents]) if kind == "mean" else None

                def edit(positions: Sequence[int], sae: Any = sae, latents: list[int] = latents, base: Any = base) -> Any:
                    return ablate_latents(runner.model, sae, latents, positions, base)

                ablated = scores(_score(runner, prompts, groups, edit))
                keys = {k: s[k] for k in ("layer", "m", "latent_set", "kind", "draw")}
                frame = pd.DataFrame({**keys, "ablation": kind, "query_id": [q.id for q in queries]})
                for metric in METRICS:
                    frame[metric], frame[f"clean_{metric}"] = ablated[metric], clean[metric]
                    frame[f"d_{metric}"] = ablated[metric] - clean[metric]
                parts.append(frame)
                bar.update(1)
    per_query = pd.concat(parts, ignore_index=True)
    per_query = cast(pd.DataFrame, per_query[["layer", "m", "ablation", "latent_set", "kind", "draw", *per_query.columns[6:]]])
    table = summarise_effects(per_query, cfg.level)
    for line in cast(pd.DataFrame, table[table["kind"] == "difference"]).to_dict("records"):
        logger.info(
            "causal test, layer %s, m=%s, %s ablation, %s: targeted - random = %.4f [%.4f, %.4f], p = %.3g, MDE %.4f",
            *(line[c] for c in ("layer", "m", "ablation", "metric", "effect", "ci_low", "ci_high", "p_value", "mde")),
        )
    from mechsel.serialize import to_dict

    roles = DEMO_ROLES + (("template",) if cfg.include_template else ())
    provenance = runner.provenance(
        data_hash=examples_hash(queries),
        pool_hash=examples_hash(pool),
        causal_test=to_dict(cfg),
        demo_sets=[[str(d.id) for d in ds] for ds in demo_sets],
        **reducer_top.provenance_info(),
    ).replace(hook="mlp_out", positions="demonstrations: " + "+".join(roles))
    return CausalTestResult(table, per_query, pd.DataFrame(sets), reference, cfg, provenance)
