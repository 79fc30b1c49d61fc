"""A TopK training SAE whose training step touches only the selected latents.

sae-lens's ``TopKTrainingSAE`` decodes with a dense ``[batch, d_sae]`` activation matrix, so a
step costs about three dense ``batch × d_sae × d_in`` matrix products forward and as many
backward. On a CPU that dominates SAE training. :class:`SparseTopKTrainingSAE` is the same
module (same parameters, config, initialisation, saving and inference behaviour; it *is* a
``TopKTrainingSAE``) with one method replaced: :meth:`training_forward_pass`

1. computes the dense pre-activations once without autograd, only to choose the top-k latents
   of each token (and the top ``k_aux`` dead latents for the auxiliary loss);
2. back-propagates through the chosen latents only: encoder gradients by a sparse
   ``[d_sae, batch]`` × ``[batch, d_in]`` product, decoding with ``embedding_bag`` over the
   chosen decoder rows (``batch × k × d_in`` work instead of ``batch × d_sae × d_in``);
3. computes the auxiliary loss on the dead latents' columns only.

The loss and every parameter gradient equal sae-lens's dense computation (the top-k mask has
zero gradient off the selected latents); ``tests/unit/test_sae_training.py`` checks this
against ``TopKTrainingSAE.training_forward_pass`` itself. Feature activations are returned as a
sparse COO tensor, which ``sae_lens.SAETrainer`` accepts (its dead-latent bookkeeping is the
same as with ``use_sparse_activations=True``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from sae_lens import TopKTrainingSAE
from sae_lens.saes.sae import TrainStepInput, TrainStepOutput

__all__ = ["SparseTopKTrainingSAE"]


class _SelectedProjection(torch.autograd.Function):
    """``out[b, j] = sae_in[b] · W_enc[:, idx[b, j]]`` with sparse backward passes.

    The forward value is passed in (already computed by the dense no-grad encoding); the
    backward pass costs ``batch × k × d_in`` instead of ``batch × d_sae × d_in``.
    """

    @staticmethod
    def forward(ctx: Any, sae_in: torch.Tensor, w_enc: torch.Tensor, idx: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(sae_in, w_enc, idx)
        return value

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        sae_in, w_enc, idx = ctx.saved_tensors
        grad_in = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_in = F.embedding_bag(idx, w_enc.T.contiguous(), per_sample_weights=grad.contiguous(), mode="sum")
        if ctx.needs_input_grad[1]:
            batch, k = idx.shape
            rows = torch.arange(batch, device=idx.device).repeat_interleave(k)
            picks = torch.sparse_coo_tensor(torch.stack([idx.reshape(-1), rows]), grad.reshape(-1), (w_enc.shape[1], batch))
            grad_w = torch.sparse.mm(picks, sae_in).T
        return grad_in, grad_w, None, None


class SparseTopKTrainingSAE(TopKTrainingSAE):
    """``TopKTrainingSAE`` with a sparse training step (see the module docstring)."""

    def training_forward_pass(self, step_input: TrainStepInput) -> TrainStepOutput:
        x = step_input.sae_in
        rescale = self.cfg.rescale_acts_by_decoder_norm
        sae_in = self.process_sae_in(x)
        dec_norms = self.W_dec.norm(dim=-1)
        with torch.no_grad():
            projection = sae_in @ self.W_enc
            hidden_pre = projection + self.b_enc
            if rescale:
                hidden_pre = hidden_pre * dec_norms
            idx = hidden_pre.topk(self.cfg.k, dim=-1, sorted=False).indices
        pre = _SelectedProjection.apply(sae_in, self.W_enc, idx, projection.gather(1, idx)) + self.b_enc[idx]
        if rescale:
            norms = dec_norms[idx]
            acts = (pre * norms).relu()
            coef = acts / norms
        else:
            acts = pre.relu()
            coef = acts
        recon = F.embedding_bag(idx, self.W_dec, per_sample_weights=coef, mode="sum") + self.b_dec
        sae_out = self.run_time_activation_norm_fn_out(recon)
        mse_loss = self.mse_loss_fn(sae_out, x).sum(dim=-1).mean()
        aux = self._sparse_aux_loss(x, sae_in, sae_out, hidden_pre, dec_norms, step_input.dead_neuron_mask)
        rows = torch.arange(x.shape[0], device=x.device).repeat_interleave(self.cfg.k)
        with torch.sparse.check_sparse_tensor_invariants(enable=False):
            feature_acts = torch.sparse_coo_tensor(
                torch.stack([rows, idx.reshape(-1)]), acts.detach().reshape(-1), (x.shape[0], self.cfg.d_sae)
            ).coalesce()
        return TrainStepOutput(
            sae_in=x,
            sae_out=sae_out,
            feature_acts=feature_acts,
            hidden_pre=hidden_pre,
            loss=mse_loss + aux,
            losses={"mse_loss": mse_loss, "auxiliary_reconstruction_loss": aux},
        )

    def _sparse_aux_loss(
        self,
        x: torch.Tensor,
        sae_in: torch.Tensor,
        sae_out: torch.Tensor,
        hidden_pre: torch.Tensor,
        dec_norms: torch.Tensor,
        dead: Any,
    ) -> torch.Tensor:
        """sae-lens's TopK auxiliary loss, evaluated on the dead latents' columns only."""
        if dead is None or (n_dead := int(dead.sum())) == 0:
            return sae_out.new_tensor(0.0)
        if self.cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
            raise ValueError("TopK auxiliary loss does not support constant_norm_rescale or layer_norm normalisation.")
        k_aux = x.shape[-1] // 2
        scale = min(n_dead / k_aux, 1.0)
        k_aux = min(k_aux, n_dead)
        cols = torch.nonzero(dead, as_tuple=True)[0]
        with torch.no_grad():
            local = hidden_pre.index_select(1, cols).topk(k_aux, dim=-1, sorted=False).indices
        pre = sae_in @ self.W_enc.index_select(1, cols) + self.b_enc.index_select(0, cols)
        if self.cfg.rescale_acts_by_decoder_norm:
            norms = dec_norms.index_select(0, cols)
            pre = pre * norms
        values = torch.zeros_like(pre).scatter(-1, local, pre.gather(-1, local))
        if self.cfg.rescale_acts_by_decoder_norm:
            values = values / norms
        residual = (x - sae_out).detach()
        loss = (values @ self.W_dec.index_select(0, cols) - residual).pow(2).sum(dim=-1).mean()
        return self.cfg.aux_loss_coefficient * scale * loss
