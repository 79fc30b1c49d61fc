"""SAE latent statistics per example, computed inside the collector's hooks (no raw cache).

Two reducer families (:class:`~mechsel.stats.base.Reducer`), each holding one sae-lens SAE per
layer and passed to :func:`mechsel.collection.collect` as instances next to the moments:

``sae`` (:class:`SAEStatistics`) — for the latents ``f[t, j] = sae.encode(x_t)[j]`` of an
example's selected tokens ``t`` (a latent is *active* where ``f > 0``), the ones that vary between
examples first:

* ``sae_entropy``: entropy (nats) of the example's latent activation mass
  ``p_j = Σ_t f[t, j] / Σ_{t, j} f[t, j]`` (NaN if no mass);
* ``sae_n_active``: number of distinct latents active on at least one token;
* ``sae_peak_share``: share of the example's latent mass carried by its strongest latent,
  ``max_j p_j`` (NaN if no mass);
* ``sae_max_act``: largest latent activation;
* ``sae_mean_act``: mean activation of the active (token, latent) entries (NaN if none);
* ``sae_l0``: mean over tokens of the number of active latents. A TopK SAE makes this ``k`` on
  every token by construction (fewer only where pre-activations are not positive), so it says
  nothing about the example; the entropy, distinct latents and top-latent mass do;
* ``sae_explained_variance``: ``1 - sae_fvu``;
* ``sae_fvu``: fraction of variance unexplained against the *dataset* mean, as the field reports
  it: ``Σ_t ||x_t - x̂_t||² / (n_t · V)`` with ``V`` the per-token variance of the SAE's
  :class:`~mechsel.sae.reference.ActivationReference` (the dataset FVU is the token-weighted mean
  of these);
* ``sae_mse``: per-token squared error ``Σ_t ||x_t - x̂_t||² / n_t``;
* ``sae_cosine``: mean over tokens of ``cos(x_t, x̂_t)``;
* ``sae_ev_own_mean`` (not computed unless asked for): ``1 - Σ_t ||x_t - x̂_t||² / Σ_t ||x_t - x̄||²``
  with ``x̄`` the example's *own* mean — unstable for examples of a few tokens (NaN for one token),
  kept only under this name.

``sae_fvu`` and ``sae_explained_variance`` need a reference: from ``references=``, else the one
``mechsel train-sae`` stores in the SAE's metadata (:func:`~mechsel.sae.reference.reference_of`).
Asked for without one, they raise before any work; by default (``statistics=None``) they are then
left out and the provenance says why.

The reducer also counts, per layer, in how many examples each latent fires; read the pool-level
latent density with :meth:`SAEStatistics.latent_density` (or :func:`latent_density`).

``sae_top`` (:class:`SAETopLatents`) — the example's ``k`` strongest latents, as scalar columns
``sae_top{i}_latent`` (latent index, ``-1`` when fewer than ``i`` latents fire) and
``sae_top{i}_act`` (its activation, ``0`` then), ranked by the latent's maximum (or summed)
activation over the example's tokens. :func:`top_latents_frame` turns them into a tidy frame; the
SAE selectors read them from ``Pool.statistics``.

Both families work in float64 after encoding in the SAE's dtype.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechsel.errors import ConfigError, DataError, did_you_mean
from mechsel.sae.reference import ActivationReference, reference_of

__all__ = [
    "SAE_STATISTIC_NAMES",
    "DEFAULT_SAE_STATISTICS",
    "SAEStatistics",
    "SAETopLatents",
    "collect_sae",
    "latent_density",
    "top_latents",
    "top_latents_frame",
    "top_latent_columns",
]

SAE_STATISTIC_NAMES: tuple[str, ...] = (
    "sae_entropy",
    "sae_n_active",
    "sae_peak_share",
    "sae_max_act",
    "sae_mean_act",
    "sae_l0",
    "sae_explained_variance",
    "sae_fvu",
    "sae_mse",
    "sae_cosine",
    "sae_ev_own_mean",
)
"""Every statistic :class:`SAEStatistics` can compute (see the module docstring)."""

DEFAULT_SAE_STATISTICS: tuple[str, ...] = (
    "sae_entropy",
    "sae_n_active",
    "sae_peak_share",
    "sae_max_act",
    "sae_mean_act",
    "sae_l0",
    "sae_explained_variance",
    "sae_cosine",
)
"""What :class:`SAEStatistics` computes by default: ``sae_fvu`` and ``sae_mse`` rank examples exactly
as ``sae_explained_variance`` does (one reference variance for all), and ``sae_ev_own_mean`` is the
unstable within-example ratio, so they are computed only when asked for."""

_NEEDS_REFERENCE = frozenset({"sae_explained_variance", "sae_fvu"})


def _as_layer_dict(saes: Any) -> dict[int, Any]:
    from mechsel.sae.loading import sae_layer

    if isinstance(saes, Mapping):
        out = {}
        for layer, sae in saes.items():
            if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
                raise ConfigError(f"SAEs must be keyed by layer index, got key {layer!r}.")
            out[int(layer)] = sae
    else:
        out = {sae_layer(saes): saes}
    if not out:
        raise ConfigError("Pass at least one SAE ({layer: sae}).")
    for layer, sae in out.items():
        if not hasattr(sae, "encode") or not hasattr(getattr(sae, "cfg", None), "d_sae"):
            raise ConfigError(
                f"The SAE for layer {layer} is a {type(sae).__name__}, not a sae-lens SAE (load one with mechsel.sae.load_sae)."
            )
    return out


class _PerLayerSAE:
    """Shared plumbing: the SAE of a layer, encoding, provenance."""

    def __init__(self, saes: Any) -> None:
        self.saes = _as_layer_dict(saes)

    @property
    def layers(self) -> tuple[int, ...]:
        """Layers with an SAE (pass them as ``collect(..., layers=reducer.layers)``)."""
        return tuple(sorted(self.saes))

    def _encode(self, acts: Tensor, layer: int) -> tuple[Any, Tensor]:
        sae = self.saes.get(layer)
        if sae is None:
            raise ConfigError(
                f"No SAE for layer {layer}; this reducer has SAEs for layers {list(self.layers)}. Collect with layers={list(self.layers)}."
            )
        if acts.shape[-1] != sae.cfg.d_in:
            raise ConfigError(
                f"Layer {layer} activations have width {acts.shape[-1]} but its SAE's d_in is {sae.cfg.d_in}; wrong hook or model."
            )
        return sae, sae.encode(acts.to(sae.device))

    def provenance_info(self) -> dict[str, Any]:
        """What identifies the SAEs (recorded by the collector in the result's provenance)."""
        from mechsel.models.loading import weight_fingerprint

        info = {}
        for layer, sae in sorted(self.saes.items()):
            meta = sae.cfg.metadata
            mechsel = meta.get("mechsel") or {}
            info[str(layer)] = {
                "hook_name": meta.hook_name,
                "architecture": sae.cfg.architecture(),
                "d_sae": sae.cfg.d_sae,
                "model_name": meta.model_name,
                "neuronpedia_id": meta.neuronpedia_id,
                "sae_fingerprint": weight_fingerprint(sae),
                "training_data_hash": mechsel.get("data_hash") if isinstance(mechsel, Mapping) else None,
            }
        return {"saes": info}


def _per_group(values: Tensor, groups: Tensor, n_groups: int) -> Tensor:
    shape = (n_groups, *values.shape[1:])
    return torch.zeros(shape, dtype=torch.float64, device=values.device).index_add_(0, groups, values.to(torch.float64))


class SAEStatistics(_PerLayerSAE):
    """Per-example latent statistics (family ``"sae"``; see the module docstring).

    Args:
        saes: ``{layer: SAE}``, or one SAE (its layer read from its hook name).
        statistics: the subset of :data:`SAE_STATISTIC_NAMES` to emit (default:
            :data:`DEFAULT_SAE_STATISTICS`, less those needing a reference when a layer has none).
        references: ``{layer: ActivationReference}`` for ``sae_fvu`` / ``sae_explained_variance``;
            default: each SAE's stored one (:func:`~mechsel.sae.reference.reference_of`).
        track_density: count, per layer and latent, the examples in which the latent fires.
    """

    family: ClassVar[str] = "sae"

    def __init__(
        self,
        saes: Any,
        statistics: Sequence[str] | None = None,
        *,
        references: Mapping[int, ActivationReference] | None = None,
        track_density: bool = True,
    ) -> None:
        super().__init__(saes)
        refs = {layer: reference_of(sae) for layer, sae in self.saes.items()}
        refs.update({int(k): v for k, v in (references or {}).items()})
        missing = [layer for layer in self.layers if refs.get(layer) is None]
        for layer in self.layers:
            ref = refs.get(layer)
            if ref is not None and len(ref.mean) != self.saes[layer].cfg.d_in:
                raise ConfigError(
                    f"The activation reference of layer {layer} has {len(ref.mean)} dimensions but its SAE's d_in is "
                    f"{self.saes[layer].cfg.d_in}; measure it on this layer's hook (mechsel.sae.collect_reference)."
                )
        self.omitted: tuple[str, ...] = ()
        if statistics is None:
            names = DEFAULT_SAE_STATISTICS
            if missing:
                self.omitted = tuple(n for n in names if n in _NEEDS_REFERENCE)
                names = tuple(n for n in names if n not in _NEEDS_REFERENCE)
        else:
            names = tuple(statistics)
        for name in names:
            if name not in SAE_STATISTIC_NAMES:
                raise ConfigError(
                    f"The 'sae' family has no statistic {name!r}.{did_you_mean(name, SAE_STATISTIC_NAMES)} "
                    f"It computes: {', '.join(SAE_STATISTIC_NAMES)}."
                )
        if not names:
            raise ConfigError(f"Ask the 'sae' family for at least one of: {', '.join(SAE_STATISTIC_NAMES)}.")
        if missing and _NEEDS_REFERENCE & set(names):
            raise ConfigError(
                f"{sorted(_NEEDS_REFERENCE & set(names))} are measured against the dataset mean, but the SAE(s) of "
                f"layer(s) {missing} carry no activation reference. Train the SAE with `mechsel train-sae` (it stores "
                f"one), or measure one with mechsel.sae.collect_reference(...) and pass references={{layer: ref}} "
                f"(or mechsel.sae.attach_reference(sae, ref)); or ask for 'sae_mse' instead."
            )
        self.names = names
        self.references = {layer: ref for layer, ref in refs.items() if ref is not None}
        self.track_density = track_density
        self.reset_density()

    def statistic_names(self) -> tuple[str, ...]:
        return self.names

    def provenance_info(self) -> dict[str, Any]:
        info = super().provenance_info()
        for layer, entry in info["saes"].items():
            ref = self.references.get(int(layer))
            entry["reference"] = None if ref is None else {"variance": ref.variance, "n_tokens": ref.n_tokens, "source": ref.source}
        if self.omitted:
            info["omitted"] = {name: "no activation reference for this SAE" for name in self.omitted}
        return info

    def reset_density(self) -> None:
        """Forget the latent firing counts accumulated so far."""
        self._fired = {layer: torch.zeros(sae.cfg.d_sae, dtype=torch.int64) for layer, sae in self.saes.items()}
        self._n_examples = dict.fromkeys(self.saes, 0)

    def reduce(
        self, acts: Float[Tensor, "tokens d"], groups: Int[Tensor, " tokens"], n_groups: int, layer: int
    ) -> dict[str, Float[Tensor, " n_groups"]]:
        sae, feats = self._encode(acts, layer)
        groups = groups.to(feats.device)
        need = set(self.names)
        x = acts.to(feats.device, torch.float64)
        f = feats.to(torch.float64)
        active = f > 0
        n_tok = torch.bincount(groups, minlength=n_groups).to(torch.float64)
        n_active = _per_group(active.sum(1), groups, n_groups)
        mass = _per_group(f, groups, n_groups)  # [n_groups, d_sae]
        fired = mass > 0
        out: dict[str, Tensor] = {}
        nan = torch.full((n_groups,), float("nan"), dtype=torch.float64, device=f.device)
        out["sae_l0"] = n_active / n_tok
        total = mass.sum(1)
        out["sae_mean_act"] = torch.where(n_active > 0, total / n_active.clamp(min=1), nan)
        peak = f.amax(1)
        out["sae_max_act"] = torch.zeros(n_groups, dtype=torch.float64, device=f.device).scatter_reduce_(
            0, groups, peak, "amax", include_self=False
        )
        p = mass / total.clamp(min=torch.finfo(torch.float64).tiny)[:, None]
        out["sae_entropy"] = torch.where(total > 0, -torch.special.xlogy(p, p).sum(1), nan)
        out["sae_peak_share"] = torch.where(total > 0, p.amax(1), nan)
        out["sae_n_active"] = fired.sum(1).to(torch.float64)
        if need & {"sae_explained_variance", "sae_fvu", "sae_mse", "sae_cosine", "sae_ev_own_mean"}:
            recon = sae.decode(feats).to(torch.float64)
            sse = _per_group((x - recon).pow(2).sum(1), groups, n_groups)
            out["sae_mse"] = sse / n_tok
            if need & _NEEDS_REFERENCE:
                out["sae_fvu"] = out["sae_mse"] / self.references[layer].variance
                out["sae_explained_variance"] = 1 - out["sae_fvu"]
            if "sae_ev_own_mean" in need:
                centre = _per_group(x, groups, n_groups) / n_tok[:, None]
                sst = _per_group((x - centre[groups]).pow(2).sum(1), groups, n_groups)
                scale = _per_group(x.pow(2).sum(1), groups, n_groups)
                out["sae_ev_own_mean"] = torch.where(sst > 1e-12 * scale, 1 - sse / sst.clamp(min=1e-300), nan)
            if "sae_cosine" in need:
                cos = torch.nn.functional.cosine_similarity(x, recon, dim=-1)
                out["sae_cosine"] = _per_group(cos, groups, n_groups) / n_tok
        if self.track_density:
            self._fired[layer] += fired.sum(0).to("cpu", torch.int64)
            self._n_examples[layer] += n_groups
        return {name: out[name] for name in self.names}

    def latent_density(self) -> pd.DataFrame:
        """Pool-level density: for each layer and latent, the fraction of examples in which it fired.

        Counts every example this reducer has reduced since it was built (or :meth:`reset_density`).
        Columns: ``layer``, ``latent``, ``n_examples`` (examples seen), ``n_fired``, ``density``.
        """
        if not self.track_density:
            raise ConfigError("This SAEStatistics was built with track_density=False; build it with track_density=True.")
        if not any(self._n_examples.values()):
            raise DataError("No examples reduced yet: pass this SAEStatistics to collect(...) first, then read latent_density().")
        parts = []
        for layer in self.layers:
            fired = self._fired[layer].numpy()
            n = self._n_examples[layer]
            parts.append(
                pd.DataFrame(
                    {"layer": layer, "latent": np.arange(fired.size), "n_examples": n, "n_fired": fired, "density": fired / max(n, 1)}
                )
            )
        return pd.concat(parts, ignore_index=True)


class SAETopLatents(_PerLayerSAE):
    """Each example's ``k`` strongest latents as scalar columns (family ``"sae_top"``).

    Args:
        saes: ``{layer: SAE}``, or one SAE.
        k: latents kept per example.
        rank_by: ``"max"`` (largest activation over the example's tokens, the default) or
            ``"sum"`` (activation mass summed over tokens); the reported activation is that value.
    """

    family: ClassVar[str] = "sae_top"

    def __init__(self, saes: Any, k: int = 8, rank_by: Literal["max", "sum"] = "max") -> None:
        super().__init__(saes)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}.")
        smallest = min(sae.cfg.d_sae for sae in self.saes.values())
        if k > smallest:
            raise ConfigError(f"k={k} exceeds the smallest SAE's d_sae ({smallest}).")
        if rank_by not in ("max", "sum"):
            raise ConfigError(f"rank_by must be 'max' or 'sum', got {rank_by!r}.")
        self.k, self.rank_by = k, rank_by

    def statistic_names(self) -> tuple[str, ...]:
        return top_latent_columns(self.k)

    def reduce(
        self, acts: Float[Tensor, "tokens d"], groups: Int[Tensor, " tokens"], n_groups: int, layer: int
    ) -> dict[str, Float[Tensor, " n_groups"]]:
        _, feats = self._encode(acts, layer)
        groups = groups.to(feats.device)
        f = feats.to(torch.float64)
        if self.rank_by == "sum":
            score = _per_group(f, groups, n_groups)
        else:
            score = torch.zeros((n_groups, f.shape[1]), dtype=torch.float64, device=f.device)
            score = score.scatter_reduce_(0, groups[:, None].expand_as(f), f.clamp(min=0), "amax", include_self=True)
        values, idx = score.topk(self.k, dim=1)
        live = values > 0
        latents = torch.where(live, idx.to(torch.float64), torch.full_like(values, -1.0))
        values = torch.where(live, values, torch.zeros_like(values))
        out = {}
        for i in range(self.k):
            out[f"sae_top{i + 1}_latent"] = latents[:, i]
            out[f"sae_top{i + 1}_act"] = values[:, i]
        return out


