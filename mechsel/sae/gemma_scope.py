"""Offline loading of a Gemma Scope 2 SAE folder in its published layout.

Gemma Scope 2 (``google/gemma-scope-2-<size>-<pt|it>`` on the Hugging Face hub) publishes one
folder per SAE, ``<site>/layer_<L>_width_<W>_l0_<…>/``, holding ``params.safetensors`` and, in
most folders, a small ``config.json``. The SAEs are JumpReLU:

* ``params.safetensors``: ``w_enc`` ``[d_in, d_sae]``, ``w_dec`` ``[d_sae, d_in]``, ``b_enc``
  ``[d_sae]``, ``b_dec`` ``[d_in]``, ``threshold`` ``[d_sae]``; latents are
  ``relu(x·w_enc + b_enc)`` where the pre-activation exceeds ``threshold``, else 0;
* ``config.json`` (optional): ``architecture: "jump_relu"``, ``model_name`` and the Hugging Face
  module the SAE reads (``hf_hook_point_in``).

``<site>`` is ``mlp_out`` or ``resid_post`` (``attn_out`` SAEs read the per-head attention
output before ``o_proj``, not a block hook, and are refused); the layer comes from the folder name.
sae-lens's own loader reads tensor shapes over HTTP even when the files are on disk; this one
reads only the folder. The SAE reads ``blocks.<L>.hook_<site>`` of a model loaded without weight
processing (Gemma Scope trains on the published weights), with BOS prepended, and inputs are not
normalised. Transcoders and cross-layer transcoders (``transcoder``/``clt`` folders) are refused.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

from mechsel.errors import ConfigError, DataError

__all__ = ["GEMMA_SCOPE_FILES", "is_gemma_scope_folder", "load_gemma_scope_folder"]

GEMMA_SCOPE_FILES = ("params.safetensors",)
"""The file every Gemma Scope 2 SAE folder holds (``config.json`` is optional)."""
_KEYS = ("w_enc", "w_dec", "b_enc", "b_dec", "threshold")
_SITES = {"mlp_out": "hook_mlp_out", "resid_post": "hook_resid_post"}
_REPO = re.compile(r"gemma-scope-2-(\d+[mb])-(pt|it)")


def is_gemma_scope_folder(folder: Path) -> bool:
    """A folder in Gemma Scope's layout (``params.safetensors``, no sae-lens ``cfg.json``)."""
    return (folder / GEMMA_SCOPE_FILES[0]).is_file() and not (folder / "cfg.json").is_file()


def _site_and_layer(folder: Path) -> tuple[str, int]:
    match = re.search(r"layer_(\d+)", folder.name)
    if match is None:
        raise DataError(f"{folder}: a Gemma Scope folder is named layer_<L>_width_<W>_l0_<…>; cannot read the layer from {folder.name!r}.")
    parts = [p.lower() for p in folder.resolve().parts]
    if any("transcoder" in p or "clt" in p or "attn_out" in p for p in parts[-2:]):
        raise ConfigError(
            f"{folder} holds a Gemma Scope transcoder or attention-output SAE; mechsel reads SAEs on one block hook: "
            f"use an {' or '.join(_SITES)} folder."
        )
    for part in reversed(parts[:-1]):
        for site in _SITES:
            if site in part:
                return site, int(match.group(1))
    raise DataError(
        f"{folder}: cannot tell which hook the SAE reads. Keep the published layout, <site>/{folder.name} with <site> one of "
        f"{', '.join(_SITES)} (e.g. mlp_out/{folder.name})."
    )


def _model_name(folder: Path, raw: dict[str, Any]) -> str:
    """The TransformerLens name of the SAE's model: from ``config.json``, else the release folder."""
    name = str(raw.get("model_name") or "")
    if not name:
        found = next((m for p in folder.resolve().parts if (m := _REPO.search(p))), None)
        if found is None:
            raise DataError(
                f"{folder}: neither a config.json with model_name nor a gemma-scope-2-<size>-<pt|it> folder above it names "
                f"the SAE's model. Keep the release folder name (e.g. gemma-scope-2-270m-pt/mlp_out/...) or add config.json."
            )
        name = f"google/gemma-3-{found.group(1)}-{found.group(2)}"
    name = f"google/{name}" if name.startswith("gemma") else name
    name = name.replace("-v3", "-3")
    if "270m" in name:  # the 270M base model is published without the -pt suffix
        name = name.replace("-pt", "")
    return name


