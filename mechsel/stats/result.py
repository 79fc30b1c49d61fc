"""``StatsResult``: per-example, per-layer statistics with their provenance.

One row per example occurrence (a text, or a demo/query segment of a prompt), one column per
layer, one array per statistic. Views: :meth:`StatsResult.array` (``[rows, layers]``),
:meth:`StatsResult.to_frame` (tidy, one value per line) and :meth:`StatsResult.to_wide` (rows ×
``(layer, statistic)`` columns, the layout the selectors read). Saved as a directory holding
``stats.parquet`` (the tidy frame) and ``manifest.json`` (provenance and layout), written
atomically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from mechsel.errors import ConfigError, DataError, ProvenanceMismatchError, did_you_mean
from mechsel.paths import atomic_dir
from mechsel.provenance import Provenance, check_compatible, hash_json

__all__ = ["StatsResult"]

_FORMAT = "mechsel.StatsResult"
_VERSION = 1


@dataclass(frozen=True, eq=False)
class StatsResult:
    """Statistics of ``n`` example occurrences at ``len(layers)`` layers.

    Built by :func:`mechsel.collection.collect`; rarely constructed by hand.
    """

    values: Mapping[str, np.ndarray]
    """``{statistic: float64 array [n, len(layers)]}``."""
    layers: tuple[int, ...]
    """Layer index of each column."""
    example_ids: tuple[Any, ...]
    """Example id of each row (the input index for plain texts, the segment's id in prompts)."""
    prompt_ids: np.ndarray
    """Index of the input (text or prompt) each row came from, int64 ``[n]``."""
    segments: tuple[str, ...]
    """What each row is: ``"text"`` (a plain text), ``"demo"`` or ``"query"`` (prompt segments)."""
    n_tokens: np.ndarray
    """Number of token positions summarised for each row, int64 ``[n]``."""
    provenance: Provenance
    """How the numbers were produced (model, weights, hook, mask, positions, BOS, data hash)."""
    meta: Mapping[str, Any] = field(default_factory=dict)
    """Informative extras that do not change the numbers (timings, batch size)."""
    vectors: Mapping[str, np.ndarray] = field(default_factory=dict)
    """Per-row vectors when asked for (``CollectConfig.mean_vectors``): ``{"mean": float32
    [n, len(layers), d_model]}``, each row's mean activation over its summarised tokens."""

    def __post_init__(self) -> None:
        n, n_layers = len(self.example_ids), len(self.layers)
        object.__setattr__(self, "layers", tuple(int(x) for x in self.layers))
        object.__setattr__(self, "example_ids", tuple(self.example_ids))
        object.__setattr__(self, "segments", tuple(self.segments))
        object.__setattr__(self, "prompt_ids", np.asarray(self.prompt_ids, dtype=np.int64))
        object.__setattr__(self, "n_tokens", np.asarray(self.n_tokens, dtype=np.int64))
        values = {}
        for name, arr in self.values.items():
            arr = np.asarray(arr, dtype=np.float64)
            if arr.shape != (n, n_layers):
                raise DataError(f"Statistic {name!r} has shape {arr.shape}; expected ({n}, {n_layers}) = (rows, layers).")
            arr.setflags(write=False)
            values[name] = arr
        object.__setattr__(self, "values", values)
        for name, arr in self.vectors.items():
            if arr.ndim != 3 or arr.shape[:2] != (n, n_layers):
                raise DataError(f"Vectors {name!r} have shape {arr.shape}; expected ({n}, {n_layers}, d) = (rows, layers, d).")
        if not (len(self.prompt_ids) == len(self.segments) == len(self.n_tokens) == n):
            raise DataError("example_ids, prompt_ids, segments and n_tokens must all have one entry per row.")

    # ---- access -------------------------------------------------------------------------
    @property
    def statistics(self) -> tuple[str, ...]:
        """Names of the statistics held, in computation order."""
        return tuple(self.values)

    def __len__(self) -> int:
        return len(self.example_ids)

    def array(self, statistic: str, layers: Sequence[int] | None = None) -> np.ndarray:
        """``[rows, layers]`` float64 values of ``statistic`` (all layers, or the given ones)."""
        if statistic not in self.values:
            raise ConfigError(
                f"No statistic {statistic!r} in this result.{did_you_mean(statistic, self.statistics)} "
                f"It holds: {', '.join(self.statistics)}."
            )
        arr = self.values[statistic]
        if layers is None:
            return arr.copy()
        missing = [layer for layer in layers if layer not in self.layers]
        if missing:
            raise ConfigError(f"Layers {missing} were not collected; this result has layers {list(self.layers)}.")
        return arr[:, [self.layers.index(layer) for layer in layers]]

    def to_frame(self) -> pd.DataFrame:
        """Tidy frame: one line per (row, layer, statistic) with the mask, positions and hook."""
        n, n_layers = len(self), len(self.layers)
        row = np.repeat(np.arange(n), n_layers)
        base = pd.DataFrame(
            {
                "row": row,
                "example_id": np.asarray(self.example_ids, dtype=object)[row],
                "prompt_id": self.prompt_ids[row],
                "segment": np.asarray(self.segments, dtype=object)[row],
                "n_tokens": self.n_tokens[row],
                "layer": np.tile(np.asarray(self.layers, dtype=np.int64), n),
            }
        )
        parts = [base.assign(statistic=name, value=arr.reshape(-1)) for name, arr in self.values.items()]
        frame = pd.concat(parts, ignore_index=True) if parts else base.assign(statistic=[], value=[])
        prov = self.provenance
        return frame.assign(mask=prov.mask, positions=prov.positions, hook=prov.hook)

    def to_wide(self) -> pd.DataFrame:
        """Rows × ``(layer, statistic)`` MultiIndex columns, indexed by ``example_id``."""
        cols = {(layer, name): arr[:, j] for name, arr in self.values.items() for j, layer in enumerate(self.layers)}
        frame = pd.DataFrame(cols, index=pd.Index(list(self.example_ids), name="example_id"))
        frame.columns = pd.MultiIndex.from_tuples(list(cols), names=["layer", "statistic"])
        return frame.sort_index(axis=1, level=0, sort_remaining=False)

    def check_compatible(self, other: StatsResult, fields: Sequence[str] = Provenance.STRICT_FIELDS) -> None:
        """Raise :class:`~mechsel.errors.ProvenanceMismatchError` naming every differing field."""
        check_compatible(self.provenance, other.provenance, fields, what="statistics results")

    # ---- combining ----------------------------------------------------------------------
    @classmethod
    def concat(cls, results: Sequence[StatsResult]) -> StatsResult:
        """Stack the rows of results computed with the same settings (different examples).

        Prompt ids of later results are shifted so they stay distinct.
        """
        results = list(results)
        if not results:
            raise DataError("StatsResult.concat needs at least one result.")
        first = results[0]
        for other in results[1:]:
            first.check_compatible(other)
            if other.layers != first.layers:
                raise ProvenanceMismatchError(
                    f"Cannot concat results with different layers ({list(first.layers)} vs {list(other.layers)})."
                )
            if other.statistics != first.statistics:
                raise ProvenanceMismatchError(
                    f"Cannot concat results with different statistics ({first.statistics} vs {other.statistics}); "
                    f"collect the same statistics for both."
                )
        offsets = np.cumsum([0] + [int(r.prompt_ids.max(initial=-1)) + 1 for r in results[:-1]])
        prov = first.provenance.replace(data_hash=hash_json([r.provenance.data_hash for r in results]))
        return cls(
            values={name: np.concatenate([r.values[name] for r in results]) for name in first.statistics},
            layers=first.layers,
            example_ids=tuple(e for r in results for e in r.example_ids),
            prompt_ids=np.concatenate([r.prompt_ids + off for r, off in zip(results, offsets)]),
            segments=tuple(s for r in results for s in r.segments),
            n_tokens=np.concatenate([r.n_tokens for r in results]),
            provenance=prov,
            meta={"concat_of": len(results)},
        )

    @classmethod
    def combine(cls, results: Sequence[StatsResult]) -> StatsResult:
        """Join different statistics of the same rows (e.g. moments and SAE statistics)."""
        results = list(results)
        if not results:
            raise DataError("StatsResult.combine needs at least one result.")
        first = results[0]
        values: dict[str, np.ndarray] = dict(first.values)
        extra = dict(first.provenance.extra)
        for other in results[1:]:
            first.check_compatible(other, (*Provenance.STRICT_FIELDS, "data_hash"))
            same_rows = (
                other.example_ids == first.example_ids
                and other.segments == first.segments
                and np.array_equal(other.prompt_ids, first.prompt_ids)
            )
            if not same_rows or other.layers != first.layers:
                raise ProvenanceMismatchError(
                    "Cannot combine results over different rows or layers; combine needs the same "
                    "examples in the same order at the same layers (use concat to add rows)."
                )
            clash = sorted(set(values) & set(other.values))
            if clash:
                raise ConfigError(f"Statistics {clash} appear in more than one result; drop them from all but one.")
            values.update(other.values)
            extra.update({k: v for k, v in other.provenance.extra.items() if k not in extra})
        return cls(
            values=values,
            layers=first.layers,
            example_ids=first.example_ids,
            prompt_ids=first.prompt_ids,
            segments=first.segments,
            n_tokens=first.n_tokens,
            provenance=first.provenance.replace(extra=extra),
            meta=dict(first.meta),
        )

    # ---- persistence --------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``path/stats.parquet`` and ``path/manifest.json`` atomically; return ``path``."""
        ids = list(self.example_ids)
        id_type = "int" if all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in ids) else "str"
        frame = self.to_frame()
        frame["example_id"] = frame["example_id"].astype("int64" if id_type == "int" else str)
        manifest = {
            "format": _FORMAT,
            "version": _VERSION,
            "n_rows": len(self),
            "layers": list(self.layers),
            "statistics": list(self.statistics),
            "example_id_type": id_type,
            "provenance": self.provenance.to_dict(),
            "meta": dict(self.meta),
        }
        target = Path(path)
        with atomic_dir(target) as tmp:
            frame.to_parquet(tmp / "stats.parquet", index=False)
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> StatsResult:
        """Read a result written by :meth:`save`."""
        path = Path(path)
        manifest_path, parquet_path = path / "manifest.json", path / "stats.parquet"
        if not manifest_path.is_file() or not parquet_path.is_file():
            raise DataError(f"{path} is not a saved StatsResult (needs manifest.json and stats.parquet); save one with result.save(path).")
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != _FORMAT or manifest.get("version") != _VERSION:
            raise DataError(
                f"{path}: unsupported format {manifest.get('format')!r} v{manifest.get('version')}; recompute it with this mechsel."
            )
        frame = pd.read_parquet(parquet_path)
        n, layers, stats = manifest["n_rows"], tuple(manifest["layers"]), manifest["statistics"]
        if len(frame) != n * len(layers) * len(stats):
            raise DataError(f"{parquet_path} has {len(frame)} lines; the manifest promises {n}×{len(layers)}×{len(stats)}.")
        values = {}
        for name in stats:
            part = cast(pd.DataFrame, frame[frame["statistic"] == name]).sort_values(["row", "layer"], kind="stable")
            values[name] = part["value"].to_numpy(np.float64).reshape(n, len(layers))
        rows = (
            cast(pd.DataFrame, frame[(frame["statistic"] == stats[0]) & (frame["layer"] == layers[0])]).sort_values("row")
            if stats
            else frame
        )
        ids = rows["example_id"].tolist()
        return cls(
            values=values,
            layers=layers,
            example_ids=tuple(int(e) for e in ids) if manifest["example_id_type"] == "int" else tuple(ids),
            prompt_ids=rows["prompt_id"].to_numpy(np.int64),
            segments=tuple(rows["segment"].tolist()),
            n_tokens=rows["n_tokens"].to_numpy(np.int64),
            provenance=Provenance.from_dict(manifest["provenance"]),
            meta=manifest.get("meta", {}),
        )

    def __repr__(self) -> str:
        p = self.provenance
        return (
            f"StatsResult({len(self)} rows × {len(self.layers)} layers, statistics={list(self.statistics)}, "
            f"model={p.model_name!r}, hook={p.hook!r}, mask={p.mask!r}, positions={p.positions!r})"
        )
