"""Per-model cache of head scores: computed once per (weights, settings), reloaded afterwards.

Scores live in ``mechsel.paths.cache_dir()/heads/<kind>/<model>-<weight hash>/<settings hash>/``
as a saved :class:`~mechsel.heads.scores.HeadScores` (``manifest.json`` with the provenance,
``arrays.npz``). The settings hash covers every field of the expected provenance that can change a
number (weight processing, dtype, hook, BOS policy, padding, data hash and the producer's settings
in ``extra``), so a changed config, task or example set gets its own folder. A folder is written
through :func:`mechsel.paths.atomic_dir`, so an interrupted run leaves nothing half-written. On
reload the stored provenance is checked against the expected one; a folder that cannot be read or
does not match is recomputed (with a warning) and replaced, never mixed in.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

from mechsel.errors import MechselError
from mechsel.heads.scores import HeadScoreKind, HeadScores
from mechsel.paths import cache_dir, safe_name
from mechsel.provenance import Provenance, check_compatible, hash_json

__all__ = ["scores_folder", "cached_scores"]

logger = logging.getLogger(__name__)

_KEY_FIELDS = (*Provenance.STRICT_FIELDS, "data_hash")
"""Provenance fields that must match for a cached result to be reused (plus ``extra``)."""


def scores_folder(kind: HeadScoreKind, provenance: Provenance) -> Path:
    """The cache folder of scores of ``kind`` with the expected ``provenance``."""
    model = safe_name("model", re.sub(r"[^A-Za-z0-9_.-]+", "_", provenance.model_name).strip("._-") or "model")
    settings = hash_json({"fields": {f: getattr(provenance, f) for f in _KEY_FIELDS}, "extra": dict(provenance.extra)})
    return cache_dir() / "heads" / kind / f"{model}-{provenance.weight_hash}" / settings


def _matches(found: Provenance, expected: Provenance) -> bool:
    try:
        check_compatible(found, expected, _KEY_FIELDS, what="cached head scores")
    except MechselError as err:
        logger.warning("%s", err)
        return False
    return hash_json(dict(found.extra)) == hash_json(dict(expected.extra))


def cached_scores(kind: HeadScoreKind, provenance: Provenance, compute: Callable[[], HeadScores], *, cache: bool) -> HeadScores:
    """Return the cached scores for ``provenance`` if present, else ``compute()`` them (and store them).

    Args:
        kind: what the scores measure; part of the folder name.
        provenance: the provenance ``compute`` will attach; it keys the cache.
        compute: produces the scores (with exactly this provenance).
        cache: ``False`` computes without reading or writing the cache.
    """
    if not cache:
        return compute()
    folder = scores_folder(kind, provenance)
    if folder.is_dir():
        try:
            found = HeadScores.load(folder)
        except (MechselError, OSError, ValueError, KeyError) as err:
            logger.warning("Recomputing head scores: the cached copy in %s cannot be read (%s).", folder, err)
        else:
            if found.kind == kind and _matches(found.provenance, provenance):
                logger.info("Loaded %s head scores from %s.", kind, folder)
                return found
            logger.warning("Recomputing head scores: the cached copy in %s was made with other settings.", folder)
    scores = compute()
    scores.save(folder)
    logger.info("Saved %s head scores to %s.", kind, folder)
    return scores
