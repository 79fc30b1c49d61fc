"""The raw activations of exactly the tokens :func:`~mechsel.collection.collect` summarises.

:func:`iter_selected` runs the collector's own plan (mask, positions, BOS and template policy,
batching) and hands over the selected activations batch by batch instead of reducing them. What
needs the same tokens as the statistics without the statistics themselves reads from here: the
SAE's activation reference (:mod:`mechsel.sae.reference`), SAE training on demonstration
segments and the spliced-in loss (:mod:`mechsel.sae.splice`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from mechsel.collection.config import CollectConfig
from mechsel.collection.plan import Batch, Plan, build_plan, make_batches, pad_batch
from mechsel.collection.run import resolve_hook, resolve_layers
from mechsel.collection.stream import pad_token_id, stream_batch
from mechsel.masks.hooks import strategy_hooks

__all__ = ["iter_selected", "selected_batches", "selected_token_counts"]


def selected_token_counts(model: Any, inputs: Sequence[Any], config: CollectConfig) -> list[int]:
    """How many tokens :func:`iter_selected` would yield per layer for each input (the inputs are
    only planned)."""
    plan = build_plan(model, inputs, config)
    counts = [0] * len(inputs)
    for prompt_id, n in zip(plan.prompt_ids, plan.n_tokens):
        counts[prompt_id] += n
    return counts


def selected_batches(model: Any, inputs: Sequence[Any], config: CollectConfig) -> tuple[Plan, list[Batch]]:
    """The collector's plan of ``inputs`` and its padded batches (no forward pass)."""
    plan = build_plan(model, inputs, config)
    pad = pad_token_id(model)
    return plan, [pad_batch(seqs, pad) for seqs in make_batches(plan, config.batch_size)]


def iter_selected(
    model: Any, inputs: Sequence[Any], config: CollectConfig, *, layers: Any = None
) -> Iterator[dict[int, Float[Tensor, "selected d"]]]:
    """Yield ``{layer: [selected tokens, d] float32 on the CPU}`` per model batch.

    Args:
        model: a TransformerLens ``HookedTransformer``.
        inputs: texts or :class:`~mechsel.masks.segments.SegmentedPrompt` objects, as for ``collect``.
        config: the collection settings; ``config.statistics`` is ignored.
        layers: the layers to read (default ``config.layers``).

    The tokens of a batch are those ``collect`` would summarise for the same inputs and config,
    in the same order (row by row, as :attr:`Batch.select` lists them).
    """
    layers = resolve_layers(model, config.layers if layers is None else layers)
    suffix = resolve_hook(model, config.hook)
    names = {f"blocks.{layer}.{suffix}": layer for layer in layers}
    _, batches = selected_batches(model, inputs, config)
    stop = max(layers) + 1
    for batch in batches:
        out: dict[int, Tensor] = {}

        def grab(name: str, acts: Tensor, out: dict[int, Tensor] = out) -> None:
            out[names[name]] = acts.to("cpu", torch.float32)

        length = batch.tokens.shape[1]
        masking = strategy_hooks(
            model, config.mask, batch.prompts, length=length, attention_mask=batch.attention_mask.to(model.cfg.device), layers=range(stop)
        )
        stream_batch(model, batch, list(names), grab, extra_hooks=[masking])
        yield out
