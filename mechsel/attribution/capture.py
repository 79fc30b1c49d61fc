"""One forward pass that keeps only what attribution at the answer position needs.

The hooks reduce as they fire: each layer's attention row of the answer position (not the full
``[head, pos, pos]`` pattern), its value vectors, the answer position's ``hook_attn_out`` /
``hook_mlp_out`` and the scales of the norms the logit read-out passes through. Everything is
moved to CPU in float64 at once. Hooks live only inside ``model.hooks(...)``, which removes them
in ``finally``; hooks the caller attached around the call (e.g. a planted pattern) run first and
are seen here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor, nn
from transformer_lens import HookedTransformer
from transformer_lens.utilities.architectures import POST_NORM_ARCHITECTURES

from mechsel.errors import ConfigError

__all__ = ["AnswerActivations", "capture_answer", "attn_out_norm"]


@dataclass(frozen=True)
class AnswerActivations:
    """Activations of one prompt at its answer position (float64, CPU)."""

    embeddings: Float[Tensor, " d_model"]
    """``blocks.0.hook_resid_pre``: token (+ positional) embedding, scaled as the model does."""
    pattern: Float[Tensor, "layer head pos"]
    """Attention of the answer position over every source position, per layer and head."""
    values: Float[Tensor, "layer pos head d_head"]
    """Value vectors (bias included), repeated to one per query head for grouped-query attention."""
    attn_out: Float[Tensor, "layer d_model"]
    """``hook_attn_out`` at the answer position (after a post-attention norm, if any)."""
    mlp_out: Float[Tensor, "layer d_model"]
    """``hook_mlp_out`` at the answer position (zeros for attention-only models)."""
    attn_out_scale: Float[Tensor, " layer"]
    """Scale of the post-attention norm at the answer position (ones when there is none)."""
    final_scale: float
    """Scale of ``ln_final`` at the answer position (1.0 for models without normalisation)."""
    resid_final: Float[Tensor, " d_model"]
    """The last block's ``hook_resid_post``: the residual stream ``ln_final`` reads."""
    label_logits: Float[Tensor, " labels"]
    """``unembed.hook_out`` (before any logit soft-cap) of each label token."""
    output_label_logits: Float[Tensor, " labels"]
    """The forward output's logits of each label token (after the soft-cap, if the model has one)."""


def attn_out_norm(model: HookedTransformer, layer: int) -> nn.Module | None:
    """The norm applied to layer ``layer``'s attention output before it joins the residual stream
    (Gemma 2/3 ``ln1_post``, OLMo 2 post-norm ``ln1``), or ``None``."""
    block: Any = model.blocks[layer]
    if model.cfg.use_normalization_before_and_after:
        return block.ln1_post
    if model.cfg.original_architecture in POST_NORM_ARCHITECTURES:
        return block.ln1
    return None


def _check_supported(model: HookedTransformer) -> None:
    cfg = model.cfg
    if cfg.use_attention_sinks:
        raise ConfigError(
            "This model uses attention sinks: its pattern rows sum to less than 1, so attention shares over the prompt's "
            "segments are not a partition. Attribution supports models without sinks."
        )
    if cfg.load_in_4bit:
        raise ConfigError("Attribution reads W_O as a dense matrix; load the model without load_in_4bit.")
    if cfg.positional_embedding_type == "shortformer":
        raise ConfigError(
            "Shortformer positional embeddings enter every layer's queries and keys outside the residual stream; attribution "
            "supports 'standard', 'rotary', 'alibi' and 'relative_positional_bias' models."
        )


def capture_answer(model: HookedTransformer, tokens: Sequence[int], label_tokens: Sequence[int]) -> AnswerActivations:
    """Run ``model`` on one prompt and keep the answer position's activations (module docstring)."""
    _check_supported(model)
    cfg = model.cfg
    n_layers, answer = cfg.n_layers, len(tokens) - 1
    labels = torch.tensor(list(label_tokens), dtype=torch.long)
    got: dict[str, Tensor] = {}

    def keep(name: str, select: Any) -> tuple[str | Callable, Callable]:
        def hook(act: Tensor, hook: Any) -> None:
            got[name] = select(act[0]).detach().to("cpu", torch.float64)

        return name, hook

    at_answer = lambda act: act[answer]  # noqa: E731  (per-position activations: [pos, ...])
    hooks: list[tuple[str | Callable, Callable]] = [
        keep("blocks.0.hook_resid_pre", at_answer),
        keep(f"blocks.{n_layers - 1}.hook_resid_post", at_answer),
    ]
    for layer in range(n_layers):
        hooks.append(keep(f"blocks.{layer}.attn.hook_pattern", lambda act: act[:, answer, :]))
        hooks.append(keep(f"blocks.{layer}.attn.hook_v", lambda act: act))
        hooks.append(keep(f"blocks.{layer}.hook_attn_out", at_answer))
        if not cfg.attn_only:
            hooks.append(keep(f"blocks.{layer}.hook_mlp_out", at_answer))
        norm = attn_out_norm(model, layer)
        if norm is not None and hasattr(norm, "hook_scale"):
            name = "ln1_post" if cfg.use_normalization_before_and_after else "ln1"
            hooks.append(keep(f"blocks.{layer}.{name}.hook_scale", at_answer))
    if hasattr(model, "ln_final") and hasattr(model.ln_final, "hook_scale"):
        hooks.append(keep("ln_final.hook_scale", at_answer))
    hooks.append(keep("unembed.hook_out", lambda act: act[answer, labels.to(act.device)]))

    device = cfg.device if cfg.device is not None else "cpu"
    with torch.inference_mode(), model.hooks(fwd_hooks=hooks):
        logits = model(torch.tensor([list(tokens)], device=device), return_type="logits")
    output_label_logits = logits[0, answer, labels.to(logits.device)].to("cpu", torch.float64)

    def scale(name: str) -> float:
        return float(got[name].reshape(())) if name in got else 1.0

    values = torch.stack([got[f"blocks.{layer}.attn.hook_v"] for layer in range(n_layers)])
    if values.shape[2] != cfg.n_heads:  # grouped-query attention: one value head per group of query heads
        values = values.repeat_interleave(cfg.n_heads // values.shape[2], dim=2)
    post = "ln1_post" if cfg.use_normalization_before_and_after else "ln1"
    return AnswerActivations(
        embeddings=got["blocks.0.hook_resid_pre"],
        pattern=torch.stack([got[f"blocks.{layer}.attn.hook_pattern"] for layer in range(n_layers)]),
        values=values,
        attn_out=torch.stack([got[f"blocks.{layer}.hook_attn_out"] for layer in range(n_layers)]),
        mlp_out=torch.stack(
            [got.get(f"blocks.{layer}.hook_mlp_out", torch.zeros(cfg.d_model, dtype=torch.float64)) for layer in range(n_layers)]
        ),
        attn_out_scale=torch.tensor([scale(f"blocks.{layer}.{post}.hook_scale") for layer in range(n_layers)], dtype=torch.float64),
        final_scale=scale("ln_final.hook_scale"),
        resid_final=got[f"blocks.{n_layers - 1}.hook_resid_post"],
        label_logits=got["unembed.hook_out"],
        output_label_logits=output_label_logits,
    )
