"""Cosine geometry shared by the embedding-based selectors: centring, unit rows, blocked kNN.

Nothing here materialises an ``n × n`` matrix: similarities are computed ``block`` rows at a
time (``block × n`` float32), so memory stays at a few tens of MB at ``n = 10,000``.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

from mechsel.errors import ConfigError

__all__ = ["unit_rows", "knn", "BLOCK_ELEMENTS"]

BLOCK_ELEMENTS = 2**21
"""Similarities computed at once (``block × n``): 8 MiB of float32 plus 16 MiB of partition indices."""


def unit_rows(embeddings: Float[np.ndarray, "n d"], *, center: bool) -> Float[np.ndarray, "n d"]:
    """Float32 copy of ``embeddings``, optionally mean-centred, with rows scaled to unit norm.

    Centring subtracts the pool mean before cosine, as the vote-k/IDEAL reference code does to
    every sentence embedding. A row of norm zero stays zero (cosine 0 with everything), as in
    ``sklearn.metrics.pairwise.cosine_similarity``.
    """
    x = np.array(embeddings, dtype=np.float32)  # a copy, modified in place
    if center:
        x -= x.mean(axis=0, keepdims=True)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    x /= norms
    return x


def knn(unit: Float[np.ndarray, "n d"], k: int, *, block: int | None = None) -> tuple[Int[np.ndarray, "n k"], Float[np.ndarray, "n k"]]:
    """The ``k`` most cosine-similar *other* rows of every row of ``unit`` (unit-norm rows).

    Returns ``(neighbours, similarities)``, each ``[n, k]``, sorted by decreasing similarity
    (ties by increasing index). An example is never its own neighbour, even when a duplicate
    of it exists (the duplicate is a neighbour with similarity 1). ``block`` rows are scored at
    once (default: ``BLOCK_ELEMENTS // n``).
    """
    n = unit.shape[0]
    block = block or max(1, BLOCK_ELEMENTS // n)
    if not 1 <= k < n:
        raise ConfigError(f"The kNN graph needs 1 <= k < n, got k={k} with n={n}; lower the number of neighbours.")
    nbrs = np.empty((n, k), dtype=np.int64)
    sims = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        stop = min(start + block, n)
        neg = unit[start:stop] @ unit.T  # [b, n] float32, negated in place below
        np.negative(neg, out=neg)
        neg[np.arange(stop - start), np.arange(start, stop)] = np.inf
        part = np.argpartition(neg, k - 1, axis=1)[:, :k]
        part_neg = np.take_along_axis(neg, part, axis=1)
        del neg
        order = np.lexsort((part, part_neg), axis=1)
        nbrs[start:stop] = np.take_along_axis(part, order, axis=1)
        sims[start:stop] = -np.take_along_axis(part_neg, order, axis=1)
    return nbrs, sims
