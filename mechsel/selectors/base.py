"""The selector protocol: a candidate pool, a budget k, and a :class:`Selection`.

Two modes:

* **selective annotation** — :meth:`Selector.select` chooses ``k`` examples once from the
  (unlabelled) pool, e.g. the examples to annotate and use as fixed demonstrations;
* **per-query retrieval** — :meth:`Selector.retrieve` chooses up to ``k`` demonstrations for
  each query, from the *annotated* examples only, in prompt order (first demonstration first).

Every selector is a class registered by name in :data:`SELECTORS` with a frozen dataclass
config (``Selector.Config``) whose fields are documented where they are declared and validated in
``__post_init__``. Objects that cannot live in a config (a model-confidence callable, a token
counter) are keyword arguments of the selector's constructor. :func:`get_selector` builds any
selector from its name and parameters.

Each selector describes itself, as class attributes that pipelines read (they keep no lists of
their own): its ``family`` (the group it competes in), what it ``needs`` (pool fields, a
confidence callable, the model; :meth:`Selector.needs_for` when that depends on the config),
which statistics table it ``reads`` (``moments`` or ``sae``), and its protocol, the ``modes``
it supports (``annotate``: a fixed set; ``retrieve``: per-query demonstrations). A new selector
is one module with one registered class: see ``tests/unit/test_selector_plugin.py``.
"""

from __future__ import annotations

import dataclasses
from abc import ABC
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar, cast, get_args

import numpy as np
import pandas as pd
from jaxtyping import Float

from mechsel.errors import ConfigError, DataError, did_you_mean
from mechsel.provenance import hash_texts, library_versions
from mechsel.registry import Registry
from mechsel.serialize import to_dict

__all__ = [
    "Family",
    "Need",
    "POOL_NEEDS",
    "CLASSIFICATION_NEEDS",
    "StatisticsTable",
    "Pool",
    "Queries",
    "Selection",
    "SelectorConfig",
    "Selector",
    "SELECTORS",
    "register_selector",
    "get_selector",
    "selector_names",
]

NeuronSet = frozenset[tuple[int, int]]

Family = Literal[
    "baseline", "activation", "sae", "similarity", "coverage", "uncertainty", "neuron", "internal-relational", "internal-probe"
]
"""The group a selector competes in: the summary compares the baseline with the best run of each
family (``activation`` and ``sae`` read the model's statistics, ``similarity`` retrieves per
query, ``coverage`` covers the pool, ``uncertainty`` reads model confidence, ``neuron`` NeuFS,
``internal-relational`` relates examples through the model's own heads: induction-head
query/key affinity, function-vector-head alignment; ``internal-probe`` predicts quality from
the model's representation with a probe trained on other candidates)."""
FAMILIES: tuple[str, ...] = get_args(Family)
Need = Literal[
    "statistics", "labels", "embeddings", "label_probs", "neuron_sets", "representations", "confidence_fn", "model", "probe_training"
]
"""What a selector reads: a :class:`Pool` field (``statistics``, ``labels``, ``embeddings``,
``label_probs``, ``neuron_sets``, ``representations``), or a constructor argument the caller
builds: ``confidence_fn`` (model confidences given demonstrations,
:func:`mechsel.icl.make_confidence_fn`), ``model`` (the ``HookedTransformer`` itself) or
``probe_training`` (representations and measured quality of candidates outside the pool,
:class:`mechsel.selectors.probe.ProbeTraining`)."""
POOL_NEEDS: tuple[str, ...] = ("statistics", "labels", "embeddings", "label_probs", "neuron_sets", "representations")
"""The needs that are :class:`Pool` fields (checked by :meth:`Selector.select` / ``retrieve``)."""
CLASSIFICATION_NEEDS: frozenset[str] = frozenset({"label_probs", "confidence_fn", "neuron_sets"})
"""Needs that read the model's label distribution, which only classification tasks have."""
StatisticsTable = Literal["moments", "sae"]
"""Which collected statistics a selector's ``pool.statistics`` holds."""


