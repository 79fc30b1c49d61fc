"""Loading TransformerLens models with an explicit, recorded weight-processing choice."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from transformer_lens import HookedTransformer

from mechsel.errors import ConfigError
from mechsel.models.embedded import EMBEDDED_MODEL, EMBEDDED_SOURCE, embedded_hf_folder
from mechsel.models.layout import transpose_friendly_layout
from mechsel.provenance import Provenance

__all__ = ["WeightProcessing", "ModelInfo", "load_model", "resolve_device", "model_info", "model_provenance", "weight_fingerprint"]

logger = logging.getLogger(__name__)

WeightProcessing = Literal["none", "default"]
"""``none``: weights exactly as published, so ``hook_mlp_out`` equals the MLP-block output that
``transformers`` computes. ``default``: TransformerLens's ``from_pretrained`` processing
(fold LayerNorm, centre writing weights and unembedding, fold value biases), which among other
things shifts the mean of ``hook_mlp_out``."""
WEIGHT_PROCESSING: tuple[str, ...] = get_args(WeightProcessing)
Source = Literal["auto", "embedded", "hub"]
DTypeName = Literal["float32", "bfloat16", "float16", "float64"]
"""Dtypes a model can run in (the keys of :data:`DTYPES`)."""
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


@dataclass(frozen=True)
class ModelInfo:
    """What was loaded; attached to the model as ``model.mechsel_info``."""

    name: str
    """TransformerLens model name."""
    weight_processing: str
    """One of :data:`WeightProcessing`."""
    source: str
    """Where the weights came from (hub, embedded GGUF, random init)."""
    weight_hash: str
    """:func:`weight_fingerprint` of the loaded weights."""
    dtype: str
    """Parameter dtype."""


def weight_fingerprint(model: torch.nn.Module, samples_per_tensor: int = 4096) -> str:
    """A cheap fingerprint of a model's weights: names, shapes and a strided sample of each tensor.

    Hashing every byte of a 3B model takes minutes; a strided sample of every parameter tells
    apart any two checkpoints met in practice (different training, quantisation or processing).
    """
    h = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // samples_per_tensor)
        sample = flat[::step][:samples_per_tensor].to("cpu", torch.float32).contiguous()
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(sample.numpy().tobytes())
    return h.hexdigest()[:16]


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise ConfigError(f"Unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}.")
    return DTYPES[dtype]


def resolve_device(device: str | torch.device | None) -> str:
    """``device`` as a string; ``None`` means CUDA when available, else CPU."""
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    return str(device)


def load_model(
    name: str = EMBEDDED_MODEL,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype = "float32",
    weight_processing: WeightProcessing = "none",
    source: Source = "auto",
    cache: str | os.PathLike[str] | None = None,
) -> HookedTransformer:
    """Load a TransformerLens ``HookedTransformer`` and record how it was loaded.

    Args:
        name: any TransformerLens model name (``"gpt2"``, ``"Qwen/Qwen2.5-3B"``,
            ``"meta-llama/Llama-3.2-3B"``, ...). The default, ``"google/gemma-3-270m"``, loads
            offline from the embedded GGUF package (see :mod:`mechsel.models.embedded`).
        device: ``"cpu"``, ``"cuda"``, ...; ``None`` picks CUDA when available, else CPU.
        dtype: parameter dtype (``"float32"``, ``"bfloat16"``, ``"float16"``, ``"float64"``).
        weight_processing: ``"none"`` (default; activations match ``transformers``) or
            ``"default"`` (TransformerLens's folding and centring). Recorded in provenance.
        source: ``"auto"`` uses the embedded weights for the embedded model name and the hub
            otherwise; ``"embedded"`` insists on the embedded weights; ``"hub"`` always downloads.
        cache: cache directory override (default :func:`mechsel.paths.cache_dir`).

    Returns:
        The model, with ``model.mechsel_info`` (a :class:`ModelInfo`) attached.
    """
    if weight_processing not in WEIGHT_PROCESSING:
        raise ConfigError(
            f"weight_processing must be one of {WEIGHT_PROCESSING}, got {weight_processing!r}. "
            f"Use 'none' to keep hook_mlp_out equal to the transformers MLP output."
        )
    if source not in get_args(Source):
        raise ConfigError(f"source must be one of {get_args(Source)}, got {source!r}.")
    torch_dtype = _resolve_dtype(dtype)
    if torch_dtype == torch.float16 and "gemma-3" in name.lower():
        raise ConfigError(
            f"dtype 'float16' is refused for {name!r}: Gemma 3's residual stream grows past float16's largest "
            f"value (65,504) and overflows to inf. Use dtype 'bfloat16' (same memory, float32's range) on a GPU, "
            f"or 'float32'."
        )
    device = resolve_device(device)
    use_embedded = source == "embedded" or (source == "auto" and name == EMBEDDED_MODEL)
    if use_embedded and name != EMBEDDED_MODEL:
        raise ConfigError(f"Only {EMBEDDED_MODEL!r} is embedded; load {name!r} with source='hub' (needs network).")

    loader = HookedTransformer.from_pretrained_no_processing if weight_processing == "none" else HookedTransformer.from_pretrained
    kwargs: dict = {"device": device, "dtype": torch_dtype}
    if use_embedded:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        folder = embedded_hf_folder(cache)
        hf_model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        kwargs.update(hf_model=hf_model, tokenizer=tokenizer)
        src = EMBEDDED_SOURCE
    else:
        src = "hub"
    try:
        model = loader(name, **kwargs)
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"Could not load {name!r} ({type(err).__name__}: {err}). Check the name against "
            f"transformer_lens.loading.OFFICIAL_MODEL_NAMES and that the hub is reachable; offline, "
            f"only the embedded {EMBEDDED_MODEL!r} is available."
        ) from err
    model.eval()
    transpose_friendly_layout(model)  # bit-identical outputs, no per-forward weight copies
    # torch types Module attributes as tensors or modules; any object can be stored.
    model.mechsel_info = ModelInfo(  # pyright: ignore[reportArgumentType]
        name=name,
        weight_processing=weight_processing,
        source=src,
        weight_hash=weight_fingerprint(model),
        dtype=str(torch_dtype).removeprefix("torch."),
    )
    return model


def model_info(model: HookedTransformer) -> ModelInfo:
    """The :class:`ModelInfo` of a model loaded by mechsel; other models are described as best we can."""
    info = getattr(model, "mechsel_info", None)
    if info is None:
        info = ModelInfo(
            name=model.cfg.model_name,
            weight_processing="unknown (not loaded by mechsel.load_model)",
            source="unknown",
            weight_hash=weight_fingerprint(model),
            dtype=str(model.cfg.dtype).removeprefix("torch."),
        )
        model.mechsel_info = info  # pyright: ignore[reportArgumentType]  (torch types Module attributes as tensors or modules)
    return info


def model_provenance(model: HookedTransformer, **fields: object) -> Provenance:
    """A :class:`~mechsel.provenance.Provenance` for ``model``; ``fields`` fill the remaining fields."""
    info = model_info(model)
    extra: dict[str, Any] = dict(fields.pop("extra", {}) or {})  # type: ignore[arg-type]
    extra.setdefault("source", info.source)
    return Provenance(
        model_name=info.name,
        weight_hash=info.weight_hash,
        weight_processing=info.weight_processing,
        dtype=info.dtype,
        extra=extra,
        **fields,  # type: ignore[arg-type]
    )
