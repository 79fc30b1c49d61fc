"""Loading SAEs (pretrained releases or local sae-lens folders) and checking they fit a model.

Two sources, both through sae-lens:

* **pretrained releases** (online): ``load_sae("gemma-scope-2-270m-pt-mlp", "layer_12_width_16k_l0_small")``.
  Release and id are checked first against sae-lens's pretrained directory, which ships inside
  the package, so a typo is reported (with near matches) without touching the network.
* **local folders** (offline): ``load_sae(path=".../layer_6")``, any folder in sae-lens's on-disk
  format (``cfg.json`` + ``sae_weights.safetensors``), e.g. one written by
  :func:`mechsel.sae.train_sae` or by ``sae.save_model(path)``, or a copy of a Gemma Scope 2
  folder in its published layout (``params.safetensors``; :mod:`mechsel.sae.gemma_scope`), read
  without any network call.

:func:`check_sae_matches` refuses an SAE trained on another hook, layer width, model or weight
processing than the activations it would read.

**Weight processing.** sae-lens loads the model it trains on with
``HookedTransformer.from_pretrained_no_processing(name, **model_from_pretrained_kwargs)``, and
records those keyword arguments in the SAE's metadata. Of TransformerLens's processing steps only
``center_writing_weights`` changes the values at block hooks (``hook_mlp_out``, ``hook_resid_*``,
``hook_attn_out``); folding LayerNorm, centring the unembedding and folding value biases leave
them unchanged. So an SAE expects mechsel's ``weight_processing="default"`` when its kwargs set
``center_writing_weights``, and ``"none"`` otherwise. SAEs trained by mechsel record the setting
itself (``metadata.mechsel``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError

__all__ = [
    "load_sae",
    "load_saes",
    "check_sae_matches",
    "sae_layer",
    "sae_weight_processing",
    "pretrained_releases",
    "pretrained_sae_ids",
    "SAE_FILES",
]

logger = logging.getLogger(__name__)

SAE_FILES = ("cfg.json", "sae_weights.safetensors")
"""The files of a folder in sae-lens's on-disk format."""

_HOOK_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")


def pretrained_releases(model: str | None = None) -> list[str]:
    """Release names in sae-lens's pretrained directory (offline), optionally for one model."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    return sorted(r for r, info in directory.items() if model is None or info.model == model)


def pretrained_sae_ids(release: str) -> list[str]:
    """SAE ids of one pretrained release; an unknown release lists near matches."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release not in directory:
        raise _unknown_release(release, sorted(directory))
    return list(directory[release].saes_map)


def _unknown_release(release: str, releases: list[str], spec: str | None = None) -> ConfigError:
    folder = f" If {spec!r} is meant as a local SAE folder: no such folder exists (checked from {os.getcwd()})." if spec else ""
    return ConfigError(
        f"Unknown SAE release {release!r}.{_near(release, releases)} sae-lens knows {len(releases)} "
        f"releases; list them with mechsel.sae.pretrained_releases() (or pretrained_releases(model='gpt2')), "
        f"or load a local folder with load_sae(path=...).{folder}"
    )


def _looks_like_path(release: str) -> bool:
    """Whether a would-be release name is a path: a release name has no separators and no leading dot or tilde."""
    return not release or release.startswith((".", "~")) or any(sep in release for sep in ("/", "\\", os.sep)) or Path(release).is_dir()


def _near(name: str, options: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, options, n=5, cutoff=0.6)
    if not close:
        close = [o for o in options if name.lower() in o.lower()][:5]
    return f" Near matches: {', '.join(repr(c) for c in close)}." if close else ""


