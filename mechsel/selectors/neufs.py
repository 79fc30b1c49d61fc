"""NeuFS (Chen et al., ACL 2026, "Neuron-Aware Active Few-Shot Learning for LLMs").

1. :func:`neuron_sets` (forward passes only): for each candidate prompt, predict its answer
   (argmax over the label words' first tokens at the answer position = the prompt's last
   position); each MLP neuron's contribution to that prediction is its activation
   (``blocks.{L}.mlp.hook_post``) times its output weight row dotted with the unembedding column
   of the predicted token; the example's neuron set is the ``top_n`` ``(layer, neuron)`` pairs
   per layer by contribution.
2. :class:`NeuFSSelector`: k-medoids over Jaccard distances between neuron sets (k = number of
   shots, k-means++ initialisation, seeded); in each cluster pick
   ``argmax τ·minmax(|set|) + (1−τ)·(1 − minmax(distance to medoid))`` with τ = 0.5, min-max
   taken within the cluster (a constant column maps to 0).

With a single answer position and ``positive_only=False`` every set has ``top_n × n_layers``
members, so the size term is constant and the pick is the medoid; ``positive_only=True`` keeps
only neurons that push towards the prediction, which makes set sizes informative. Note that
``top_n`` close to ``d_mlp`` (e.g. the paper's 2,000 on a model with ``d_mlp = 2048``) makes
all sets nearly identical; a warning is logged.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from mechsel.collection.stream import pad_right, pad_token_id, stream_batch
from mechsel.errors import ConfigError, DataError
from mechsel.selectors.base import NeuronSet, Pool, SelectionResult, Selector, SelectorConfig, register_selector

__all__ = ["neuron_sets", "NeuFSConfig", "NeuFSSelector", "jaccard_kmedoids", "SetMatrix"]

logger = logging.getLogger(__name__)


def _readout(model: Any, token_ids: torch.Tensor) -> torch.Tensor:
    """``[d_model, b]`` residual directions read out by the given tokens' logits (final norm's
    elementwise weight folded in; centred for LayerNorm models)."""
    r = model.W_U[:, token_ids].float()
    ln = getattr(model, "ln_final", None)
    if ln is not None and hasattr(ln, "w"):
        r = r * ln.w.float()[:, None]
    if str(model.cfg.normalization_type).startswith("LN"):
        r = r - r.mean(dim=0, keepdim=True)
    return r


def neuron_sets(
    model: Any,
    prompts: Sequence[Any],
    answer_token_ids: Sequence[int],
    *,
    top_n: int = 2000,
    batch_size: int = 8,
    positive_only: bool = False,
) -> list[NeuronSet]:
    """NeuFS neuron sets: per prompt, the ``top_n`` neurons per layer by contribution to the predicted answer.

    Args:
        model: a TransformerLens ``HookedTransformer``.
        prompts: :class:`~mechsel.masks.segments.SegmentedPrompt` objects ending right before the
            answer (the last position predicts it).
        answer_token_ids: the first token id of each label word; the prediction is the argmax
            of their logits.
        top_n: neurons kept per layer (paper: 2,000); must be <= ``d_mlp``.
        batch_size: prompts per forward pass (right-padded; see
            :func:`~mechsel.collection.stream.stream_batch`).
        positive_only: drop kept neurons whose contribution is <= 0.

    Returns:
        One ``frozenset`` of ``(layer, neuron)`` per prompt. Contribution of neuron ``n`` in
        layer ``L`` = ``act[L, n] · (W_out[L][n] ⊙ w_post · W_U[:, pred] ⊙ w_final)``, where the
        elementwise norm weights are present only if the model has them (Gemma's post-MLP norm,
        the final norm); the positive per-example RMS factors are left out since they cannot
        change a layer's ranking.
    """
    d_mlp, n_layers = model.cfg.d_mlp, model.cfg.n_layers
    if not 1 <= top_n <= d_mlp:
        raise ConfigError(f"top_n must be in [1, d_mlp={d_mlp}], got {top_n}.")
    if top_n > d_mlp // 2:
        logger.warning("NeuFS top_n=%d keeps most of the %d neurons per layer; neuron sets will barely differ.", top_n, d_mlp)
    answers = torch.tensor([int(t) for t in answer_token_ids], dtype=torch.long)
    if answers.numel() < 1 or answers.min() < 0 or answers.max() >= model.cfg.d_vocab:
        raise DataError(
            f"answer_token_ids must be valid token ids of this model (vocab {model.cfg.d_vocab}), got {list(answer_token_ids)}."
        )
    if not prompts:
        raise DataError("neuron_sets needs at least one prompt.")
    device = next(model.parameters()).device
    w_out = []
    for layer in range(n_layers):
        w = model.blocks[layer].mlp.W_out.float()  # [d_mlp, d_model]
        post = getattr(model.blocks[layer], "ln2_post", None)
        if post is not None and hasattr(post, "w"):
            w = w * post.w.float()[None, :]
        w_out.append(w)
    names = {f"blocks.{layer}.mlp.hook_post": layer for layer in range(n_layers)}
    pad_id = pad_token_id(model)
    out: list[NeuronSet] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start : start + batch_size]
        padded = pad_right(batch, pad_id, [[len(p) - 1] for p in batch])  # the answer position
        rows = torch.arange(len(batch))
        last = torch.tensor([len(p) - 1 for p in batch], dtype=torch.long).to(device)
        acts: dict[int, torch.Tensor] = {}

        def grab(name: str, act: torch.Tensor, acts: dict = acts) -> None:
            acts[names[name]] = act.float()

        with torch.inference_mode():
            resid = stream_batch(model, padded, list(names), grab)  # stops after the last block
            final = model.ln_final(resid[rows.to(device), last][:, None, :])[:, 0]
            logits = final.float() @ model.W_U[:, answers.to(device)].float() + model.b_U[answers.to(device)].float()
            pred = answers.to(device)[logits.argmax(dim=-1)]
            readout = _readout(model, pred)  # [d_model, b]
            layer_sets: list[list[tuple[int, int]]] = [[] for _ in batch]
            for layer in range(n_layers):
                contrib = acts[layer] * (w_out[layer] @ readout).T  # [b, d_mlp]
                vals, idx = contrib.topk(top_n, dim=1)
                for b in range(len(batch)):
                    keep = idx[b][vals[b] > 0] if positive_only else idx[b]
                    layer_sets[b].extend((layer, int(n)) for n in keep.tolist())
        out.extend(frozenset(s) for s in layer_sets)
    return out


class SetMatrix:
    """Neuron sets as a binary CSR matrix, with blocked Jaccard distances."""

    def __init__(self, sets: Sequence[NeuronSet]) -> None:
        pairs = [np.fromiter(chain.from_iterable(s), dtype=np.int64, count=2 * len(s)).reshape(-1, 2) for s in sets]
        flat = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)
        if flat.size and flat.min() < 0:
            raise DataError("Neuron sets hold (layer, neuron) pairs of non-negative integers.")
        stride = int(flat[:, 1].max()) + 1 if flat.size else 1
        features, column = np.unique(flat[:, 0] * stride + flat[:, 1], return_inverse=True)
        indptr = np.concatenate([[0], np.cumsum([p.shape[0] for p in pairs])])
        n_feat = max(1, features.size)
        self.x = sp.csr_matrix((np.ones(column.size, dtype=np.float32), column.ravel(), indptr), shape=(len(sets), n_feat))
        self.x.sort_indices()
        self.sizes = np.diff(self.x.indptr).astype(np.float64)
        self.dense = self.x.nnz > 0.1 * len(sets) * n_feat

    def __len__(self) -> int:
        """Number of sets (rows)."""
        return self.sizes.size

    def distances(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``[len(rows), len(cols)]`` Jaccard distances (two empty sets are at distance 0)."""
        a, b = self.x[rows], self.x[cols]
        inter = (a.toarray() @ b.toarray().T) if self.dense else (a @ b.T).toarray()
        union = self.sizes[rows][:, None] + self.sizes[cols][None, :] - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            d = 1.0 - np.where(union > 0, inter / union, 1.0)
        return np.clip(d, 0.0, 1.0)

    def row_sums(self, members: np.ndarray, block: int) -> np.ndarray:
        """Sum of distances from each member to all members, in row blocks."""
        out = np.empty(members.size)
        for s in range(0, members.size, block):
            out[s : s + block] = self.distances(members[s : s + block], members).sum(axis=1)
        return out


