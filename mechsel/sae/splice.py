"""The downstream loss with an SAE's reconstruction spliced into the model ("CE loss recovered").

For a set of inputs the model's next-token cross-entropy is measured three times, on the same
batches:

* ``clean_loss``: the unmodified model;
* ``spliced_loss``: ``blocks.{L}.hook_{hook}`` replaced by the SAE's reconstruction
  ``sae.decode(sae.encode(x))``;
* ``ablated_loss``: the same activations replaced by a constant, the reference mean ``μ``
  (mean ablation; :class:`~mechsel.sae.reference.ActivationReference`).

``ce_loss_recovered = (ablated_loss - spliced_loss) / (ablated_loss - clean_loss)``: 1 when the
reconstruction is as good as the real activations for the model, 0 when it is no better than
the mean. Replacement happens only at the tokens the statistics summarise (the collector's
selection for the given :class:`~mechsel.collection.CollectConfig`: BOS and template tokens are
left as they are, as they were never in the SAE's training set); the loss is the mean over every
next-token prediction of the real (non-padding) tokens. Predictions before the first replaced
token are the same in all three runs, so they dilute the losses equally and leave
``ce_loss_recovered`` unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor

from mechsel.errors import ConfigError

__all__ = ["SplicedLoss", "spliced_loss"]

Replacement = Literal["clean", "sae", "mean"]


@dataclass(frozen=True)
class SplicedLoss:
    """Next-token losses of one layer's SAE (nats per prediction)."""

    layer: int
    """The layer whose hook was replaced."""
    clean_loss: float
    """Mean next-token cross-entropy of the unmodified model."""
    spliced_loss: float
    """The same with the SAE's reconstruction in place of the hook's output."""
    ablated_loss: float
    """The same with the reference mean in place of the hook's output (mean ablation)."""
    n_predictions: int
    """Next-token predictions averaged over."""
    n_replaced: int
    """Token positions whose activation was replaced."""

    @property
    def ce_loss_recovered(self) -> float:
        """``(ablated - spliced) / (ablated - clean)``; NaN when ablation does not change the loss."""
        gap = self.ablated_loss - self.clean_loss
        return (self.ablated_loss - self.spliced_loss) / gap if gap != 0 else float("nan")

    @property
    def ce_loss_increase(self) -> float:
        """``spliced - clean``: the loss the reconstruction costs."""
        return self.spliced_loss - self.clean_loss

    def to_dict(self) -> dict[str, float]:
        return {
            "clean_loss": self.clean_loss,
            "spliced_loss": self.spliced_loss,
            "ablated_loss": self.ablated_loss,
            "ce_loss_recovered": self.ce_loss_recovered,
            "ce_loss_increase": self.ce_loss_increase,
            "n_predictions": float(self.n_predictions),
            "n_replaced": float(self.n_replaced),
        }


_CHUNK = 512
"""Positions unembedded at a time: a 262k-token vocabulary (Gemma) makes full-batch logits tens of GB."""


def _token_losses(
    model: Any, resid: Float[Tensor, "batch pos d"], tokens: Tensor, attention_mask: Tensor, w_u_t: Tensor
) -> tuple[float, int]:
    """Summed next-token cross-entropy over real tokens, and the number of predictions.

    The logits are made a chunk of positions at a time by
    :func:`~mechsel.icl.kv.answer_logits` (final norm, unembedding, soft-cap, as the model's
    forward), so no ``[batch, pos, vocab]`` tensor is built."""
    from mechsel.icl.kv import answer_logits

    real = (attention_mask[:, 1:] > 0).to(resid.device)
    rows = resid[:, :-1][real]  # [n, d]: positions predicting a real next token
    targets = tokens[:, 1:].to(resid.device)[real]
    total = 0.0
    for start in range(0, rows.shape[0], _CHUNK):
        logp = torch.log_softmax(answer_logits(model, rows[start : start + _CHUNK], w_u_t).float(), dim=-1)
        total -= float(logp.gather(-1, targets[start : start + _CHUNK, None]).to(torch.float64).sum())
    return total, int(rows.shape[0])


@torch.no_grad()
def spliced_loss(
    model: Any, sae: Any, inputs: Sequence[Any], config: Any, *, layer: int, mean: Float[Tensor, " d"] | None = None
) -> SplicedLoss:
    """Clean, SAE-spliced and mean-ablated next-token loss of ``model`` on ``inputs`` (see the module docstring).

    Args:
        model: a TransformerLens ``HookedTransformer``.
        sae: a sae-lens SAE reading ``blocks.{layer}.hook_{config.hook}``.
        inputs: texts or segmented prompts.
        config: a :class:`~mechsel.collection.CollectConfig`: which tokens are replaced (mask,
            positions, BOS and template policy) and the batch size.
        layer: the SAE's layer.
        mean: the mean-ablation vector (default: the SAE's stored reference mean).
    """
    from mechsel.collection.run import resolve_hook
    from mechsel.collection.selected import selected_batches
    from mechsel.masks.hooks import strategy_hooks
    from mechsel.sae.reference import reference_of

    if mean is None:
        ref = reference_of(sae)
        if ref is None:
            raise ConfigError(
                "The SAE carries no activation reference for the mean ablation; pass mean=<[d_in] tensor> "
                "(e.g. collect_reference(...)[layer].mean_tensor()) or train the SAE with `mechsel train-sae`."
            )
        mean = ref.mean_tensor()
    if mean.shape != (sae.cfg.d_in,):
        raise ConfigError(f"mean has shape {tuple(mean.shape)}; the SAE's d_in is {sae.cfg.d_in}.")
    hook_name = f"blocks.{layer}.{resolve_hook(model, config.hook)}"
    _, batches = selected_batches(model, inputs, config)
    totals: dict[Replacement, float] = {"clean": 0.0, "sae": 0.0, "mean": 0.0}
    n_pred = n_replaced = 0
    device = model.cfg.device
    w_u_t = model.W_U.T.contiguous()  # once, not per chunk
    for batch in batches:
        select = batch.select.to(device)
        n_replaced += int(select.numel())
        for kind in totals:
            hooks = [] if kind == "clean" else [(hook_name, _replacer(kind, sae, select, mean))]
            masking = strategy_hooks(
                model,
                config.mask,
                batch.prompts,
                length=batch.tokens.shape[1],
                attention_mask=batch.attention_mask.to(device),
                layers=range(model.cfg.n_layers),
            )
            with masking, model.hooks(fwd_hooks=hooks):
                resid = model(batch.tokens.to(device), attention_mask=batch.attention_mask.to(device), stop_at_layer=model.cfg.n_layers)
                loss, n = _token_losses(model, resid, batch.tokens, batch.attention_mask, w_u_t)
            totals[kind] += loss
        n_pred += n
    return SplicedLoss(layer, totals["clean"] / n_pred, totals["sae"] / n_pred, totals["mean"] / n_pred, n_pred, n_replaced)


def _replacer(kind: Replacement, sae: Any, select: Tensor, mean: Tensor) -> Any:
    def replace(acts: Tensor, hook: Any) -> Tensor:
        flat = acts.flatten(0, 1)
        x = flat.index_select(0, select)
        if kind == "sae":
            new = sae.decode(sae.encode(x.to(sae.device, sae.dtype)))
        else:
            new = mean.to(x.device)[None].expand_as(x)
        flat = flat.index_copy(0, select, new.to(flat.device, flat.dtype))
        return flat.reshape(acts.shape)

    return replace
