"""The in-context-learning engine: label scoring, generation, example quality, evaluation.

Pipeline: a task's examples (:mod:`mechsel.tasks`) → prompts → :class:`ICLRunner` (the model
bound to the task) → label log-probabilities (:class:`LabelScorer`, shared-prefix KV reuse,
answer positions only) or greedy continuations (:func:`greedy_generate`) → per-pair scores →
example quality (:func:`quality_matrix`) or a selection's test score (:func:`evaluate`).
"""

from mechsel.icl.calibration import CONTENT_FREE_INPUTS, calibrate, content_free_distribution
from mechsel.icl.evaluate import DemoSpec, EvalResult, evaluate, label_probabilities, make_confidence_fn, resolve_demo_sets
from mechsel.icl.generation import Generation, GenerationConfig, greedy_generate
from mechsel.icl.metrics import accuracy, bleu, bootstrap_ci, macro_f1, rouge_l, rouge_l_scores, sentence_bleu
from mechsel.icl.quality import QualityResult, marginal_gain, quality_matrix, quality_table
from mechsel.icl.runner import ICLRunner, PairMetric, pair_scores
from mechsel.icl.scoring import LabelScorer, ScoringConfig, label_distribution, naive_label_logprobs

__all__ = [
    "CONTENT_FREE_INPUTS",
    "calibrate",
    "content_free_distribution",
    "DemoSpec",
    "EvalResult",
    "evaluate",
    "label_probabilities",
    "make_confidence_fn",
    "resolve_demo_sets",
    "Generation",
    "GenerationConfig",
    "greedy_generate",
    "accuracy",
    "bleu",
    "bootstrap_ci",
    "macro_f1",
    "rouge_l",
    "rouge_l_scores",
    "sentence_bleu",
    "QualityResult",
    "marginal_gain",
    "quality_matrix",
    "quality_table",
    "ICLRunner",
    "PairMetric",
    "pair_scores",
    "LabelScorer",
    "ScoringConfig",
    "label_distribution",
    "naive_label_logprobs",
]
