"""Views of SAE latents: an example's tokens coloured by its top latents (circuitsvis, for
notebooks) and a summary of pool-level latent density (plotly). circuitsvis and plotly are
imported only here."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from mechsel.errors import ConfigError, DataError

__all__ = ["latent_token_activations", "latent_token_view", "latent_density_figure"]


def latent_token_activations(
    model: Any,
    sae: Any,
    text: str,
    *,
    latents: Sequence[int] | None = None,
    k: int = 5,
    weight_processing: str | None = None,
) -> pd.DataFrame:
    """Activation of latents on each token of ``text`` (BOS + text, BOS dropped from the table).

    Args:
        model: the model the SAE reads (checked with :func:`~mechsel.sae.loading.check_sae_matches`).
        sae: a sae-lens SAE trained on a block hook of ``model``.
        text: one text.
        latents: latents to show; default: the ``k`` with the largest activation on any token.
        k: how many latents to pick when ``latents`` is not given.
        weight_processing: the model's weight processing, if it was not loaded by mechsel.

    Returns:
        A frame with one row per token (``token`` holds its string) and one column per latent,
        ordered by decreasing peak activation.
    """
    from mechsel.sae.loading import check_sae_matches

    if not isinstance(text, str) or not text.strip():
        raise DataError(f"Pass one non-empty text, got {text!r}.")
    hook = sae.cfg.metadata.hook_name
    layer = check_sae_matches(sae, model, str(hook).split(".", 2)[2].removeprefix("hook_"), weight_processing)
    tok = model.tokenizer
    ids = [int(tok.bos_token_id), *tok.encode(text, add_special_tokens=False)]
    captured: dict[str, torch.Tensor] = {}

    def grab(act: torch.Tensor, hook: Any) -> None:
        captured["acts"] = act[0, 1:].detach()

    with torch.inference_mode(), model.hooks(fwd_hooks=[(hook, grab)]):
        model(torch.tensor([ids], device=model.cfg.device), stop_at_layer=layer + 1)
        feats = sae.encode(captured["acts"].to(sae.device)).to("cpu", torch.float64).numpy()
    if latents is None:
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError(f"k must be a positive integer, got {k!r}.")
        peak = feats.max(axis=0)
        chosen = [int(j) for j in np.argsort(-peak, kind="stable")[:k] if peak[j] > 0]
    else:
        chosen = [int(j) for j in latents]
        bad = [j for j in chosen if not 0 <= j < sae.cfg.d_sae]
        if bad:
            raise ConfigError(f"Latents {bad} are out of range; this SAE has {sae.cfg.d_sae} latents (0..{sae.cfg.d_sae - 1}).")
    frame = pd.DataFrame(feats[:, chosen], columns=pd.Index(chosen, name="latent"))
    frame.insert(0, "token", [tok.decode([t]) for t in ids[1:]])
    return frame


def latent_token_view(model: Any, sae: Any, text: str, **kwargs: Any) -> Any:
    """The tokens of ``text`` coloured by each top latent's activation (circuitsvis
    ``colored_tokens_multi``; displays in a notebook). Arguments as :func:`latent_token_activations`."""
    from circuitsvis.tokens import colored_tokens_multi

    frame = latent_token_activations(model, sae, text, **kwargs)
    latents = [c for c in frame.columns if c != "token"]
    if not latents:
        raise DataError("No latent fires on this text; pass latents=[...] to show chosen ones.")
    values = torch.tensor(frame[latents].to_numpy(), dtype=torch.float32)
    return colored_tokens_multi(list(frame["token"]), values, labels=[f"latent {j}" for j in latents])


def latent_density_figure(density: pd.DataFrame, *, title: str = "SAE latent density") -> Any:
    """Histogram of log10 latent density per layer (from :meth:`SAEStatistics.latent_density`);
    latents that never fire are counted in each trace's name."""
    import plotly.graph_objects as go

    from mechsel.plots._frames import TEMPLATE

    need = {"layer", "latent", "density"}
    if not need <= set(density.columns):
        raise DataError(f"density needs columns {sorted(need)} (mechsel.sae.latent_density's output); got {list(density.columns)}.")
    if density.empty:
        raise DataError("density is empty.")
    fig = go.Figure()
    for layer, part in density.groupby("layer", sort=True):
        live = part["density"].to_numpy()
        dead = int((live == 0).sum())
        fig.add_trace(
            go.Histogram(x=np.log10(live[live > 0]), name=f"layer {layer} ({dead} of {len(live)} never fire)", opacity=0.7, nbinsx=40)
        )
    fig.update_layout(
        template=TEMPLATE,
        title=title,
        barmode="overlay",
        xaxis_title="log10 fraction of examples in which the latent fires",
        yaxis_title="latents",
        legend_title_text="layer",
    )
    return fig
