"""The streaming collector: per-example statistics of a block hook, reduced inside the hooks.

Every batch runs through :func:`~mechsel.collection.stream.stream_batch` (one hook per
requested layer, plus the mask strategy's hooks; ``torch.inference_mode()``,
``stop_at_layer = max(layers) + 1``); inside each hook the selected token positions are gathered
and handed to every reducer, and the per-example results go straight into CPU float64 arrays.
No ``[layers, batch, pos, d]`` cache ever exists; the extra memory is one layer's selected
activations of one batch.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from tqdm.auto import tqdm

from mechsel.collection.config import CollectConfig
from mechsel.collection.plan import Batch, Plan, build_plan, make_batches, pad_batch
from mechsel.collection.shards import ShardWriter, open_shard_writer
from mechsel.collection.stream import pad_token_id, stream_batch
from mechsel.errors import ConfigError, did_you_mean
from mechsel.masks.hooks import strategy_hooks
from mechsel.provenance import Provenance
from mechsel.stats.base import STATISTICS, Reducer
from mechsel.stats.moments import DEFAULT_MOMENTS
from mechsel.stats.result import StatsResult

__all__ = ["collect", "run_collect", "collect_provenance", "resolve_layers", "resolve_hook", "resolve_reducers"]

logger = logging.getLogger(__name__)


def resolve_layers(model: Any, layers: Any) -> tuple[int, ...]:
    """Sorted, de-duplicated layer indices; out-of-range indices raise."""
    n = model.cfg.n_layers
    if layers == "all":
        return tuple(range(n))
    out = set()
    for layer in (layers,) if isinstance(layers, int) else layers:
        if not -n <= layer < n:
            raise ConfigError(f"Layer {layer} is out of range: this model has {n} layers (0..{n - 1}; negative counts from the end).")
        out.add(layer % n)
    return tuple(sorted(out))


def resolve_hook(model: Any, hook: str) -> str:
    """The hook name inside a block (``"hook_mlp_out"``, ``"mlp.hook_post"``); unknown names raise."""
    suffix = hook if hook.startswith("hook_") or "." in hook else f"hook_{hook}"
    if f"blocks.0.{suffix}" in model.hook_dict:
        return suffix
    valid = sorted(k[len("blocks.0.") :] for k in model.hook_dict if k.startswith("blocks.0."))
    short = [v.removeprefix("hook_") for v in valid]
    raise ConfigError(
        f"Unknown hook {hook!r} (looked for 'blocks.<L>.{suffix}').{did_you_mean(hook, short)} "
        f"Valid hooks in this model's blocks: {', '.join(short)}."
    )


def resolve_reducers(statistics: Sequence[Any]) -> list[Reducer]:
    """Reducer instances for a mix of statistic names and Reducer instances."""
    by_name: dict[str, str] = {}
    for family in STATISTICS.names():
        try:
            default = STATISTICS.get(family)()
        except TypeError:  # families that need objects (an SAE per layer) are passed as instances
            continue
        for stat in default.statistic_names():
            by_name.setdefault(stat, family)
    wanted: dict[str, list[str]] = {}
    reducers: list[Reducer] = []
    for s in statistics:
        if isinstance(s, str):
            if s not in by_name:
                raise ConfigError(
                    f"Unknown statistic {s!r}.{did_you_mean(s, list(by_name))} Valid statistics: "
                    f"{', '.join(by_name)}; pass a Reducer instance for others (e.g. SAE statistics)."
                )
            wanted.setdefault(by_name[s], []).append(s)
        else:
            reducers.append(s)
    for family, names in wanted.items():
        cls = STATISTICS.get(family)
        if "statistics" in inspect.signature(cls).parameters:
            reducers.append(cls(statistics=tuple(names)))
        else:
            reducers.append(_subset(cls(), tuple(names)))
    seen: dict[str, str] = {}
    for r in reducers:
        for name in r.statistic_names():
            if name in seen:
                raise ConfigError(f"Statistic {name!r} is produced twice (by {seen[name]!r} and {r.family!r}); ask for it once.")
            seen[name] = r.family
    return reducers


class _Subset:
    """A reducer whose family cannot compute a subset: computes all, keeps the requested ones."""

    family: ClassVar[str]

    def __init__(self, inner: Reducer, names: tuple[str, ...]) -> None:
        self.inner, self.names = inner, names

    def statistic_names(self) -> tuple[str, ...]:
        return self.names

    def reduce(self, acts, groups, n_groups, layer):  # noqa: ANN001, ANN201 - same as Reducer.reduce
        out = self.inner.reduce(acts, groups, n_groups, layer)
        return {k: out[k] for k in self.names}


def _subset(inner: Reducer, names: tuple[str, ...]) -> _Subset:
    """A :class:`_Subset` of ``inner`` whose class carries ``inner``'s family (a class variable in :class:`Reducer`)."""
    cls: type[_Subset] = type(f"_Subset_{inner.family}", (_Subset,), {"family": inner.family})
    return cls(inner, names)


