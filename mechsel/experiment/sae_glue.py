"""Glue between the experiment config and :mod:`mechsel.sae`: SAEs named in config → a reducer,
and SAE training kept apart from the experiments' examples.

``sae.saes`` maps a layer to either a local sae-lens folder or ``release/sae_id`` of a
pretrained release (``gemma-scope-2-270m-pt-mlp/layer_6_width_16k_l0_small``: the release is
everything before the first ``/``). Every SAE is checked against the model and hook first.

:func:`excluded_texts` reads the experiment configs an SAE's training must not see
(:attr:`SAETrainConfig.exclude <mechsel.sae.config.SAETrainConfig.exclude>`), and
:func:`train_sae` (``mechsel.train_sae``) hands it to :func:`mechsel.sae.training.train_sae`:
:mod:`mechsel.sae` is below the experiment and never imports it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mechsel.experiment.config import ExperimentConfig
    from mechsel.sae.config import SAETrainConfig
    from mechsel.sae.training import SAETrainResult

__all__ = ["load_configured_saes", "sae_reducers", "training_data_check", "excluded_texts", "train_sae", "TOP_LATENTS"]

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


def _exclude_config(spec: str) -> ExperimentConfig:
    from mechsel.errors import ConfigError
    from mechsel.experiment.demo import demo_config
    from mechsel.experiment.loading import load_config

    if spec in ("demo", "quick"):
        return demo_config(quick=spec == "quick")
    if not os.path.isfile(spec):
        raise ConfigError(
            f"exclude entry {spec!r} is neither 'demo', 'quick' nor an experiment config file; name the YAML "
            f"config(s) whose candidate, dev and test examples the SAE must not see."
        )
    return load_config(spec)


def excluded_texts(configs: Sequence[str]) -> tuple[set[str], dict[str, int]]:
    """The :func:`~mechsel.sae.demonstrations.text_key` of every candidate, dev and test example
    of the named experiment configs (``"demo"``, ``"quick"`` or YAML paths), and the count per task.

    Only the data subsets are drawn (no model is loaded). This is the ``exclusion`` that
    :func:`train_sae` passes to :func:`mechsel.sae.training.train_sae`."""
    from mechsel.experiment.resources import Resources
    from mechsel.sae.demonstrations import text_key

    keys: set[str] = set()
    counts: dict[str, int] = {}
    for spec in configs:
        config = _exclude_config(spec)
        res = Resources(config)
        for task in config.tasks:
            splits = res.splits(task.name)
            texts = [e.text() for e in splits.examples]
            counts[task.name] = counts.get(task.name, 0) + len(texts)
            keys.update(text_key(t) for t in texts)
    return keys, counts


def train_sae(model: Any, config: SAETrainConfig | None = None, *, texts: Sequence[str] | None = None, **overrides: Any) -> SAETrainResult:
    """Train SAEs as :func:`mechsel.sae.training.train_sae` does, leaving out every candidate, dev
    and test example of the experiment configs in ``config.exclude`` (read by :func:`excluded_texts`).

    This is ``mechsel.train_sae`` and what ``mechsel train-sae`` runs; the arguments, result and
    errors are those of :func:`mechsel.sae.training.train_sae`."""
    from mechsel.sae.training import train_sae as train

    return train(model, config, texts=texts, exclusion=excluded_texts, **overrides)
