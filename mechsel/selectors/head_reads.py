"""Reading a model for the relational selectors: texts as task examples, one pass read at each
row's last token, and a head's query / key vectors.

Every text is encoded on its own, with BOS (explicit: :func:`bos_id`). Batches are right-padded
with an explicit attention mask (:func:`mechsel.icl.kv.pad_batch`), so real tokens keep
positions ``0..n-1`` and never attend to padding; hooks are attached only by the caller's
context manager (``model.hooks`` / :func:`mechsel.heads.record_head_outputs`), which removes
them on exit, and read only the last real token of each row.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal

import torch
from jaxtyping import Float
from torch import Tensor
from transformer_lens import HookedTransformer

from mechsel.collection.stream import pad_token_id
from mechsel.errors import ConfigError, DataError
from mechsel.icl.kv import model_device, pad_batch
from mechsel.tasks import Example, TaskConfig

__all__ = ["task_examples", "bos_id", "run_last_token", "qk_vectors"]


def task_examples(task: TaskConfig, texts: Sequence[str], ids: Sequence[Any], labels: Sequence[Any] | None, split: str) -> list[Example]:
    """Task examples from pool/query texts (``Example.text()`` joins the input fields with newlines)."""
    fields = task.input_fields
    out = []
    for i, (text, id_) in enumerate(zip(texts, ids)):
        parts = [text] if len(fields) == 1 else text.split("\n")
        if len(parts) != len(fields):
            raise DataError(
                f"Task {task.name!r} has {len(fields)} input fields {list(fields)}, but {split} text {i} splits into {len(parts)} "
                f"lines; its texts must be Example.text() (the fields joined by newlines, none of them containing one)."
            )
        label = None
        if labels is not None:
            value = labels[i]
            if value is None or not 0 <= int(value) < task.n_labels:
                raise DataError(
                    f"{split.capitalize()} example {id_!r} has label {value!r}; task {task.name!r} needs a label in 0..{task.n_labels - 1} "
                    f"for every demonstration (pass Pool(..., labels=...) with the gold labels)."
                )
            label = int(value)
        out.append(Example(id=id_, inputs=dict(zip(fields, parts)), label=label, split=split))
    return out


def bos_id(model: HookedTransformer, owner: str) -> int:
    """The tokenizer's BOS id (every text is read as ``BOS`` + text), or a ConfigError naming ``owner``."""
    bos = getattr(model.tokenizer, "bos_token_id", None)
    if not isinstance(bos, int):
        raise ConfigError(f"{owner} encodes every text as BOS + text, but the model's tokenizer has no bos_token_id; attach one.")
    return bos


@torch.inference_mode()
def run_last_token(
    model: HookedTransformer, rows: Sequence[tuple[int, ...]], recorder: Callable[[Tensor], AbstractContextManager[Any]], stop: int
) -> None:
    """One forward pass over ``rows`` (right-padded, explicit attention mask, so every real token
    keeps positions ``0..n-1`` and never sees padding), inside ``recorder(last)``, the context
    manager that attaches the hooks reading each row's last token ``last[b]``; stops before block ``stop``."""
    too_long = [len(r) for r in rows if len(r) > model.cfg.n_ctx]
    if too_long:
        raise DataError(
            f"A text encodes to {max(too_long)} tokens, over the model's n_ctx={model.cfg.n_ctx}; drop or shorten such examples."
        )
    tokens, mask, _ = pad_batch(rows, "right", pad_id=pad_token_id(model), device=model_device(model))
    with recorder(mask.sum(-1) - 1):
        model(tokens, attention_mask=mask, stop_at_layer=stop)


@torch.inference_mode()
def qk_vectors(
    model: HookedTransformer, layer: int, head: int, resid: Float[Tensor, "n d_model"], which: Literal["q", "k"]
) -> Float[Tensor, "n d_head"]:
    """Head ``(layer, head)``'s query (``q``) or key (``k``) vector for residual-stream inputs ``resid``.

    As the model computes them: the block's ``ln1`` as it applies it, then ``W_Q, b_Q`` (or
    ``W_K, b_K``; a grouped-query key head is shared by its query heads), then the per-head
    q/k RMS norm when the model has one. Rotary position is not applied (the vectors come from
    different sequences, so no relative position exists). Float32, on the CPU.
    """
    block = model.blocks[layer]
    attn = block.attn
    if getattr(attn, "q_norm", None) is not None and not model.cfg.use_qk_norm:
        raise ConfigError(f"{model.cfg.original_architecture} applies q/k norms across heads; qk_affinity supports per-head norms only.")
    if model.cfg.clip_qkv is not None:
        raise ConfigError("qk_affinity does not support models that clip q/k/v (cfg.clip_qkv).")
    device, dtype = model_device(model), attn.W_Q.dtype
    x = block.ln1(resid.to(device, dtype)[:, None, :])[:, 0]
    W, b = (attn.W_Q, attn.b_Q) if which == "q" else (attn.W_K, attn.b_K)
    v = x @ W[head] + b[head]
    if model.cfg.use_qk_norm:
        norm = attn.q_norm if which == "q" else attn.k_norm
        assert norm is not None  # TransformerLens builds both norms when cfg.use_qk_norm is set
        v = norm(v)
    return v.float().cpu()