def load_sae(
    release: str | None = None,
    sae_id: str | None = None,
    *,
    path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
) -> Any:
    """Load one SAE: a pretrained sae-lens release (online) or a local sae-lens folder (offline).

    Args:
        release: pretrained release name, e.g. ``"gemma-scope-2-270m-pt-mlp"`` or
            ``"gpt2-small-res-jb"``; see :func:`pretrained_releases`.
        sae_id: the SAE's id inside the release; see :func:`pretrained_sae_ids`.
        path: a folder holding ``cfg.json`` and ``sae_weights.safetensors``, or a Gemma Scope 2
            folder (``.../gemma-scope-2-270m-pt/mlp_out/layer_6_width_16k_l0_small``), instead of a release.
        device: where to put the SAE.
        dtype: parameter dtype.

    Returns:
        A ``sae_lens.SAE`` (e.g. ``TopKSAE``, ``StandardSAE``, ``JumpReLUSAE``) in eval mode.

    Raises:
        ConfigError: neither or both of release/path given; unknown release or id (near matches listed).
        DataError: the folder is missing (also when given where a release is expected, e.g. in
            an experiment config) or not in sae-lens format; ``cfg.json`` or the weights are damaged
            or truncated (the message names the file); the download failed.
    """
    from sae_lens import SAE

    if (release is None) == (path is None):
        raise ConfigError(
            "Pass either a pretrained release and sae_id (load_sae('gpt2-small-res-jb', 'blocks.8.hook_resid_pre')) "
            "or a local folder (load_sae(path='.../layer_6')), not both and not neither."
        )
    if path is not None:
        from mechsel.sae.gemma_scope import is_gemma_scope_folder, load_gemma_scope_folder

        if is_gemma_scope_folder(Path(path)):
            return load_gemma_scope_folder(Path(path), device=str(device), dtype=dtype).eval()
        return _load_folder(_check_folder(Path(path)), device=str(device), dtype=dtype).eval()
    assert release is not None  # exactly one of release and path is given (checked above)
    _check_release(release, sae_id)
    if sae_id is None:
        raise ConfigError(f"Pass sae_id= with release {release!r}; its ids include {pretrained_sae_ids(release)[:5]}.")
    ids = pretrained_sae_ids(release)
    if sae_id not in ids:
        raise ConfigError(
            f"Release {release!r} has no SAE {sae_id!r}.{_near(sae_id, ids)} It has {len(ids)} SAEs; "
            f"list them with mechsel.sae.pretrained_sae_ids({release!r})."
        )
    try:
        sae = SAE.from_pretrained(release, sae_id, device=str(device), dtype=dtype)
    except (OSError, ValueError, RuntimeError) as err:
        raise DataError(
            f"Could not download SAE {sae_id!r} of release {release!r} ({type(err).__name__}: {err}). Pretrained "
            f"SAEs come from the Hugging Face hub, which needs network access. Offline, load a copy saved with "
            f"sae.save_model(folder) via load_sae(path=folder), or train one with mechsel.sae.train_sae."
        ) from err
    return sae.eval()


def _check_release(release: str, sae_id: str | None) -> None:
    """Refuse an unknown release; one that is a path to a folder that does not exist says so."""
    from sae_lens.loading.pretrained_saes_directory import get_pretrained_saes_directory

    directory = get_pretrained_saes_directory()
    if release in directory:
        return
    spec = f"{release}/{sae_id}" if sae_id else release
    if _looks_like_path(release):
        raise DataError(
            f"The SAE folder {spec} does not exist (checked from {os.getcwd()}). Pass the folder that holds "
            f"{' and '.join(SAE_FILES)}, written by sae.save_model(folder) or mechsel train-sae; a pretrained SAE "
            f"is named '<release>/<sae_id>' instead, e.g. 'gpt2-small-res-jb/blocks.8.hook_resid_pre'."
        )
    raise _unknown_release(release, sorted(directory), spec)


def _load_folder(folder: Path, *, device: str, dtype: str) -> Any:
    """``SAE.load_from_disk`` with damaged files reported by name."""
    from sae_lens import SAE
    from safetensors import SafetensorError

    cfg_file, weights_file = (folder / name for name in SAE_FILES)
    resave = "Copy the SAE folder again from its source, or re-save the SAE with sae.save_model(folder)."
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{cfg_file} is not valid JSON ({err}); the file is damaged or truncated. {resave}") from None
    if not isinstance(cfg, dict) or "d_in" not in cfg or "d_sae" not in cfg:
        raise DataError(
            f"{cfg_file} is not an SAE config: expected a JSON object with at least d_in and d_sae, got {str(cfg)[:120]!r}. {resave}"
        )
    try:
        return SAE.load_from_disk(str(folder), device=device, dtype=dtype)
    except SafetensorError as err:
        raise DataError(f"{weights_file} cannot be read ({err}); the file is damaged or truncated. {resave}") from None
    except RuntimeError as err:
        raise DataError(
            f"The weights in {weights_file} do not have the shapes {cfg_file} describes (d_in={cfg['d_in']}, "
            f"d_sae={cfg['d_sae']}): {str(err).splitlines()[-1].strip()} The two files come from different SAEs. {resave}"
        ) from None
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{cfg_file} does not describe an SAE that this sae-lens can load ({type(err).__name__}: {err}); it may "
            f"be damaged or written by another sae-lens version. {resave}"
        ) from None


