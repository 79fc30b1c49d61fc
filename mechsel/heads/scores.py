"""``HeadScores``: one number per attention head, with its provenance, and ranking heads by it.

A result holds a ``[n_layers, n_heads]`` float64 array of scores (higher = more of the property),
optionally the standard error of each score over the sequences or prompts it was averaged over,
and, for function-vector scores, every head's mean output (``hook_z`` at the answer position) from
which :func:`~mechsel.heads.function_vectors.task_function_vector` builds the function vector.
Saved as a folder holding ``arrays.npz`` and ``manifest.json`` (provenance, kind, meta), written
atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
from jaxtyping import Float

from mechsel.errors import ConfigError, DataError
from mechsel.paths import atomic_dir
from mechsel.provenance import Provenance

__all__ = ["HeadScoreKind", "HeadScores", "top_heads"]

HeadScoreKind = Literal["induction", "function_vector"]
"""What a score measures: ``induction`` (attention to the token after the current token's earlier
occurrence, :mod:`mechsel.heads.induction`) or ``function_vector`` (average indirect effect on the
gold label, :mod:`mechsel.heads.function_vectors`)."""
HEAD_SCORE_KINDS: tuple[str, ...] = get_args(HeadScoreKind)

_FORMAT = "mechsel.HeadScores"
_VERSION = 1


@dataclass(frozen=True, eq=False)
class HeadScores:
    """A score for every attention head of one model.

    Built by :func:`~mechsel.heads.induction_scores` and
    :func:`~mechsel.heads.function_vector_scores`; rarely constructed by hand.
    """

    scores: Float[np.ndarray, "layer head"]
    """float64 ``[n_layers, n_heads]``; ``scores[L, h]`` is head ``h`` of block ``L``."""
    kind: HeadScoreKind
    """What the scores measure (:data:`HeadScoreKind`)."""
    provenance: Provenance
    """Model, weights, hook, BOS policy, data hash and settings that produced the scores."""
    stderr: Float[np.ndarray, "layer head"] | None = None
    """Standard error of each score over the sequences (induction) or prompts (function vector)
    it averages, float64 ``[n_layers, n_heads]``; ``None`` when only one was used."""
    head_means: Float[np.ndarray, "layer head d_head"] | None = None
    """Function-vector scores only: each head's mean ``hook_z`` at the answer position over the
    clean prompts, float32 ``[n_layers, n_heads, d_head]``; ``None`` for other kinds."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Informative extras (baseline probabilities, number of sequences); JSON-serialisable."""

    def __post_init__(self) -> None:
        if self.kind not in HEAD_SCORE_KINDS:
            raise ConfigError(f"HeadScores.kind must be one of {HEAD_SCORE_KINDS}, got {self.kind!r}.")
        scores = np.array(self.scores, dtype=np.float64)
        if scores.ndim != 2 or 0 in scores.shape:
            raise DataError(f"HeadScores.scores must be a non-empty [n_layers, n_heads] array, got shape {scores.shape}.")
        if not np.isfinite(scores).all():
            raise DataError("HeadScores.scores holds NaN or infinite values; every head needs a finite score.")
        scores.setflags(write=False)
        object.__setattr__(self, "scores", scores)
        if self.stderr is not None:
            stderr = np.array(self.stderr, dtype=np.float64)
            if stderr.shape != scores.shape:
                raise DataError(f"HeadScores.stderr has shape {stderr.shape}; expected {scores.shape} like the scores.")
            stderr.setflags(write=False)
            object.__setattr__(self, "stderr", stderr)
        if self.head_means is not None:
            means = np.array(self.head_means, dtype=np.float32)
            if means.ndim != 3 or means.shape[:2] != scores.shape:
                raise DataError(f"HeadScores.head_means has shape {means.shape}; expected ({scores.shape[0]}, {scores.shape[1]}, d_head).")
            means.setflags(write=False)
            object.__setattr__(self, "head_means", means)
        object.__setattr__(self, "meta", dict(self.meta))

    @property
    def n_layers(self) -> int:
        return int(self.scores.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.scores.shape[1])

    def top(self, n: int) -> list[tuple[int, int]]:
        """The ``n`` highest-scoring heads as ``(layer, head)`` pairs, best first (:func:`top_heads`)."""
        return top_heads(self.scores, n)

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame, one line per head: ``layer``, ``head``, ``score``, ``stderr`` (NaN when
        unknown), ``rank`` (1 = best, as :meth:`top`), ``kind`` and ``model``."""
        n_layers, n_heads = self.scores.shape
        rank = np.empty(self.scores.size, dtype=np.int64)
        rank[_order(self.scores)] = np.arange(1, self.scores.size + 1)
        return pd.DataFrame(
            {
                "layer": np.repeat(np.arange(n_layers), n_heads),
                "head": np.tile(np.arange(n_heads), n_layers),
                "score": self.scores.reshape(-1),
                "stderr": self.stderr.reshape(-1) if self.stderr is not None else np.full(self.scores.size, np.nan),
                "rank": rank,
                "kind": self.kind,
                "model": self.provenance.model_name,
            }
        )

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path/arrays.npz`` and ``path/manifest.json`` atomically; return ``path``."""
        arrays = {"scores": self.scores}
        if self.stderr is not None:
            arrays["stderr"] = self.stderr
        if self.head_means is not None:
            arrays["head_means"] = self.head_means
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "kind": self.kind,
            "shape": list(self.scores.shape),
            "arrays": sorted(arrays),
            "provenance": self.provenance.to_dict(),
            "meta": dict(self.meta),
        }
        target = Path(path)
        with atomic_dir(target) as tmp:
            np.savez(tmp / "arrays.npz", **arrays)  # pyright: ignore[reportArgumentType]  (numpy's stub types **kwds as one array type)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HeadScores:
        """Read scores written by :meth:`save`."""
        path = Path(path)
        manifest_path, arrays_path = path / "manifest.json", path / "arrays.npz"
        if not manifest_path.is_file() or not arrays_path.is_file():
            raise DataError(f"{path} is not saved HeadScores (needs manifest.json and arrays.npz); save one with scores.save(path).")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
            raise DataError(
                f"{path}: unsupported format {manifest.get('format')!r} v{manifest.get('version')}; recompute it with this mechsel."
            )
        with np.load(arrays_path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        missing = sorted(set(manifest["arrays"]) - set(arrays))
        if missing:
            raise DataError(f"{arrays_path} lacks the arrays {missing} its manifest lists; recompute the scores.")
        return cls(
            scores=arrays["scores"],
            kind=manifest["kind"],
            provenance=Provenance.from_dict(manifest["provenance"]),
            stderr=arrays.get("stderr"),
            head_means=arrays.get("head_means"),
            meta=manifest.get("meta", {}),
        )


def _order(scores: np.ndarray) -> np.ndarray:
    """Flat head indices, best score first; ties keep (layer, head) order."""
    return np.argsort(-scores.reshape(-1), kind="stable")


def top_heads(scores: HeadScores | Float[np.ndarray, "layer head"], n: int) -> list[tuple[int, int]]:
    """The ``n`` heads with the highest scores, best first, as ``(layer, head)`` pairs.

    Ties are broken by position: the lower layer, then the lower head index, comes first. Accepts
    a :class:`HeadScores` or a plain ``[n_layers, n_heads]`` array.

    Raises:
        ConfigError: ``n`` is not between 1 and the number of heads.
        DataError: the array is not 2-D or holds NaN.
    """
    arr = scores.scores if isinstance(scores, HeadScores) else np.asarray(scores, dtype=np.float64)
    if arr.ndim != 2:
        raise DataError(f"top_heads needs a [n_layers, n_heads] array of scores, got shape {arr.shape}.")
    if np.isnan(arr).any():
        raise DataError("top_heads got NaN scores, which have no rank; drop or fill them first.")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= arr.size:
        raise ConfigError(f"top_heads needs 1 ≤ n ≤ {arr.size} (the model's {arr.shape[0]}×{arr.shape[1]} heads), got n={n!r}.")
    n_heads = arr.shape[1]
    return [(int(i // n_heads), int(i % n_heads)) for i in _order(arr)[: int(n)]]