@dataclass(frozen=True, eq=False)
class Pool:
    """The candidate examples a selector chooses from, with whatever each selector needs.

    Only ``ids`` and ``texts`` are required; a selector that needs another field says so when
    it is missing. Arrays are indexed by example *position* (0..n-1), which is also what
    :class:`Selection` indices refer to.
    """

    ids: Sequence[Any]
    """One unique identifier per example (e.g. the dataset's ``idx``)."""
    texts: Sequence[str]
    """The example texts (the input only, without the label)."""
    labels: np.ndarray | Sequence[Any] | None = None
    """Optional gold labels, shape ``[n]`` (used by nothing that selects; kept for analysis)."""
    embeddings: Float[np.ndarray, "n d"] | None = None
    """Optional sentence embeddings (see :func:`mechsel.embeddings.embed_texts`), float, finite."""
    statistics: pd.DataFrame | None = None
    """Optional per-example activation statistics: one row per example position, columns a
    ``(layer, statistic)`` MultiIndex (or tuples), e.g. ``(5, "kurtosis")``. May hold NaN."""
    label_probs: Float[np.ndarray, "n n_labels"] | None = None
    """Optional model label distributions (rows sum to 1) for the uncertainty selectors."""
    neuron_sets: Sequence[NeuronSet] | None = None
    """Optional NeuFS neuron sets (see :func:`mechsel.selectors.neufs.neuron_sets`)."""
    representations: Float[np.ndarray, "n r"] | None = None
    """Optional internal representation per example, e.g. its mean ``hook_mlp_out`` at one layer
    (``collect(..., mean_vectors=True)``), read by the ``probe`` selector; finite."""
    provenance: Mapping[str, Any] = field(default_factory=dict)
    """How the embeddings / statistics / probabilities were produced; copied into selections."""

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        set_("ids", tuple(self.ids))
        set_("texts", tuple(self.texts))
        n = len(self.texts)
        if n == 0:
            raise DataError("The pool is empty: pass at least one example text.")
        if len(self.ids) != n:
            raise DataError(f"Pool has {len(self.ids)} ids but {n} texts; pass one id per text.")
        if len(set(self.ids)) != n:
            raise DataError("Pool ids must be unique; de-duplicate them (or use positions: Pool.from_texts(texts)).")
        bad = [i for i, t in enumerate(self.texts) if not isinstance(t, str)]
        if bad:
            raise DataError(f"Pool texts must be strings; position {bad[0]} holds {type(self.texts[bad[0]]).__name__}.")
        if self.labels is not None:
            set_("labels", np.asarray(self.labels))
            _check_rows("labels", self.labels, n, ndim=1)
        if self.embeddings is not None:
            _check_rows("embeddings", self.embeddings, n, ndim=2)
            if not np.isfinite(self.embeddings).all():
                bad_rows = int((~np.isfinite(self.embeddings)).any(axis=1).sum())
                raise DataError(f"{bad_rows} embedding rows hold NaN or inf; recompute them (or drop those examples).")
        if self.label_probs is not None:
            _check_rows("label_probs", self.label_probs, n, ndim=2)
            p = self.label_probs
            if not np.isfinite(p).all() or (p < -1e-6).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
                raise DataError(
                    "label_probs rows must be finite, non-negative probability distributions that sum to 1; "
                    "apply a softmax over the label logits first."
                )
        if self.representations is not None:
            _check_rows("representations", self.representations, n, ndim=2)
            if not np.isfinite(self.representations).all():
                raise DataError("representations hold NaN or inf; recompute them (or drop those examples).")
        if self.statistics is not None:
            if not isinstance(self.statistics, pd.DataFrame):
                raise DataError(f"statistics must be a pandas DataFrame, got {type(self.statistics).__name__}.")
            if len(self.statistics) != n:
                raise DataError(
                    f"statistics has {len(self.statistics)} rows but the pool has {n} examples; pass one row per example, in pool order."
                )
        if self.neuron_sets is not None:
            set_("neuron_sets", tuple(frozenset(s) for s in self.neuron_sets))
            if len(self.neuron_sets) != n:
                raise DataError(f"neuron_sets has {len(self.neuron_sets)} entries but the pool has {n} examples.")

    @classmethod
    def from_texts(cls, texts: Sequence[str], **fields: Any) -> Pool:
        """A pool whose ids are the positions ``0..n-1``."""
        return cls(ids=tuple(range(len(texts))), texts=tuple(texts), **fields)

    def __len__(self) -> int:
        return len(self.texts)

    def require(self, field_name: str, selector: str) -> Any:
        """Return the named optional field, or raise saying how to provide it."""
        value = getattr(self, field_name)
        if value is None:
            raise DataError(f"Selector {selector!r} needs pool.{field_name}, which is missing. {_HOW_TO[field_name]}")
        return value

    def data_hash(self) -> str:
        """Hash of the pool texts (order-sensitive)."""
        return hash_texts(self.texts)


