"""Optional raw-activation shards: the exact activations the statistics were computed from.

Layout of a shard folder (written through :func:`mechsel.paths.atomic_dir`, so an interrupted
run leaves no folder at all)::

    index.json                 provenance, hook, layers, d_model, dtype, shard list
    shard_00000.safetensors    "layer_{L}": [tokens, d] for each layer, "row": [tokens] int64,
    ...                        "position": [tokens] int64 (token index inside its sequence)

Rows refer to the rows of the :class:`~mechsel.stats.result.StatsResult` of the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from jaxtyping import Float, Int
from torch import Tensor

from mechsel.errors import ConfigError, DataError
from mechsel.paths import atomic_dir
from mechsel.provenance import Provenance

__all__ = ["ShardWriter", "open_shard_writer", "read_shard_index", "load_activations"]

_INDEX = "index.json"


class ShardWriter:
    """Collects one batch's selected activations per layer and writes them as one shard."""

    def __init__(self, folder: Path, layers: Sequence[int]) -> None:
        self.folder = folder
        self.layers = tuple(layers)
        self.shards: list[dict[str, Any]] = []
        self._pending: dict[str, Tensor] = {}
        self.d_model: int | None = None
        self.dtype: str | None = None

    def add(self, layer: int, acts: Float[Tensor, "tokens d"]) -> None:
        self._pending[f"layer_{layer}"] = acts.detach().to("cpu").contiguous()
        self.d_model = int(acts.shape[-1])
        self.dtype = str(acts.dtype).removeprefix("torch.")

    def flush(self, rows: Int[np.ndarray, " tokens"], positions: Int[np.ndarray, " tokens"]) -> None:
        """Write the pending batch (all layers must have been added)."""
        from safetensors.torch import save_file

        missing = [layer for layer in self.layers if f"layer_{layer}" not in self._pending]
        if missing:
            raise RuntimeError(f"Layers {missing} produced no activations in this batch.")
        name = f"shard_{len(self.shards):05d}.safetensors"
        tensors = dict(self._pending)
        tensors["row"] = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.int64))
        tensors["position"] = torch.from_numpy(np.ascontiguousarray(positions, dtype=np.int64))
        save_file(tensors, str(self.folder / name))
        self.shards.append({"file": name, "n_tokens": int(len(rows))})
        self._pending = {}

    def write_index(self, provenance: Provenance, hook: str) -> None:
        index = {
            "format": "mechsel.activation_shards",
            "version": 1,
            "hook": hook,
            "layers": list(self.layers),
            "d_model": self.d_model,
            "dtype": self.dtype,
            "shards": self.shards,
            "provenance": provenance.to_dict(),
        }
        (self.folder / _INDEX).write_text(json.dumps(index, indent=2, default=str))


@contextlib.contextmanager
def open_shard_writer(target: str | os.PathLike[str], layers: Sequence[int]) -> Iterator[ShardWriter]:
    """A :class:`ShardWriter` on a temporary folder renamed onto ``target`` when the block succeeds.

    An existing shard folder (one with ``index.json``) is replaced; any other non-empty folder is
    refused rather than deleted.
    """
    target = Path(target)
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / _INDEX).is_file())):
        raise ConfigError(
            f"save_activations={str(target)!r} exists and is not an activation-shard folder; choose a "
            f"new folder (it is created) or remove this one."
        )
    with atomic_dir(target) as tmp:
        yield ShardWriter(tmp, layers)


def read_shard_index(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``index.json`` of a shard folder."""
    path = Path(folder) / _INDEX
    if not path.is_file():
        raise DataError(f"{folder} has no {_INDEX}; write shards with collect(..., save_activations=folder).")
    return json.loads(path.read_text())


def load_activations(
    folder: str | os.PathLike[str], layer: int
) -> tuple[Float[Tensor, "tokens d"], Int[Tensor, " tokens"], Int[Tensor, " tokens"]]:
    """All saved activations of ``layer``: ``(acts [tokens, d], row [tokens], position [tokens])``."""
    from safetensors.torch import load_file

    index = read_shard_index(folder)
    if layer not in index["layers"]:
        raise ConfigError(f"Layer {layer} was not saved; the shards hold layers {index['layers']}.")
    parts = [load_file(str(Path(folder) / s["file"])) for s in index["shards"]]
    return (
        torch.cat([p[f"layer_{layer}"] for p in parts]),
        torch.cat([p["row"] for p in parts]),
        torch.cat([p["position"] for p in parts]),
    )
