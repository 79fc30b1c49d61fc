"""Glue between the experiment config and :mod:`mechsel.sae`: SAEs named in config → a reducer.

``sae.saes`` maps a layer to either a local sae-lens folder or ``release/sae_id`` of a
pretrained release (``gemma-scope-2-270m-pt-mlp/layer_6_width_16k_l0_small``: the release is
everything before the first ``/``). Every SAE is checked against the model and hook first.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["load_configured_saes", "sae_reducers", "training_data_check", "TOP_LATENTS"]

TOP_LATENTS = 8
"""Top latents kept per example (they feed the SAE selectors, not the correlation grid)."""


def load_configured_saes(model: Any, saes: Mapping[int, str], hook: str = "mlp_out") -> dict[int, Any]:
    """``{layer: SAE}`` for the config's ``sae.saes``, each checked with :func:`mechsel.sae.loading.check_sae_matches`."""
    from mechsel.sae.loading import check_sae_matches, load_sae

    device = str(model.cfg.device)
    out = {}
    for layer, spec in saes.items():
        if os.path.isdir(os.path.expanduser(spec)):
            sae = load_sae(path=os.path.expanduser(spec), device=device)
        else:
            release, _, sae_id = spec.partition("/")
            sae = load_sae(release, sae_id or None, device=device)
        check_sae_matches(sae, model, hook, layer=int(layer))
        out[int(layer)] = sae
    return out


def sae_reducers(model: Any, saes: Mapping[int, str], statistics: Sequence[str] | None = None, hook: str = "mlp_out") -> list[Any]:
    """The SAE statistics reducer and the top-latents reducer (:data:`TOP_LATENTS` per example), sharing one load."""
    from mechsel.sae.statistics import SAEStatistics, SAETopLatents

    loaded = load_configured_saes(model, {int(k): v for k, v in saes.items()}, hook)
    return [SAEStatistics(loaded, statistics), SAETopLatents(loaded, TOP_LATENTS)]


def training_data_check(saes: Mapping[int, str], task: str, texts: Sequence[str]) -> dict[str, Any]:
    """Check that no SAE was trained on any of ``texts`` (the task's candidate, dev and test
    examples), from the hashes ``mechsel train-sae`` saves beside each SAE.

    Returns, per layer, the overlap found (0) or ``"not recorded"`` for SAEs that carry no record
    (pretrained releases, older folders; a warning is logged). Raises :class:`DataError` on any
    overlap, before the model runs.
    """
    import logging

    from mechsel.errors import DataError
    from mechsel.sae.demonstrations import TRAINING_TEXTS_FILE, training_overlap

    record: dict[str, Any] = {}
    for layer, spec in sorted(saes.items()):
        overlap = training_overlap(spec, texts) if os.path.isdir(spec) else None
        if overlap is None:
            logging.getLogger(__name__).warning(
                "The SAE of layer %s (%s) has no %s: whether it was trained on %s's examples cannot be checked.",
                layer,
                spec,
                TRAINING_TEXTS_FILE,
                task,
            )
            record[str(layer)] = "not recorded"
            continue
        if overlap:
            raise DataError(
                f"The SAE of layer {layer} ({spec}) was trained on {overlap} of task {task!r}'s candidate, dev and test "
                f"examples, so its statistics would mix memorisation into example properties. Retrain it with "
                f"`mechsel train-sae --set exclude=[<this config's YAML>]` (the default excludes the demo's examples)."
            )
        record[str(layer)] = {"overlap": 0, "n_examples_checked": len(texts)}
    return record
