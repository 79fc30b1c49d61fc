"""Head finding: induction heads and function-vector heads, scored per model and cached.

* :func:`induction_scores` — attention of every head to the token after the current token's
  earlier occurrence, on repeated random tokens (:mod:`mechsel.heads.induction`).
* :func:`function_vector_scores` — every head's average indirect effect on the gold label of a
  classification task when its clean mean output is patched into prompts with shuffled labels
  (Todd et al. 2024; :mod:`mechsel.heads.function_vectors`), and :func:`task_function_vector`,
  the sum of the top heads' mean outputs through ``W_O``.
* :class:`HeadScores` holds the ``[n_layers, n_heads]`` scores with their provenance;
  :meth:`HeadScores.top` / :func:`top_heads` rank heads, :meth:`HeadScores.to_frame` gives the
  tidy frame :func:`mechsel.plots.heads.head_scores_heatmap` draws.

Both scorers cache their result under ``cache_dir()/heads`` keyed by the model's weight
fingerprint and their settings (:mod:`mechsel.heads.cache`)::

    from mechsel.heads import induction_scores, function_vector_scores, task_function_vector
    induction = induction_scores(model)                     # InductionConfig() defaults
    best = induction.top(5)                                 # [(layer, head), ...], best first
    fv = function_vector_scores(model, "sst2", examples)    # labelled examples of the task
    vector = task_function_vector(model, fv, n=10)          # [d_model]
"""

from mechsel.heads.cache import cached_scores, scores_folder
from mechsel.heads.function_vectors import (
    FunctionVectorConfig,
    FVMetric,
    FVPrompts,
    answer_probs,
    build_fv_prompts,
    function_vector_scores,
    head_means,
    indirect_effects,
    task_function_vector,
)
from mechsel.heads.induction import InductionConfig, induction_scores, induction_stripe, repeated_random_tokens
from mechsel.heads.patching import patch_head_outputs, record_head_outputs, z_hook
from mechsel.heads.scores import HeadScoreKind, HeadScores, top_heads

__all__ = [
    "HeadScoreKind",
    "HeadScores",
    "top_heads",
    "InductionConfig",
    "induction_scores",
    "induction_stripe",
    "repeated_random_tokens",
    "FVMetric",
    "FunctionVectorConfig",
    "FVPrompts",
    "build_fv_prompts",
    "head_means",
    "answer_probs",
    "indirect_effects",
    "function_vector_scores",
    "task_function_vector",
    "patch_head_outputs",
    "record_head_outputs",
    "z_hook",
    "cached_scores",
    "scores_folder",
]