_HOW_TO = {
    "embeddings": "Compute them with mechsel.embeddings.embed_texts(pool.texts) and pass Pool(..., embeddings=...).",
    "statistics": "Collect per-example activation statistics and pass Pool(..., statistics=<DataFrame with (layer, statistic) columns>).",
    "label_probs": "Pass the model's label distribution for every example as Pool(..., label_probs=<[n, n_labels] array>).",
    "neuron_sets": "Compute them with mechsel.selectors.neufs.neuron_sets(model, prompts, answer_token_ids).",
    "labels": "Pass Pool(..., labels=...).",
    "representations": "Collect them with mechsel.collect(model, texts, mean_vectors=True) and pass one layer's "
    "result.vectors['mean'][:, j] as Pool(..., representations=...).",
}


def _check_rows(name: str, arr: Any, n: int, *, ndim: int) -> None:
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{name} must be a numpy array, got {type(arr).__name__}.")
    if arr.ndim != ndim:
        raise DataError(f"{name} must have {ndim} dimension(s), got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise DataError(
            f"{name} has {arr.shape[0]} rows but the pool has {n} examples; they must be aligned with pool.texts "
            f"(recompute {name} for exactly these texts, in this order)."
        )


@dataclass(frozen=True, eq=False)
class Queries:
    """The test queries of a retrieval call: texts, embeddings, or both (same length)."""

    texts: Sequence[str] | None = None
    """Query texts (needed by BM25, by duplicate skipping and by a token budget)."""
    embeddings: Float[np.ndarray, "m d"] | None = None
    """Query embeddings from the same embedder as ``pool.embeddings`` (needed by kNN)."""

    def __post_init__(self) -> None:
        if self.texts is None and self.embeddings is None:
            raise DataError("Queries need texts, embeddings, or both.")
        if self.texts is not None:
            object.__setattr__(self, "texts", tuple(self.texts))
        if self.embeddings is not None and self.texts is not None and len(self.texts) != self.embeddings.shape[0]:
            raise DataError(f"{len(self.texts)} query texts but {self.embeddings.shape[0]} query embeddings; align them.")

    def __len__(self) -> int:
        if self.texts is not None:
            return len(self.texts)
        assert self.embeddings is not None  # one of the two is set (checked on construction)
        return int(self.embeddings.shape[0])

    @classmethod
    def coerce(cls, queries: Queries | Pool | np.ndarray | Sequence[str]) -> Queries:
        """Accept a :class:`Queries`, a :class:`Pool`, an embedding array or a list of texts."""
        if isinstance(queries, Queries):
            return queries
        if isinstance(queries, Pool):
            return cls(texts=queries.texts, embeddings=queries.embeddings)
        if isinstance(queries, np.ndarray):
            if queries.ndim != 2:
                raise DataError(f"Query embeddings must be a 2-D array [m, d], got shape {queries.shape}.")
            return cls(embeddings=queries.astype(np.float32, copy=False))
        if isinstance(queries, str):
            raise DataError("Pass a list of query texts, not a single string.")
        return cls(texts=tuple(queries))


@dataclass(frozen=True)
class Selection:
    """What a selector chose: pool positions in order, one score per pick, and how."""

    indices: tuple[int, ...]
    """Pool positions, in selection order (retrieval: prompt order, most relevant last)."""
    ids: tuple[Any, ...]
    """``pool.ids`` of the chosen examples, aligned with ``indices``."""
    scores: tuple[float, ...]
    """The selector's score of each pick when it was made (meaning documented per selector)."""
    selector: str
    """Registry name of the selector."""
    config: Mapping[str, Any]
    """The selector's config as a dict."""
    provenance: Mapping[str, Any]
    """Pool data hash and provenance, library versions, and selector-specific details."""
    seed: int
    """The seed passed to ``select`` / ``retrieve``."""

    def __len__(self) -> int:
        return len(self.indices)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "indices": list(self.indices),
            "ids": [i if isinstance(i, (int, str, float)) else str(i) for i in self.ids],
            "scores": [float(s) for s in self.scores],
            "selector": self.selector,
            "config": dict(self.config),
            "provenance": dict(self.provenance),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class SelectorConfig:
    """Base of all selector configs (frozen dataclasses; validated in ``__post_init__``)."""

    def to_dict(self) -> dict[str, Any]:
        """The fields as plain data (:func:`mechsel.serialize.to_dict`)."""
        return to_dict(self)