def jaccard_kmedoids(
    sets: SetMatrix, k: int, rng: np.random.Generator, *, max_iter: int = 300, block: int = 1024
) -> tuple[np.ndarray, np.ndarray, int]:
    """k-medoids (alternating assignment / medoid update) with k-means++ initialisation.

    Returns ``(medoids [k], assignment [n], iterations)``. A medoid is always assigned to its own
    cluster; within-cluster ties go to the lowest position.
    """
    n = len(sets)
    all_rows = np.arange(n)
    medoids = [int(rng.integers(n))]
    nearest = sets.distances(all_rows, np.array(medoids))[:, 0]
    for _ in range(k - 1):
        p = nearest**2
        p[medoids] = 0.0
        if p.sum() > 0:
            m = int(rng.choice(n, p=p / p.sum()))
        else:  # fewer distinct sets than k: any unused example
            m = int(rng.choice(np.setdiff1d(all_rows, medoids)))
        medoids.append(m)
        nearest = np.minimum(nearest, sets.distances(all_rows, np.array([m]))[:, 0])
    med = np.array(medoids)
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007 (read after the loop)
        dist = sets.distances(all_rows, med)
        dist[med, np.arange(k)] = -1.0
        assign = dist.argmin(axis=1)
        new = med.copy()
        for c in range(k):
            members = np.flatnonzero(assign == c)
            new[c] = members[int(np.argmin(sets.row_sums(members, block)))]
        if np.array_equal(new, med):
            break
        med = new
    dist = sets.distances(all_rows, med)
    dist[med, np.arange(k)] = -1.0
    return med, dist.argmin(axis=1), it