def top_latent_columns(k: int) -> tuple[str, ...]:
    """The statistic names of :class:`SAETopLatents` with ``k`` latents."""
    return tuple(name for i in range(1, k + 1) for name in (f"sae_top{i}_latent", f"sae_top{i}_act"))


def collect_sae(
    model: Any,
    texts_or_prompts: Sequence[Any],
    saes: Any,
    *,
    statistics: Sequence[str] | None = None,
    top_k: int = 8,
    rank_by: Literal["max", "sum"] = "max",
    moments: Sequence[str] = (),
    weight_processing: str | None = None,
    references: Mapping[int, ActivationReference] | None = None,
    **collect_kwargs: Any,
) -> Any:
    """Check the SAEs against the model, then collect SAE statistics (and optionally moments) in one pass.

    Args:
        model: the TransformerLens model the activations come from.
        texts_or_prompts: as for :func:`mechsel.collection.collect`.
        saes: ``{layer: SAE}`` or one SAE; ``collect`` runs at exactly these layers.
        statistics: subset of :data:`SAE_STATISTIC_NAMES` (default :data:`DEFAULT_SAE_STATISTICS`).
        top_k: top latents per example to add (:class:`SAETopLatents`); 0 for none.
        rank_by: how top latents are ranked.
        moments: moment statistic names to compute in the same pass (e.g. ``("mean", "kurtosis")``).
        weight_processing: the model's weight processing, if it was not loaded by mechsel.
        references: activation references per layer for the FVU (default: the SAEs' stored ones).
        collect_kwargs: any other :func:`~mechsel.collection.collect` argument (``hook``, ``mask``,
            ``positions``, ``batch_size``, ...).

    Returns:
        A :class:`~mechsel.stats.result.StatsResult` (same tidy frame and provenance as moments).
    """
    from mechsel.collection import collect
    from mechsel.sae.loading import check_sae_matches

    if "layers" in collect_kwargs or "statistics" in collect_kwargs:
        raise ConfigError("collect_sae sets layers (the SAEs' layers) and statistics itself; pass moments=... for moments.")
    by_layer = _as_layer_dict(saes)
    hook = collect_kwargs.get("hook", "mlp_out")
    for layer, sae in by_layer.items():
        check_sae_matches(sae, model, hook, weight_processing, layer=layer)
    reducers: list[Any] = [*moments, SAEStatistics(by_layer, statistics, references=references)]
    if top_k:
        reducers.append(SAETopLatents(by_layer, top_k, rank_by))
    return collect(model, texts_or_prompts, layers=sorted(by_layer), statistics=reducers, **collect_kwargs)