SelectionResult = tuple[Any, Any, dict[str, Any]]
"""What ``Selector._select`` returns: indices, scores, and extra provenance."""


C = TypeVar("C", bound=SelectorConfig)
"""A selector's config class (``Selector[ActivationConfig]`` reads ``self.config`` typed)."""


class Selector(ABC, Generic[C]):  # noqa: B024 (abstract by convention: subclasses implement _select or _retrieve)
    """Base class: validates inputs and invariants and packages results as :class:`Selection`.

    Subclasses name their config class twice, once as the type parameter (``class
    KnnSelector(Selector[KnnConfig])``, so ``self.config`` is typed) and once as the ``Config``
    class attribute (read at run time), set the class attributes below and implement ``_select``
    and/or ``_retrieve``.
    """

    name: ClassVar[str] = ""
    """Registered name (set by :func:`register_selector`)."""
    Config: ClassVar[type[SelectorConfig]] = SelectorConfig
    """Its frozen config dataclass."""
    modes: ClassVar[frozenset[str]] = frozenset({"annotate"})
    """Its protocol: ``annotate`` (:meth:`select`, a fixed set), ``retrieve`` (:meth:`retrieve`, per query), or both."""
    needs: ClassVar[tuple[Need, ...]] = ()
    """What it reads (see :data:`Need`); :meth:`needs_for` refines it per config."""
    family: ClassVar[Family] = "coverage"
    """The group it competes in (see :data:`Family`)."""
    reads: ClassVar[StatisticsTable | None] = None
    """Which statistics table ``pool.statistics`` must hold (``None``: it reads none)."""
    layer_field: ClassVar[str | None] = None
    """The config field naming the layer(s) of that table it reads (an int, several, ``"all"``
    or ``None``); a pipeline range-checks it against the model, normalises negative indices and
    records it beside the run's results (``None``: it names no layer)."""
    statistic_field: ClassVar[str | None] = None
    """The config field naming the statistic(s) of that table it reads; a pipeline checks them
    against what it collects and records them beside the run's results."""
    choice_fields: ClassVar[tuple[str, ...]] = ()
    """The config fields it can choose itself from the candidates' measured quality
    (:meth:`choose_on_dev`; ``choose_statistic: true`` in an experiment run); empty: it cannot."""
    choice_placeholder: ClassVar[Mapping[str, Any]] = {}
    """Values of :attr:`choice_fields` that let a config with a choice still to make be
    validated before any data exists (the real values come from :meth:`choose_on_dev`)."""

    @classmethod
    def configure(cls, params: Mapping[str, Any]) -> SelectorConfig:
        """Its typed :attr:`Config` from plain parameters (e.g. a YAML mapping; lists become
        tuples). Unknown names and invalid values raise :class:`~mechsel.errors.ConfigError`
        naming the valid parameters."""
        return cls._build_config({k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})

    @classmethod
    def check_parameter_names(cls, params: Mapping[str, Any]) -> None:
        """Raise :class:`~mechsel.errors.ConfigError` for the first name in ``params`` that is not
        a :attr:`Config` field: ``<name> is not a parameter of selector '<selector>'.`` with a
        did-you-mean and the valid names (a caller may prefix where the name was written)."""
        valid = [f.name for f in dataclasses.fields(cls.Config)]
        unknown = [p for p in params if p not in valid]
        if unknown:
            raise ConfigError(
                f"{unknown[0]} is not a parameter of selector {cls.name!r}.{did_you_mean(unknown[0], valid)} "
                f"Valid parameters: {', '.join(valid) or '(none)'}."
            )

    @classmethod
    def _build_config(cls, params: Mapping[str, Any]) -> SelectorConfig:
        cls.check_parameter_names(params)
        try:
            return cls.Config(**params)
        except TypeError as err:
            valid = ", ".join(f.name for f in dataclasses.fields(cls.Config))
            raise ConfigError(f"Bad parameters for selector {cls.name!r}: {err}. Valid parameters: {valid}.") from None

    @classmethod
    def cell(cls, params: Mapping[str, Any]) -> tuple[Any, Any]:
        """``(layer, statistic)`` as ``params`` name them (``None`` where the selector names none
        or the run leaves it to the default): what a pipeline records beside the run's results."""
        layer = params.get(cls.layer_field) if cls.layer_field else None
        statistic = params.get(cls.statistic_field) if cls.statistic_field else None
        return layer, statistic

    @classmethod
    def choose_on_dev(
        cls, params: Mapping[str, Any], statistics: pd.DataFrame, quality: Float[np.ndarray, " n"]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``params`` completed with the :attr:`choice_fields` chosen from the candidates'
        ``statistics`` (its :attr:`reads` table) and measured ``quality``, and a record of the
        choice for the results; only for selectors with :attr:`choice_fields`."""
        raise ConfigError(f"Selector {cls.name!r} chooses nothing on the dev quality (it declares no choice_fields).")

    @classmethod
    def needs_for(cls, params: Mapping[str, Any]) -> frozenset[str]:
        """What it reads when configured with ``params`` (default: :attr:`needs`)."""
        return frozenset(cls.needs)

    @classmethod
    def feature_settings(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Settings of the features it needs that its config carries (e.g. NeuFS's ``top_n``), by
        feature setting name; a pipeline computes each feature once with the union of these."""
        return {}

    config: C
    """The selector's settings (an instance of :attr:`Config`)."""

    def __init__(self, config: C | None = None, **params: Any) -> None:
        if config is not None and params:
            raise ConfigError(f"Pass either a config or parameters to {type(self).__name__}, not both.")
        if config is None:
            config = cast(C, self._build_config(params))
        if not isinstance(config, self.Config):
            raise ConfigError(f"{type(self).__name__} takes a {self.Config.__name__}, got {type(config).__name__}.")
        self.config = config

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config!r})"

    # ----------------------------------------------------------------- selective annotation
    def select(self, pool: Pool, k: int, *, seed: int) -> Selection:
        """Choose ``k`` distinct pool examples (selective annotation)."""
        self._check_mode("annotate", "select")
        _check_k(k, len(pool), "pool")
        self._require(pool)
        rng = np.random.default_rng(seed)
        indices, scores, extra = self._select(pool, k, rng)
        indices = [int(i) for i in indices]
        if len(indices) != k or len(set(indices)) != k or not all(0 <= i < len(pool) for i in indices):
            raise AssertionError(f"Selector {self.name!r} broke its invariants (k={k}): {indices}")  # a bug, not bad input
        return self._package(pool, indices, scores, extra, seed, self._base_provenance(pool))

    def _select(self, pool: Pool, k: int, rng: np.random.Generator) -> SelectionResult:
        raise NotImplementedError

    # ----------------------------------------------------------------- per-query retrieval
    def retrieve(
        self,
        pool: Pool,
        annotated_indices: Sequence[int] | np.ndarray,
        queries: Queries | Pool | np.ndarray | Sequence[str],
        k: int,
        *,
        seed: int,
    ) -> list[Selection]:
        """For each query, choose up to ``k`` demonstrations among ``annotated_indices`` only.

        Fewer than ``k`` are returned for a query only when duplicates of the query or a token
        budget rule candidates out. Indices come in prompt order (most relevant last).
        """
        self._check_mode("retrieve", "retrieve")
        annotated = np.asarray(list(annotated_indices), dtype=np.int64)
        if annotated.size == 0:
            raise DataError("annotated_indices is empty: retrieval chooses demonstrations from annotated examples only.")
        if len(np.unique(annotated)) != annotated.size:
            raise DataError("annotated_indices holds duplicates; pass each annotated pool position once.")
        if annotated.min() < 0 or annotated.max() >= len(pool):
            raise DataError(f"annotated_indices must be pool positions in [0, {len(pool)}); got {annotated.min()}..{annotated.max()}.")
        _check_k(k, annotated.size, "annotated set")
        self._require(pool)
        q = Queries.coerce(queries)
        allowed = set(annotated.tolist())
        base = self._base_provenance(pool)
        out = []
        for qi, (indices, scores, extra) in enumerate(self._retrieve(pool, annotated, q, k, seed)):
            indices = [int(i) for i in indices]
            if len(indices) > k or len(set(indices)) != len(indices) or not allowed.issuperset(indices):
                raise AssertionError(f"Selector {self.name!r} broke retrieval invariants for query {qi}: {indices}")
            out.append(self._package(pool, indices, scores, {"query": qi, **extra}, seed, base))
        return out

    def _retrieve(self, pool: Pool, annotated: np.ndarray, queries: Queries, k: int, seed: int) -> list[SelectionResult]:
        raise NotImplementedError

    # ----------------------------------------------------------------- helpers
    def _require(self, pool: Pool) -> None:
        for f in sorted(self.needs_for(self.config.to_dict())):
            if f in POOL_NEEDS:
                pool.require(f, self.name)

    def _check_mode(self, mode: str, method: str) -> None:
        if mode not in self.modes:
            other = "retrieve(pool, annotated_indices, queries, k, seed=...)" if mode == "annotate" else "select(pool, k, seed=...)"
            kinds = {"annotate": "selective-annotation", "retrieve": "retrieval"}
            raise ConfigError(
                f"Selector {self.name!r} does not support {method}(): it is a "
                f"{' and '.join(kinds[m] for m in sorted(self.modes))} selector. Use {other} instead."
            )

    @staticmethod
    def _base_provenance(pool: Pool) -> dict[str, Any]:
        return {"pool_data_hash": pool.data_hash(), "pool_size": len(pool), "pool": dict(pool.provenance), "versions": library_versions()}

    def _package(self, pool: Pool, indices: list[int], scores: Any, extra: dict[str, Any], seed: int, base: dict[str, Any]) -> Selection:
        scores = tuple(float(s) for s in scores)
        if len(scores) != len(indices):
            raise AssertionError(f"Selector {self.name!r} returned {len(scores)} scores for {len(indices)} picks.")
        prov = {**base, **extra}
        return Selection(
            indices=tuple(indices),
            ids=tuple(pool.ids[i] for i in indices),
            scores=scores,
            selector=self.name,
            config=self.config.to_dict(),
            provenance=prov,
            seed=int(seed),
        )


