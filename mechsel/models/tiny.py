"""Tiny random models for unit tests: real TransformerLens architectures, seconds to build."""

from __future__ import annotations

from typing import Any, Literal

import torch
from transformer_lens import HookedTransformer, HookedTransformerConfig

from mechsel.models.loading import ModelInfo, weight_fingerprint

__all__ = ["tiny_model", "CharTokenizer"]


class CharTokenizer:
    """A minimal tokenizer for tiny models: one token per character (ids 3..), BOS=1, PAD=0, EOS=2.

    Implements the subset of the Hugging Face tokenizer interface mechsel uses.
    """

    pad_token_id = 0
    bos_token_id = 1
    eos_token_id = 2
    padding_side = "right"

    def __init__(self, vocab_size: int = 259) -> None:
        self.vocab_size = vocab_size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        ids = [3 + (ord(c) % (self.vocab_size - 3)) for c in text]
        return ([self.bos_token_id] if add_special_tokens else []) + ids

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return "".join(chr(i - 3) for i in ids if i >= 3)


def tiny_model(
    *,
    n_layers: int = 2,
    d_model: int = 32,
    n_heads: int = 4,
    d_mlp: int = 64,
    d_vocab: int = 259,
    n_ctx: int = 128,
    positional_embedding_type: Literal["rotary", "standard"] = "rotary",
    normalization_type: Literal["RMS", "LN"] = "RMS",
    act_fn: str = "gelu",
    seed: int = 0,
    **cfg_overrides: Any,
) -> HookedTransformer:
    """A randomly initialised ``HookedTransformer`` with a :class:`CharTokenizer` attached.

    ``model.mechsel_info`` is set (name ``"tiny-random"``, processing ``"none"``) so provenance
    works exactly as for real models.
    """
    cfg = HookedTransformerConfig(
        n_layers=n_layers,
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=d_mlp,
        d_vocab=d_vocab,
        n_ctx=n_ctx,
        act_fn=act_fn,
        normalization_type=normalization_type,
        positional_embedding_type=positional_embedding_type,
        seed=seed,
        default_prepend_bos=True,
        **cfg_overrides,
    )
    torch.manual_seed(seed)
    model = HookedTransformer(cfg)
    model.tokenizer = CharTokenizer(d_vocab)  # pyright: ignore[reportAttributeAccessIssue]  (a duck-typed tokenizer)
    model.eval()
    # torch types Module attributes as tensors or modules; any object can be stored.
    model.mechsel_info = ModelInfo(  # pyright: ignore[reportArgumentType]
        name="tiny-random",
        weight_processing="none",
        source=f"random init seed={seed}",
        weight_hash=weight_fingerprint(model),
        dtype="float32",
    )
    return model