def latent_density(model: Any, texts_or_prompts: Sequence[Any], saes: Any, **collect_kwargs: Any) -> pd.DataFrame:
    """Pool-level latent density (see :meth:`SAEStatistics.latent_density`) of ``texts_or_prompts``."""
    from mechsel.collection import collect
    from mechsel.sae.loading import check_sae_matches

    by_layer = _as_layer_dict(saes)
    hook = collect_kwargs.get("hook", "mlp_out")
    processing = collect_kwargs.pop("weight_processing", None)
    for layer, sae in by_layer.items():
        check_sae_matches(sae, model, hook, processing, layer=layer)
    stats = SAEStatistics(by_layer, ("sae_l0",))
    collect(model, texts_or_prompts, layers=sorted(by_layer), statistics=[stats], **collect_kwargs)
    return stats.latent_density()


def top_latents_frame(result: Any, layer: int | None = None) -> pd.DataFrame:
    """Tidy frame of the top-latent columns of a result: ``row, example_id, layer, rank, latent, activation``.

    Slots where fewer latents fired (latent ``-1``) are dropped.
    """
    names = [s for s in result.statistics if s.startswith("sae_top") and s.endswith("_latent")]
    if not names:
        raise DataError("The result holds no top-latent columns; collect with SAETopLatents (collect_sae(..., top_k=8)).")
    layers = result.layers if layer is None else (layer,)
    parts = []
    for lay in layers:
        for rank in range(1, len(names) + 1):
            lat = result.array(f"sae_top{rank}_latent", [lay])[:, 0]
            act = result.array(f"sae_top{rank}_act", [lay])[:, 0]
            parts.append(
                pd.DataFrame(
                    {
                        "row": np.arange(len(result)),
                        "example_id": list(result.example_ids),
                        "layer": lay,
                        "rank": rank,
                        "latent": lat,
                        "activation": act,
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    frame = frame[frame["latent"] >= 0].astype({"latent": np.int64})
    return frame.sort_values(["layer", "row", "rank"], kind="stable").reset_index(drop=True)


def top_latents(model: Any, saes: Any, texts_or_prompts: Sequence[Any], *, k: int = 8, **collect_kwargs: Any) -> pd.DataFrame:
    """The ``k`` strongest latents of every example (one collect pass), as :func:`top_latents_frame`."""
    result = collect_sae(model, texts_or_prompts, saes, statistics=("sae_l0",), top_k=k, **collect_kwargs)
    return top_latents_frame(result)