def _check_k(k: Any, n: int, what: str) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ConfigError(f"k must be an integer, got {type(k).__name__}: {k!r}.")
    if k <= 0:
        raise ConfigError(f"k must be at least 1, got {k}. Ask for a positive number of examples.")
    if k > n:
        raise ConfigError(f"k={k} exceeds the {what} size ({n}); ask for at most {n} examples or enlarge the {what}.")


SELECTORS: Registry[type[Selector[Any]]] = Registry("selector")
"""Selector classes by name. Populated by the modules imported in ``mechsel/selectors/__init__.py``."""


S = TypeVar("S", bound="type[Selector[Any]]")


def register_selector(name: str) -> Callable[[S], S]:
    """Class decorator: set ``cls.name`` and register the class in :data:`SELECTORS`."""

    def decorator(cls: S) -> S:
        if cls.family not in FAMILIES:
            raise ConfigError(f"Selector {name!r} declares family {cls.family!r}; valid families: {', '.join(FAMILIES)}.")
        unknown = [n for n in cls.needs if n not in get_args(Need)]
        if unknown:
            raise ConfigError(f"Selector {name!r} declares unknown needs {unknown}; valid needs: {', '.join(get_args(Need))}.")
        cls.name = name
        SELECTORS.add(name, cls)
        return cls

    return decorator


def get_selector(name: str, **params: Any) -> Selector[Any]:
    """Build the selector registered as ``name``; ``params`` are its config fields and, for
    model-dependent selectors, its callables (e.g. ``confidence_fn``).

    Unknown names and unknown parameters raise :class:`~mechsel.errors.ConfigError` listing
    the valid ones.
    """
    return SELECTORS.get(name)(**params)


def selector_names() -> list[str]:
    """Registered selector names."""
    return SELECTORS.names()