def _minmax(x: np.ndarray) -> np.ndarray:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else np.zeros_like(x, dtype=np.float64)


@dataclass(frozen=True)
class NeuFSConfig(SelectorConfig):
    """NeuFS selection over ``pool.neuron_sets``."""

    tau: float = 0.5
    """Weight τ of the set-size term against closeness to the medoid (paper: 0.5)."""
    max_iter: int = 300
    """k-medoids iterations at most."""
    block: int = 1024
    """Rows per block when summing within-cluster distances."""
    top_n: int | None = None
    """Neurons per layer kept in each candidate's neuron set when a pipeline computes the sets
    (:func:`neuron_sets`); ``None``: the pipeline's default (a fixed fraction of ``d_mlp``). The
    selection itself reads ``pool.neuron_sets`` as given."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.tau <= 1.0:
            raise ConfigError(f"tau must be in [0, 1], got {self.tau}.")
        if self.max_iter < 1 or self.block < 1:
            raise ConfigError(f"max_iter and block must be >= 1, got {self.max_iter}, {self.block}.")
        if self.top_n is not None and (isinstance(self.top_n, bool) or not isinstance(self.top_n, int) or self.top_n < 1):
            raise ConfigError(f"top_n must be a positive number of neurons per layer or None, got {self.top_n!r}.")


@register_selector("neufs")
class NeuFSSelector(Selector[NeuFSConfig]):
    """One example per Jaccard k-medoids cluster of neuron sets. Score: the τ-weighted pick score."""

    Config = NeuFSConfig
    needs = ("neuron_sets",)
    family = "neuron"

    @classmethod
    def feature_settings(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"neuron_sets_top_n": NeuFSConfig(**params).top_n}

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        cfg = self.config
        sets = SetMatrix(pool.require("neuron_sets", self.name))
        med, assign, iters = jaccard_kmedoids(sets, k, rng, max_iter=cfg.max_iter, block=cfg.block)
        picked, scores = [], []
        for c in range(k):
            members = np.flatnonzero(assign == c)
            d = sets.distances(members, med[c : c + 1])[:, 0]
            s = cfg.tau * _minmax(sets.sizes[members]) + (1 - cfg.tau) * (1 - _minmax(d))
            j = int(np.argmax(s))
            picked.append(int(members[j]))
            scores.append(float(s[j]))
        return picked, scores, {"medoids": med.tolist(), "kmedoids_iterations": iters}
