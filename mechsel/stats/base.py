"""The statistic protocol: per-example reductions computed inside the collector's hooks.

A :class:`Reducer` receives, for one layer and one batch, the activations of only the selected
token positions (flattened to ``[tokens, d]``) together with the index of the example group each
token belongs to, and returns one value per group for each statistic it produces. The collector
never keeps more than that batch's selected activations of one layer.

Reducer families are registered by name in :data:`STATISTICS`; each family declares the
statistic names it produces, so ``collect(..., statistics=["mean", "kurtosis"])`` finds the
family that computes them. Families that need extra objects (an SAE per layer) are passed to
``collect`` as instances instead of names.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from jaxtyping import Float, Int
from torch import Tensor

from mechsel.registry import Registry

__all__ = ["Reducer", "STATISTICS"]


@runtime_checkable
class Reducer(Protocol):
    """Computes per-group statistics of one layer's selected activations."""

    family: ClassVar[str]
    """Registry name of the family (e.g. ``"moments"``, ``"sae"``)."""

    def statistic_names(self) -> tuple[str, ...]:
        """Names of the scalar statistics this reducer emits (its keys in :meth:`reduce`)."""
        ...

    def reduce(
        self,
        acts: Float[Tensor, "tokens d"],
        groups: Int[Tensor, " tokens"],
        n_groups: int,
        layer: int,
    ) -> dict[str, Float[Tensor, " n_groups"]]:
        """Return ``{statistic name: float64 tensor of one value per group}``.

        ``groups[t]`` is the group (example occurrence) of token ``t``; every group in
        ``range(n_groups)`` has at least one token.
        """
        ...


STATISTICS: Registry[type] = Registry("statistic family")
"""Reducer classes by family name; instantiate with no arguments unless the family needs some."""