def load_gemma_scope_folder(folder: Path, *, device: str = "cpu", dtype: str = "float32") -> Any:
    """The JumpReLU SAE of a Gemma Scope 2 folder, as a ``sae_lens`` SAE (no network)."""
    from sae_lens import SAE
    from safetensors import SafetensorError, safe_open

    from mechsel.models.loading import DTYPES

    weights = folder / GEMMA_SCOPE_FILES[0]
    raw: dict[str, Any] = {}
    if (folder / "config.json").is_file():
        try:
            raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise DataError(f"{folder / 'config.json'} is not valid JSON ({err}); copy the folder again from its release.") from None
        if raw.get("architecture", "jump_relu") != "jump_relu":
            raise ConfigError(f"{folder / 'config.json'} describes a {raw.get('architecture')!r} SAE; Gemma Scope SAEs are jump_relu.")
    site, layer = _site_and_layer(folder)
    try:
        with safe_open(str(weights), framework="pt", device="cpu") as fh:
            missing = [k for k in _KEYS if k not in fh.keys()]  # noqa: SIM118 (safe_open has keys(), not __contains__)
            if missing:
                raise DataError(f"{weights} lacks {missing}; a Gemma Scope JumpReLU SAE holds {', '.join(_KEYS)}.")
            tensors = {k: fh.get_tensor(k) for k in _KEYS}
    except SafetensorError as err:
        raise DataError(f"{weights} cannot be read ({err}); the file is damaged or truncated. Copy it again from its release.") from None
    d_in, d_sae = (int(x) for x in tensors["w_enc"].shape)
    expected = {"w_dec": (d_sae, d_in), "b_enc": (d_sae,), "b_dec": (d_in,), "threshold": (d_sae,)}
    bad = {k: tuple(tensors[k].shape) for k, shape in expected.items() if tuple(tensors[k].shape) != shape}
    if bad:
        raise DataError(f"{weights}: w_enc is [{d_in}, {d_sae}] but {bad} do not match it (expected {expected}); the file is not one SAE.")
    cfg = {
        "architecture": "jumprelu",
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": dtype,
        "device": device,
        "apply_b_dec_to_input": False,
        "normalize_activations": "none",
        "reshape_activations": "none",
        "metadata": {
            "model_name": _model_name(folder, raw),
            "hook_name": f"blocks.{layer}.{_SITES[site]}",
            "hook_head_index": None,
            "prepend_bos": True,
            "model_from_pretrained_kwargs": {"center_writing_weights": False},
            "sae_lens_training_version": None,
        },
    }
    config_cls = SAE.get_sae_config_class_for_architecture("jumprelu")
    sae_cfg = config_cls.from_dict(cfg)
    with warnings.catch_warnings():  # sae-lens asks to load the model with these kwargs: mechsel checks them itself
        warnings.simplefilter("ignore", UserWarning)
        sae_class: Any = SAE.get_sae_class_for_architecture(sae_cfg.architecture())  # JumpReLUSAE
        sae = sae_class(sae_cfg)
    state = {"W_enc": tensors["w_enc"], "W_dec": tensors["w_dec"], "b_enc": tensors["b_enc"], "b_dec": tensors["b_dec"]}
    state["threshold"] = tensors["threshold"]
    sae.process_state_dict_for_loading(state)
    torch_dtype = DTYPES[dtype] if dtype in DTYPES else None
    if torch_dtype is None:
        raise ConfigError(f"Unknown dtype {dtype!r}; choose one of {sorted(DTYPES)}.")
    sae.load_state_dict({k: v.to(device=device, dtype=torch_dtype) for k, v in state.items()})
    return sae