def collect(
    model: Any,
    texts_or_prompts: Sequence[Any],
    *,
    layers: Any = "all",
    hook: str = "mlp_out",
    mask: str = "alone",
    positions: str = "all",
    batch_size: int = 16,
    statistics: Any = DEFAULT_MOMENTS,
    include_bos: bool = False,
    include_template: bool = False,
    truncate: bool = False,
    bos_token_id: Any = "auto",
    save_activations: str | os.PathLike[str] | None = None,
    mean_vectors: bool = False,
    progress: bool = True,
) -> StatsResult:
    """Per-example, per-layer statistics of ``blocks.{L}.hook_{hook}``, computed while streaming.

    Args:
        model: a TransformerLens ``HookedTransformer`` (with a tokenizer for plain texts).
        texts_or_prompts: plain texts (each encoded as BOS + text) or
            :class:`~mechsel.masks.segments.SegmentedPrompt` objects (every demo/query segment
            becomes a row, summarised separately).
        layers, hook, mask, positions, batch_size, statistics, include_bos, include_template,
        truncate, bos_token_id, save_activations, mean_vectors, progress: see :class:`CollectConfig`, where
        each is documented.

    Returns:
        A :class:`~mechsel.stats.result.StatsResult` with one row per text / prompt segment.

    Raises:
        DataError: empty, non-string or too long inputs, or an example with no selected tokens.
        ConfigError: unknown hook, statistic, mask or positions; layer out of range.
    """
    cfg = CollectConfig(
        layers=layers,
        hook=hook,
        mask=mask,  # type: ignore[arg-type]
        positions=positions,  # type: ignore[arg-type]
        batch_size=batch_size,
        statistics=statistics,
        include_bos=include_bos,
        include_template=include_template,
        truncate=truncate,
        bos_token_id=bos_token_id,
        save_activations=save_activations,
        mean_vectors=mean_vectors,
        progress=progress,
    )
    return run_collect(model, texts_or_prompts, cfg)


def run_collect(model: Any, texts_or_prompts: Sequence[Any], config: CollectConfig) -> StatsResult:
    """:func:`collect` with the settings given as one :class:`CollectConfig`."""
    cfg = config
    layers = resolve_layers(model, cfg.layers)
    suffix = resolve_hook(model, cfg.hook)
    reducers = resolve_reducers(cfg.statistics)
    plan = build_plan(model, texts_or_prompts, cfg)
    names = [name for r in reducers for name in r.statistic_names()]
    n_rows = len(plan.example_ids)
    out = {name: np.full((n_rows, len(layers)), np.nan) for name in names}
    vectors = np.zeros((n_rows, len(layers), model.cfg.d_model), dtype=np.float32) if cfg.mean_vectors else None
    hook_label = suffix.removeprefix("hook_")
    pad_id = pad_token_id(model)
    batches = make_batches(plan, cfg.batch_size)
    provenance = _provenance(model, plan, cfg, layers, hook_label, reducers)
    n_tokens = sum(len(s.prompt) for s in plan.sequences)
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        writer = stack.enter_context(open_shard_writer(cfg.save_activations, layers)) if cfg.save_activations else None
        bar = stack.enter_context(tqdm(total=len(plan.sequences), desc="collect", unit="seq", disable=not cfg.progress))
        for sequences in batches:
            batch = pad_batch(sequences, pad_id)
            _run_batch(model, batch, cfg, layers, suffix, reducers, out, writer, vectors)
            bar.update(len(sequences))
        if writer is not None:
            writer.write_index(provenance, hook_label)
    seconds = time.perf_counter() - start
    logger.info("collect: %d rows, %d tokens, %d layers in %.1f s", n_rows, n_tokens, len(layers), seconds)
    return StatsResult(
        values=out,
        layers=layers,
        example_ids=tuple(plan.example_ids),
        prompt_ids=np.asarray(plan.prompt_ids),
        segments=tuple(plan.segments),
        n_tokens=np.asarray(plan.n_tokens),
        provenance=provenance,
        meta={"seconds": seconds, "tokens": n_tokens, "batch_size": cfg.batch_size},
        vectors={} if vectors is None else {"mean": vectors},
    )