def _check_folder(folder: Path) -> Path:
    if not folder.exists():
        raise DataError(
            f"No SAE folder at {folder}. Pass the folder that holds {' and '.join(SAE_FILES)} (sae-lens's "
            f"on-disk format, written by sae.save_model(folder) or mechsel train-sae)."
        )
    missing = [f for f in SAE_FILES if not (folder / f).is_file()]
    if missing:
        layers = sorted(p.name for p in folder.glob("layer_*") if (p / SAE_FILES[0]).is_file())
        hint = (
            f" It holds one SAE per layer ({', '.join(layers)}): pass one of them, or load all with mechsel.sae.load_saes({str(folder)!r})."
            if layers
            else ""
        )
        raise DataError(f"{folder} is not an SAE folder in sae-lens format: missing {', '.join(missing)}.{hint}")
    return folder


def load_saes(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> dict[int, Any]:
    """Load every ``layer_<L>`` SAE of a training run folder as ``{layer: SAE}``."""
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(f"No SAE run folder at {folder}; train one with mechsel.sae.train_sae or `mechsel train-sae`.")
    subs = sorted((p for p in folder.glob("layer_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[1]))
    if not subs:
        raise DataError(f"{folder} holds no layer_<L> SAE folders; for a single SAE folder use load_sae(path=...).")
    return {int(p.name.split("_")[1]): load_sae(path=p, device=device) for p in subs}


def sae_layer(sae: Any) -> int:
    """The block index of the hook the SAE was trained on (``blocks.<L>.…``)."""
    hook = _hook_name(sae)
    return int(_HOOK_RE.match(hook).group(1))  # type: ignore[union-attr]


def _hook_name(sae: Any) -> str:
    hook = getattr(sae.cfg.metadata, "hook_name", None)
    if not hook:
        raise ConfigError(
            "This SAE does not record the hook it was trained on (cfg.metadata.hook_name is empty). Set it, e.g. "
            "sae.cfg.metadata.hook_name = 'blocks.6.hook_mlp_out', so it can be checked against the model."
        )
    if not _HOOK_RE.match(hook):
        raise ConfigError(f"SAE hook {hook!r} is not a block hook ('blocks.<L>.<name>'); mechsel reads block hooks only.")
    return str(hook)


def sae_weight_processing(sae: Any) -> str | None:
    """The model weight processing the SAE expects (``"none"``/``"default"``), or ``None`` if unknown.

    See the module docstring for how sae-lens's ``model_from_pretrained_kwargs`` map to it.
    """
    meta = sae.cfg.metadata
    info = meta.get("mechsel") if hasattr(meta, "get") else None
    if isinstance(info, Mapping) and info.get("weight_processing"):
        return str(info["weight_processing"])
    if "model_from_pretrained_kwargs" in meta or getattr(meta, "model_name", None):
        kwargs = getattr(meta, "model_from_pretrained_kwargs", None) or {}
        return "default" if kwargs.get("center_writing_weights") else "none"
    return None


def _canonical(name: str) -> str:
    try:
        from transformer_lens.loading_from_pretrained import get_official_model_name

        return get_official_model_name(name)
    except (ValueError, KeyError):
        return name


def _hook_width(model: Any, hook_name: str, layer: int) -> int:
    """Width of the activation at ``hook_name`` (one-token forward pass, stopped after the layer)."""
    seen: dict[str, int] = {}

    def grab(act: torch.Tensor, hook: Any) -> None:
        seen["d"] = int(act.shape[-1]) if act.ndim == 3 else int(act.shape[-2] * act.shape[-1])

    tokens = torch.zeros((1, 1), dtype=torch.long, device=model.cfg.device)
    with torch.inference_mode(), model.hooks(fwd_hooks=[(hook_name, grab)]):
        model(tokens, stop_at_layer=layer + 1)
    return seen["d"]


def check_sae_matches(
    sae: Any,
    model: Any,
    hook: str = "mlp_out",
    weight_processing: str | None = None,
    *,
    layer: int | None = None,
) -> int:
    """Raise unless ``sae`` reads the activations that ``model`` produces at ``hook``.

    Checks, in order: the SAE records a block hook whose name (without the layer) is ``hook``
    (and whose layer is ``layer`` when given) and that hook exists in ``model``; the SAE's
    ``d_in`` equals the hook's width; the SAE was trained on the same model (when it records
    one); and the model weight processing the SAE expects (see :func:`sae_weight_processing`)
    equals ``weight_processing`` (default: the model's, as recorded by
    :func:`mechsel.models.load_model`). SAEs trained by mechsel also record the model's weight
    fingerprint, which must match.

    Returns:
        The SAE's layer.

    Raises:
        ConfigError: hook, layer or width mismatch, or an SAE that records no hook.
        ProvenanceMismatchError: another model, weights, or weight processing; the message says
            how to load the model to match.
    """
    from mechsel.collection.run import resolve_hook
    from mechsel.models.loading import model_info

    hook_name = _hook_name(sae)
    sae_lay, sae_suffix = int(_HOOK_RE.match(hook_name).group(1)), _HOOK_RE.match(hook_name).group(2)  # type: ignore[union-attr]
    suffix = resolve_hook(model, hook)
    if sae_suffix != suffix:
        raise ConfigError(
            f"The SAE was trained on {hook_name!r} but the activations come from 'blocks.<L>.{suffix}' "
            f"(hook={hook!r}). Collect with hook={sae_suffix.removeprefix('hook_')!r}, or use an SAE trained on {suffix!r}."
        )
    if layer is not None and layer != sae_lay:
        raise ConfigError(f"The SAE for layer {layer} was trained on {hook_name!r} (layer {sae_lay}); pair each SAE with its own layer.")
    if sae_lay >= model.cfg.n_layers:
        raise ConfigError(f"The SAE reads {hook_name!r} but the model has only {model.cfg.n_layers} layers; it is for another model.")
    width = _hook_width(model, hook_name, sae_lay)
    info = model_info(model)
    sae_model = getattr(sae.cfg.metadata, "model_name", None)
    other_model = bool(sae_model) and _canonical(str(sae_model)) != _canonical(info.name)
    if sae.cfg.d_in != width:
        why = (
            f"The SAE records model {sae_model!r}: load that model (mechsel.load_model({sae_model!r})), or use an SAE "
            f"trained on {info.name!r}."
            if other_model
            else f"Use an SAE trained on {hook_name!r} of {info.name!r}, whose d_in is {width}."
        )
        raise ConfigError(
            f"The SAE's d_in is {sae.cfg.d_in} but {hook_name!r} of this model ({info.name!r}) has width {width}: "
            f"expected d_in={width}, found d_in={sae.cfg.d_in}. {why}"
        )
    if other_model:
        raise ProvenanceMismatchError(
            f"The SAE was trained on model {sae_model!r}, but this model is {info.name!r}. Load the SAE's model, "
            f"e.g. mechsel.load_model({sae_model!r}), or use an SAE trained on {info.name!r}."
        )
    _check_processing(sae, info, weight_processing)
    return sae_lay


def _check_processing(sae: Any, info: Any, weight_processing: str | None) -> None:
    from mechsel.models.loading import WEIGHT_PROCESSING

    expected = sae_weight_processing(sae)
    actual = weight_processing if weight_processing is not None else info.weight_processing
    if expected is None:
        logger.warning(
            "The SAE records neither model_from_pretrained_kwargs nor mechsel provenance, so the model's weight "
            "processing (%s) cannot be checked against it.",
            actual,
        )
        return
    if actual not in WEIGHT_PROCESSING:
        raise ConfigError(
            f"Cannot tell how this model's weights were processed ({actual!r}). Load it with mechsel.load_model("
            f"..., weight_processing={expected!r}), or pass weight_processing='none' or 'default' to say how it was loaded."
        )
    if expected != actual:
        how = {
            "none": "HookedTransformer.from_pretrained_no_processing",
            "default": "HookedTransformer.from_pretrained (fold LayerNorm, centre writing weights)",
        }
        raise ProvenanceMismatchError(
            f"The SAE was trained on activations of a model loaded with weight_processing={expected!r} "
            f"({how.get(expected, expected)}), but this model was loaded with {actual!r}; centring the writing "
            f"weights shifts hook_mlp_out, so its latents would be wrong. Reload the model with "
            f"mechsel.load_model({info.name!r}, weight_processing={expected!r})."
        )
    meta = sae.cfg.metadata.get("mechsel")
    if not (isinstance(meta, Mapping) and meta.get("weight_hash")) or meta["weight_hash"] == info.weight_hash:
        return
    if meta.get("model_dtype") not in (None, info.dtype):
        logger.warning(
            "The SAE was trained on %s weights, this model runs in %s; their fingerprints differ, so the weights "
            "themselves cannot be compared.",
            meta.get("model_dtype"),
            info.dtype,
        )
        return
    raise ProvenanceMismatchError(
        f"The SAE was trained on weights with fingerprint {meta['weight_hash']!r} (source {meta.get('model_source')!r}), "
        f"but this model's weights have fingerprint {info.weight_hash!r}: same name, different checkpoint. "
        f"Load the weights the SAE was trained on, or train an SAE on these."
    )
