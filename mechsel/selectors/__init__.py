"""Demonstration selectors behind one protocol (see :mod:`mechsel.selectors.base`).

Every selector module registers itself in :data:`SELECTORS` when imported; this is the one
place that imports them all:

==================  ==================================================  =====================
name                what                                                 needs
==================  ==================================================  =====================
random              uniform sampling (annotation and retrieval)          —
activation          top/bottom-k by activation statistics                pool.statistics
knn                 KATE nearest neighbours of each query (retrieval)    embeddings
bm25                Okapi BM25 (retrieval)                               query texts
diversity           greedy farthest-first                                embeddings
kmeans              nearest to each k-means centroid                     embeddings
facility_location   greedy maximum facility location (lazy, exact)       embeddings
sub_sa              Sub-SA graph cut                                     embeddings
fast_votek          fast vote-k                                          embeddings
votek               two-stage vote-k                                     embeddings, confidence_fn
ideal               IDEAL influence maximisation                         embeddings
least_confidence    least confidence (iterative as in vote-k's code)     confidence_fn or label_probs
margin, entropy     output uncertainty                                   pool.label_probs
neufs               NeuFS neuron-set clustering                          pool.neuron_sets
sae_topk            top/bottom-k by an SAE latent statistic              pool.statistics (SAE)
sae_diversity       farthest-first in SAE latent-profile space           pool.statistics (SAE)
sae_coverage        coverage of task-relevant SAE latents                pool.statistics (SAE), labels
qk_affinity         query-candidate cosine through induction heads'      model (query texts)
                    W_Q / W_K (Kato et al.; retrieval)
fv_alignment        1-shot head output aligned with the task's           model, labels
                    function vector (Todd et al.), with diversity
probe               top-k by a ridge probe of the representation,        pool.representations,
                    trained on other candidates' measured quality        probe_training
==================  ==================================================  =====================
"""

from mechsel.selectors import (  # noqa: F401  (imported for registration)
    activation,
    coverage,
    ideal,
    neufs,
    probe,
    relational,
    retrieval,
    sae,
    uncertainty,
    uniform,
    votek,
)
from mechsel.selectors.activation import choose_statistic
from mechsel.selectors.base import (
    CLASSIFICATION_NEEDS,
    POOL_NEEDS,
    SELECTORS,
    Family,
    Need,
    Pool,
    Queries,
    Selection,
    Selector,
    SelectorConfig,
    StatisticsTable,
    get_selector,
    register_selector,
    selector_names,
)
from mechsel.selectors.neufs import neuron_sets
from mechsel.selectors.probe import ProbeConfig, ProbeSelector, ProbeTraining
from mechsel.selectors.relational import FVAlignmentConfig, FVAlignmentSelector, QKAffinityConfig, QKAffinitySelector

__all__ = [
    "ProbeConfig",
    "ProbeSelector",
    "ProbeTraining",
    "SELECTORS",
    "CLASSIFICATION_NEEDS",
    "POOL_NEEDS",
    "Family",
    "Need",
    "StatisticsTable",
    "register_selector",
    "Pool",
    "Queries",
    "Selection",
    "Selector",
    "SelectorConfig",
    "get_selector",
    "selector_names",
    "choose_statistic",
    "neuron_sets",
    "QKAffinityConfig",
    "QKAffinitySelector",
    "FVAlignmentConfig",
    "FVAlignmentSelector",
]
