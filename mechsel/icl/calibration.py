"""Contextual calibration (Zhao et al., ICML 2021, "Calibrate Before Use").

With the same demonstrations, the query is replaced by content-free inputs (``"N/A"``, ``""``,
``"[MASK]"``); the mean of the model's label distributions over those is ``p_cf``. Calibrated
probabilities are ``softmax(W p)`` with ``W = diag(p_cf)^-1`` and no bias, i.e. ``p / p_cf``
renormalised over the labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mechsel.errors import DataError
from mechsel.icl.scoring import LabelScorer, label_distribution
from mechsel.tasks.base import Example
from mechsel.tasks.prompts import PromptEncoder, content_free_example

__all__ = ["CONTENT_FREE_INPUTS", "content_free_distribution", "calibrate"]

CONTENT_FREE_INPUTS: tuple[str, ...] = ("N/A", "", "[MASK]")
"""The content-free inputs of Zhao et al. (2021)."""


def content_free_distribution(
    scorer: LabelScorer,
    encoder: PromptEncoder,
    demo_sets: Sequence[Sequence[Example]],
    *,
    inputs: Sequence[str] = CONTENT_FREE_INPUTS,
    max_tokens: int | None = None,
) -> np.ndarray:
    """``[n_sets, n_labels]``: mean label distribution over the content-free queries, per demo set."""
    if not inputs:
        raise DataError("Give at least one content-free input (e.g. 'N/A').")
    queries = [content_free_example(encoder.task, text) for text in inputs]
    prompts = [encoder.build(demos, q, max_tokens=max_tokens) for demos in demo_sets for q in queries]
    probs = label_distribution(scorer.logprobs(prompts))
    return probs.reshape(len(demo_sets), len(queries), -1).mean(axis=1)


def calibrate(probs: np.ndarray, p_cf: np.ndarray) -> np.ndarray:
    """Contextually calibrated label distributions: ``p / p_cf``, renormalised per row.

    Args:
        probs: ``[n, n_labels]`` label distributions.
        p_cf: ``[n_labels]`` (one for all rows) or ``[n, n_labels]`` content-free distributions.
    """
    p = np.asarray(probs, dtype=np.float64)
    cf = np.asarray(p_cf, dtype=np.float64)
    if p.ndim != 2 or cf.shape not in (p.shape[1:], p.shape):
        raise DataError(f"p_cf must have shape {p.shape[1:]} or {p.shape}, got {cf.shape}.")
    if (cf <= 0).any():
        raise DataError("Content-free probabilities must be positive to divide by.")
    w = p / cf
    return w / w.sum(axis=-1, keepdims=True)