def collect_provenance(model: Any, texts_or_prompts: Sequence[Any], config: CollectConfig) -> Provenance:
    """The provenance :func:`run_collect` records for these inputs, without running the model
    (the inputs are only tokenised and planned)."""
    layers = resolve_layers(model, config.layers)
    hook_label = resolve_hook(model, config.hook).removeprefix("hook_")
    reducers = resolve_reducers(config.statistics)
    return _provenance(model, build_plan(model, texts_or_prompts, config), config, layers, hook_label, reducers)


def _provenance(
    model: Any, plan: Plan, cfg: CollectConfig, layers: tuple[int, ...], hook_label: str, reducers: list[Reducer]
) -> Provenance:
    from mechsel.models.loading import model_provenance

    extra: dict[str, Any] = {
        "layers": list(layers),
        "statistics": [name for r in reducers for name in r.statistic_names()],
        "reducers": [_describe(r) for r in reducers],
        "truncate": cfg.truncate,
        "n_truncated": plan.n_truncated,
        "n_reencoded_past_window": plan.n_reencoded,
    }
    if cfg.mean_vectors:
        extra["vectors"] = ["mean"]
    return model_provenance(
        model,
        hook=hook_label,
        mask=cfg.mask,
        positions=cfg.positions_label,
        bos_policy=plan.bos_policy,
        padding_side="right",
        data_hash=plan.data_hash,
        extra=extra,
    )


def _describe(reducer: Reducer) -> dict[str, Any]:
    info: dict[str, Any] = {"family": reducer.family, "statistics": list(reducer.statistic_names())}
    more: Callable[[], dict[str, Any]] | None = getattr(reducer, "provenance_info", None)
    if callable(more):
        info.update(more())
    return info


def _run_batch(
    model: Any,
    batch: Batch,
    cfg: CollectConfig,
    layers: tuple[int, ...],
    suffix: str,
    reducers: list[Reducer],
    out: dict[str, np.ndarray],
    writer: ShardWriter | None,
    vectors: np.ndarray | None = None,
) -> None:
    groups = batch.groups.to(model.cfg.device)
    n_groups = len(batch.rows)
    length = batch.tokens.shape[1]
    column = {f"blocks.{layer}.{suffix}": (j, layer) for j, layer in enumerate(layers)}

    def summarise(name: str, acts: torch.Tensor) -> None:
        if acts.ndim != 2:
            raise ConfigError(
                f"Hook {name!r} gives shape {(batch.tokens.shape[0], length, *acts.shape[1:])}; collect summarises [batch, pos, d] "
                f"activations. Choose a block-level hook such as 'mlp_out' or 'resid_post'."
            )
        j, layer = column[name]
        if writer is not None:
            writer.add(layer, acts)
        if vectors is not None:  # each row's mean over its selected tokens, summed in float64
            sums = torch.zeros((n_groups, acts.shape[1]), dtype=torch.float64, device=acts.device)
            sums.index_add_(0, groups, acts.to(torch.float64))
            counts = torch.bincount(groups, minlength=n_groups).to(torch.float64)
            vectors[batch.rows, j] = (sums / counts[:, None]).to("cpu", torch.float32).numpy()
        for reducer in reducers:
            result = reducer.reduce(acts, groups, n_groups, layer)
            expected = tuple(reducer.statistic_names())
            if set(result) != set(expected):
                raise ConfigError(f"Reducer {reducer.family!r} returned {sorted(result)}; it declares {list(expected)}.")
            for stat in expected:
                value = result[stat]
                if tuple(value.shape) != (n_groups,):
                    raise ConfigError(
                        f"Reducer {reducer.family!r} returned shape {tuple(value.shape)} for {stat!r}; expected ({n_groups},), one value per group."
                    )
                out[stat][batch.rows, j] = value.detach().to("cpu", torch.float64).numpy()

    stop = max(layers) + 1
    masking = strategy_hooks(
        model, cfg.mask, batch.prompts, length=length, attention_mask=batch.attention_mask.to(model.cfg.device), layers=range(stop)
    )
    stream_batch(model, batch, list(column), summarise, extra_hooks=[masking])
    if writer is not None:
        sel = batch.select.numpy()
        writer.flush(batch.rows[batch.groups.numpy()], sel % length)
