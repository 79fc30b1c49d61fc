"""Scores: accuracy, macro-F1, corpus BLEU (sacrebleu), ROUGE-L (rouge-score), bootstrap CIs.

Generation metrics take several references per hypothesis (E2E). BLEU is sacrebleu's corpus BLEU
with reference streams padded by ``None`` where an example has fewer references (sacrebleu's
convention for variable reference counts). ROUGE-L is rouge-score's F-measure against the best
matching reference (``score_multi``), averaged over examples, with its default tokeniser and
Porter stemming on (the E2E challenge's setting), reported in [0, 1].
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from mechsel.errors import ConfigError, DataError

__all__ = [
    "accuracy",
    "macro_f1",
    "bleu",
    "bleu_statistics",
    "bleu_from_statistics",
    "sentence_bleu",
    "rouge_l",
    "rouge_l_scores",
    "bootstrap_ci",
    "METRIC_RANGES",
]

METRIC_RANGES: dict[str, tuple[float, float]] = {
    "accuracy": (0.0, 1.0),
    "macro_f1": (0.0, 1.0),
    "rouge_l": (0.0, 1.0),
    "bleu": (0.0, 100.0),
    "gold_prob": (0.0, 1.0),
}
"""The range each bounded test-set metric can take (intervals of means and differences are kept
inside it; equivalence margins are stated as a fraction of it)."""


def _pair(pred: Sequence[int] | np.ndarray, gold: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, g = np.asarray(pred), np.asarray(gold)
    if p.shape != g.shape or p.ndim != 1:
        raise DataError(f"Predictions {p.shape} and gold labels {g.shape} must be 1-D arrays of the same length.")
    if p.size == 0:
        raise DataError("No predictions to score.")
    return p, g


def accuracy(pred: Sequence[int] | np.ndarray, gold: Sequence[int] | np.ndarray) -> float:
    """Fraction of predictions equal to the gold label."""
    p, g = _pair(pred, gold)
    return float((p == g).mean())


def macro_f1(pred: Sequence[int] | np.ndarray, gold: Sequence[int] | np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Unweighted mean over ``labels`` (default: those in gold or pred) of per-label F1.

    A label with no true and no predicted instance is skipped; one with predictions or gold
    instances but no true positives has F1 = 0 (scikit-learn's ``f1_score(average="macro")``).
    """
    p, g = _pair(pred, gold)
    classes = np.unique(np.concatenate([p, g])) if labels is None else np.asarray(labels)
    f1s = []
    for c in classes:
        tp = np.sum((p == c) & (g == c))
        fp = np.sum((p == c) & (g != c))
        fn = np.sum((p != c) & (g == c))
        denom = 2 * tp + fp + fn
        f1s.append(0.0 if denom == 0 else 2 * tp / denom)
    return float(np.mean(f1s))


def _references(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> list[list[str]]:
    if len(hyps) != len(refs):
        raise DataError(f"{len(hyps)} hypotheses but {len(refs)} reference lists; give one list of references per hypothesis.")
    if not hyps:
        raise DataError("No hypotheses to score.")
    out = []
    for i, r in enumerate(refs):
        if isinstance(r, str):
            raise DataError(f"References of example {i} must be a list of strings, got the string {r!r}; wrap it: [{r!r}].")
        if not r:
            raise DataError(f"Example {i} has no reference.")
        out.append(list(r))
    return out


def _streams(refs_l: list[list[str]]) -> list[list[str | None]]:
    n_streams = max(len(r) for r in refs_l)
    return [[r[s] if s < len(r) else None for r in refs_l] for s in range(n_streams)]


def bleu(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Corpus BLEU (sacrebleu defaults, 0–100) of ``hyps`` against several references each."""
    refs_l = _references(hyps, refs)
    import sacrebleu

    # sacrebleu annotates references as str only, but takes None-padded streams (see module docstring).
    return float(sacrebleu.corpus_bleu(list(hyps), _streams(refs_l)).score)  # pyright: ignore[reportArgumentType]


def bleu_statistics(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-sentence BLEU sufficient statistics (sacrebleu's, as its own bootstrap uses them).

    Summing rows of any subset and passing them to :func:`bleu_from_statistics` gives that
    subset's corpus BLEU, so bootstrap resamples cost no re-tokenisation.
    """
    refs_l = _references(hyps, refs)
    from sacrebleu.metrics.bleu import BLEU

    # sacrebleu annotates references as str only, but takes None-padded streams (see module docstring).
    return np.asarray(BLEU()._extract_corpus_statistics(list(hyps), _streams(refs_l)), dtype=np.int64)  # pyright: ignore[reportArgumentType]


def bleu_from_statistics(stats: np.ndarray) -> float:
    """Corpus BLEU (0–100) from summed :func:`bleu_statistics` rows (or the unsummed matrix)."""
    from sacrebleu.metrics.bleu import BLEU

    stats = np.asarray(stats)
    total = stats.sum(axis=0) if stats.ndim == 2 else stats
    return float(BLEU()._compute_score_from_stats(total.tolist()).score)


def sentence_bleu(hyp: str, refs: Sequence[str]) -> float:
    """Smoothed sentence BLEU (sacrebleu ``sentence_bleu``, 0–100) of one hypothesis."""
    import sacrebleu

    return float(sacrebleu.sentence_bleu(hyp, list(_references([hyp], [refs])[0])).score)


def rouge_l_scores(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> np.ndarray:
    """Per-example ROUGE-L F-measure against the best-matching reference."""
    refs_l = _references(hyps, refs)
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return np.array([scorer.score_multi(r, h)["rougeL"].fmeasure for h, r in zip(hyps, refs_l)])


def rouge_l(hyps: Sequence[str], refs: Sequence[Sequence[str]]) -> float:
    """Mean over examples of :func:`rouge_l_scores`."""
    return float(rouge_l_scores(hyps, refs).mean())


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n: int,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of ``statistic(indices)`` over resamples of ``n`` items.

    ``statistic`` receives an index array (with repeats) into the evaluated items, so any metric
    (accuracy, macro-F1, corpus BLEU) can be resampled the same way.
    """
    if n < 1:
        raise DataError("Cannot bootstrap an empty sample.")
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1), got {level}.")
    if n_boot < 1:
        raise ConfigError(f"n_boot must be ≥ 1, got {n_boot}.")
    rng = np.random.default_rng(seed)
    stats = np.array([statistic(rng.integers(0, n, size=n)) for _ in range(n_boot)])
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)
