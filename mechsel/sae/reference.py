"""The dataset-level activation statistics an SAE's FVU is measured against.

The field reports an SAE's fraction of variance unexplained against the *dataset* mean:
``FVU = Σ_t ||x_t - x̂_t||² / Σ_t ||x_t - μ||²`` over a set of tokens, ``μ`` their mean. For one
example's tokens the same ratio uses the dataset's per-token variance ``V = mean_t ||x_t - μ||²``
as denominator (``Σ_{t∈example} ||x_t - x̂_t||² / (n_example · V)``), so the dataset FVU is the
token-weighted mean of the examples' FVUs. :class:`ActivationReference` holds ``μ`` and ``V`` of
one layer and says which tokens they came from.

``mechsel train-sae`` measures the reference on its held-out tokens (same format as the
statistics will see, disjoint from the training tokens) and stores it in the SAE's metadata
(``cfg.metadata.mechsel["reference"]``), where :func:`reference_of` finds it. For any other SAE,
measure one with :func:`collect_reference` on the tokens you care about and attach it with
:func:`attach_reference`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from mechsel.errors import ConfigError, DataError

__all__ = ["ActivationReference", "ReferenceAccumulator", "reference_of", "attach_reference", "collect_reference"]


@dataclass(frozen=True)
class ActivationReference:
    """Mean and per-token variance of one layer's activations over a reference set of tokens."""

    mean: tuple[float, ...]
    """``μ``: the mean activation vector (``d_in`` values)."""
    variance: float
    """``V = mean_t ||x_t - μ||²``: the per-token total variance around ``μ``."""
    n_tokens: int
    """Tokens the reference was measured on."""
    source: str
    """Which tokens: e.g. ``"held-out demonstration segments of sst2, ag_news (train-sae)"``."""

    def __post_init__(self) -> None:
        if not self.mean:
            raise ConfigError("An ActivationReference needs a non-empty mean vector.")
        if not (np.isfinite(self.variance) and self.variance > 0):
            raise DataError(f"The reference variance must be a positive number, got {self.variance!r} (constant activations?).")
        if self.n_tokens < 2:
            raise DataError(f"A reference needs at least 2 tokens, got {self.n_tokens}.")

    @classmethod
    def from_acts(cls, acts: Float[Tensor, "tokens d"], source: str) -> ActivationReference:
        """The reference of a block of activations."""
        acc = ReferenceAccumulator()
        acc.add(acts)
        return acc.result(source)

    def mean_tensor(self, device: Any = "cpu") -> Float[Tensor, " d"]:
        """``μ`` as a float64 tensor."""
        return torch.tensor(self.mean, dtype=torch.float64, device=device)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (stored in SAE metadata)."""
        return {"mean": list(self.mean), "variance": self.variance, "n_tokens": self.n_tokens, "source": self.source}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ActivationReference:
        try:
            return cls(tuple(float(v) for v in data["mean"]), float(data["variance"]), int(data["n_tokens"]), str(data["source"]))
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(f"A stored activation reference is malformed ({err!r}); expected mean, variance, n_tokens, source.") from None


class ReferenceAccumulator:
    """Streaming ``Σx``, ``Σ||x||²`` and the token count, in float64, for an :class:`ActivationReference`."""

    def __init__(self) -> None:
        self.total: Tensor | None = None
        self.squares = 0.0
        self.n = 0

    def add(self, acts: Float[Tensor, "tokens d"]) -> None:
        x = acts.detach().to("cpu", torch.float64)
        self.total = x.sum(0) if self.total is None else self.total + x.sum(0)
        self.squares += float(x.pow(2).sum())
        self.n += int(x.shape[0])

    def result(self, source: str) -> ActivationReference:
        if self.total is None or self.n < 2:
            raise DataError(f"A reference needs at least 2 tokens; got {self.n}.")
        mean = self.total / self.n
        variance = self.squares / self.n - float(mean.pow(2).sum())
        return ActivationReference(tuple(mean.tolist()), variance, self.n, source)


def reference_of(sae: Any) -> ActivationReference | None:
    """The reference stored in ``sae``'s metadata (``mechsel train-sae`` stores one), else ``None``."""
    meta = getattr(getattr(sae, "cfg", None), "metadata", None)
    info = meta.get("mechsel") if meta is not None and hasattr(meta, "get") else None
    data = info.get("reference") if isinstance(info, Mapping) else None
    return ActivationReference.from_dict(data) if isinstance(data, Mapping) else None


def attach_reference(sae: Any, reference: ActivationReference) -> Any:
    """Store ``reference`` in ``sae``'s metadata (in place; saved with the SAE) and return ``sae``."""
    if len(reference.mean) != sae.cfg.d_in:
        raise ConfigError(f"The reference has {len(reference.mean)} dimensions but the SAE's d_in is {sae.cfg.d_in}; wrong layer or hook.")
    meta = sae.cfg.metadata
    info = dict(meta.get("mechsel") or {}) if hasattr(meta, "get") else {}
    info["reference"] = reference.to_dict()
    meta.mechsel = info
    return sae


def collect_reference(model: Any, inputs: Sequence[Any], config: Any, *, source: str) -> dict[int, ActivationReference]:
    """``{layer: reference}`` over exactly the tokens ``collect(model, inputs, config)`` summarises.

    Args:
        model: a TransformerLens ``HookedTransformer``.
        inputs: texts or segmented prompts.
        config: a :class:`~mechsel.collection.CollectConfig` (its layers, hook, mask, positions,
            BOS and template policy).
        source: a description of the tokens, recorded in each reference.
    """
    from mechsel.collection.selected import iter_selected

    accs: dict[int, ReferenceAccumulator] = {}
    for block in iter_selected(model, inputs, config):
        for layer, acts in block.items():
            accs.setdefault(layer, ReferenceAccumulator()).add(acts)
    return {layer: acc.result(source) for layer, acc in sorted(accs.items())}
