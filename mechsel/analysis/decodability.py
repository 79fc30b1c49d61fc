"""Is demonstration quality linearly decodable from a representation? Cross-validated ridge probes.

For one representation of the candidates (e.g. the mean of ``hook_mlp_out`` over each
candidate's tokens at one layer and mask) and their measured quality, :func:`decode` fits ridge
regressions out of fold and reports how much of the quality's variance they predict:

* **Folds.** ``n_folds`` folds of the candidates, shuffled by ``seed``; every representation
  and baseline of one analysis gets the same folds (:func:`make_folds`), so their out-of-fold
  predictions are paired candidate by candidate.
* **Fit.** Within each training fold the features are z-scored (training mean and standard
  deviation; a constant feature stays 0), and ridge with an unpenalised intercept is fit. Its
  penalty ``alpha`` is chosen *inside* the training fold (nested) by exact leave-one-out error
  over :data:`ALPHAS`, which is closed form for ridge (the hat matrix's diagonal), the rule
  scikit-learn's ``RidgeCV`` uses. The held-out fold is never seen by the fit, its scaling or
  its penalty.
* **Score.** Out-of-fold R² = 1 − Σ(y − ŷ)² / Σ(y − ȳ)² over all candidates (ȳ: the mean of
  all of them). It is at most 1 and can be negative (worse than predicting the mean).
* **Interval.** Percentile bootstrap over candidates of the out-of-fold R² (the predictions
  held fixed; the bootstrap does not refit), so it stays at or below 1; every row of one
  analysis uses the same resamples.
* **p-value.** Quality is permuted *within strata* (by default the candidates' labels, so a
  representation that only knows the label is not credited), every fold is refit on each
  permutation, and p = (1 + #{permuted R² ≥ observed}) / (1 + n_perm): exact under the null of
  no association beyond the strata, at any n. All permutations share each fold's one SVD of the
  training features, so a permutation costs a few matrix products.

:func:`decodability_table` runs this per representation beside baselines fed the same folds and
reports each representation's gain in out-of-fold R² over the best baseline, with a paired
bootstrap interval. :func:`residualise` removes label, length and slot from quality first, when
asked (or when they explain most of its variance).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from jaxtyping import Float, Int

from mechsel.analysis.correlation import bootstrap_indices
from mechsel.errors import DataError

__all__ = [
    "ALPHAS",
    "Decoding",
    "make_folds",
    "ridge_fit",
    "loo_alpha",
    "out_of_fold",
    "oof_r2",
    "decode",
    "residualise",
    "covariate_matrix",
    "bag_of_words",
    "decodability_table",
]

ALPHAS: Float[np.ndarray, " a"] = np.logspace(-2, 6, 17)
"""The ridge penalties searched (on z-scored features), 10⁻² … 10⁶ in half-decades."""


def make_folds(n: int, n_folds: int = 5, seed: int = 0) -> Int[np.ndarray, " n"]:
    """Fold index (0..n_folds-1) of each of ``n`` candidates: a seeded shuffle cut into folds of
    sizes differing by at most one."""
    if n_folds < 2:
        raise DataError(f"decodability needs at least 2 folds, got {n_folds}.")
    if n < 2 * n_folds:
        raise DataError(f"decodability needs at least {2 * n_folds} candidates for {n_folds} folds, got {n}.")
    folds = np.empty(n, dtype=np.int64)
    folds[np.random.default_rng([seed, 0xF01D]).permutation(n)] = np.arange(n) % n_folds
    return folds


def _standardise(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = train.mean(axis=0)
    sd = train.std(axis=0)
    sd = np.where(sd > 1e-12 * np.maximum(1.0, np.abs(mean)), sd, np.inf)  # constant features become 0
    return (train - mean) / sd, (test - mean) / sd


def ridge_fit(x: Float[np.ndarray, "n d"], y: Float[np.ndarray, " n"], alpha: float) -> tuple[np.ndarray, float]:
    """Ridge regression with an unpenalised intercept: ``(coef [d], intercept)`` minimising
    ``Σ(y − b − x·w)² + alpha·|w|²`` (scikit-learn's ``Ridge(alpha)``), via the SVD of the
    centred features."""
    xm, ym = x.mean(axis=0), float(y.mean())
    u, s, vt = np.linalg.svd(x - xm, full_matrices=False)
    coef = vt.T @ ((s / (s**2 + alpha)) * (u.T @ (y - ym)))
    return coef, ym - float(xm @ coef)


@dataclass(frozen=True)
class _Fold:
    train: np.ndarray
    test: np.ndarray
    u: np.ndarray
    s: np.ndarray
    test_proj: np.ndarray  # the held-out rows in the training SVD's basis (V^T coordinates)


def _prepare(x: np.ndarray, folds: np.ndarray) -> list[_Fold]:
    out = []
    for f in range(int(folds.max()) + 1):
        train, test = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        xtr, xte = _standardise(x[train], x[test])
        xm = xtr.mean(axis=0)
        u, s, vt = np.linalg.svd(xtr - xm, full_matrices=False)
        keep = s > 1e-10 * max(1.0, float(s[0]) if s.size else 1.0)
        out.append(_Fold(train, test, u[:, keep], s[keep], (xte - xm) @ vt[keep].T))
    return out


def _loo_errors(u: np.ndarray, s: np.ndarray, yc: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Leave-one-out squared error summed over rows, ``[len(alphas), columns of yc]``, of ridge
    with an intercept on centred features ``u diag(s) v^T`` and centred targets ``yc``."""
    n = u.shape[0]
    uty = u.T @ yc  # [r, P]
    shrink = s[None, :] ** 2 / (s[None, :] ** 2 + alphas[:, None])  # [A, r]
    lev = 1.0 / n + (u**2) @ shrink.T  # [n, A]: the hat matrix's diagonal, intercept included
    errors = np.empty((len(alphas), yc.shape[1]))
    for a in range(len(alphas)):
        resid = yc - u @ (shrink[a][:, None] * uty)
        errors[a] = ((resid / (1.0 - lev[:, a : a + 1])) ** 2).sum(axis=0)
    return errors


def loo_alpha(x: Float[np.ndarray, "n d"], y: Float[np.ndarray, " n"], alphas: Sequence[float] = tuple(ALPHAS)) -> float:
    """The penalty of ``alphas`` with the smallest exact leave-one-out squared error of
    :func:`ridge_fit` on ``x`` as given (ties: the first)."""
    a = np.asarray(alphas, dtype=np.float64)
    u, s, _ = np.linalg.svd(x - x.mean(axis=0), full_matrices=False)
    return float(a[int(np.argmin(_loo_errors(u, s, (y - y.mean())[:, None], a)[:, 0]))])


def _oof_many(prepared: list[_Fold], ys: np.ndarray, alphas: np.ndarray) -> np.ndarray:
    """Out-of-fold predictions ``[n, P]`` for each column of ``ys`` ``[n, P]``."""
    pred = np.empty_like(ys)
    for fold in prepared:
        ytr = ys[fold.train]
        ym = ytr.mean(axis=0)
        yc = ytr - ym
        best = np.argmin(_loo_errors(fold.u, fold.s, yc, alphas), axis=0)  # [P]
        uty = fold.u.T @ yc  # [r, P]
        gain = fold.s[:, None] / (fold.s[:, None] ** 2 + alphas[best][None, :])  # [r, P]
        pred[fold.test] = fold.test_proj @ (gain * uty) + ym
    return pred


def out_of_fold(
    x: Float[np.ndarray, "n d"], y: Float[np.ndarray, " n"], folds: Int[np.ndarray, " n"], alphas: Sequence[float] = tuple(ALPHAS)
) -> Float[np.ndarray, " n"]:
    """Each candidate's prediction by the ridge fit on the other folds (features z-scored and
    ``alpha`` chosen by leave-one-out on that training part only)."""
    x, y = _check(x, y)
    return _oof_many(_prepare(x, np.asarray(folds)), y[:, None], np.asarray(alphas, dtype=np.float64))[:, 0]


def oof_r2(y: np.ndarray, pred: np.ndarray) -> float:
    """1 − Σ(y − pred)² / Σ(y − ȳ)² (NaN when ``y`` is constant)."""
    ss = float(((y - y.mean()) ** 2).sum())
    return float("nan") if ss == 0 else 1.0 - float(((y - pred) ** 2).sum()) / ss


def _r2_columns(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    ss = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    return 1.0 - ((y - pred) ** 2).sum(axis=0) / ss


def _check(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"decodability needs features [n, d] and quality [n]; got {x.shape} and {y.shape}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError("decodability: features and quality must be finite; drop the candidates with NaN first.")
    return x, y


def _permutations(y: np.ndarray, strata: np.ndarray, n_perm: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty((len(y), n_perm))
    groups = [np.flatnonzero(strata == g) for g in np.unique(strata)]
    for p in range(n_perm):
        col = y.copy()
        for idx in groups:
            col[idx] = y[rng.permutation(idx)]
        out[:, p] = col
    return out


@dataclass(frozen=True)
class Decoding:
    """What :func:`decode` found for one representation."""

    r2: float
    """Out-of-fold R² of the ridge probe."""
    ci_low: float
    """Lower end of its percentile-bootstrap interval (over candidates)."""
    ci_high: float
    """Upper end (at most 1)."""
    p_value: float
    """Permutation p of R² under quality permuted within strata (exact, ≥ 1 / (1 + n_perm))."""
    n: int
    """Candidates."""
    n_features: int
    """Columns of the representation."""
    predictions: np.ndarray
    """The out-of-fold predictions, aligned with the candidates."""


def decode(
    x: Float[np.ndarray, "n d"],
    y: Float[np.ndarray, " n"],
    *,
    folds: Int[np.ndarray, " n"] | None = None,
    strata: np.ndarray | None = None,
    n_perm: int = 200,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    alphas: Sequence[float] = tuple(ALPHAS),
) -> Decoding:
    """Out-of-fold R² of ridge from ``x`` to ``y``, its bootstrap interval and permutation p.

    ``folds``: from :func:`make_folds` (default: 5 folds seeded by ``seed``); ``strata``: quality
    is permuted within these groups (default: none, all candidates exchangeable).
    """
    x, y = _check(x, y)
    n = len(y)
    folds = make_folds(n, 5, seed) if folds is None else np.asarray(folds)
    strata = np.zeros(n, dtype=np.int64) if strata is None else np.asarray(strata)
    a = np.asarray(alphas, dtype=np.float64)
    prepared = _prepare(x, folds)
    pred = _oof_many(prepared, y[:, None], a)[:, 0]
    r2 = oof_r2(y, pred)
    rng = np.random.default_rng([seed, 0xDEC0])
    perm_y = _permutations(y, strata, n_perm, rng)
    perm_r2 = _r2_columns(perm_y, _oof_many(prepared, perm_y, a)) if n_perm > 0 else np.array([])
    p = float((1 + np.sum(perm_r2 >= r2 - 1e-12)) / (1 + n_perm)) if n_perm > 0 else float("nan")
    lo, hi = _bootstrap_r2(y, pred, None, n_boot, level, seed)
    return Decoding(r2, lo, hi, p, n, x.shape[1], pred)


def _bootstrap_r2(y: np.ndarray, pred: np.ndarray, other: np.ndarray | None, n_boot: int, level: float, seed: int) -> tuple[float, float]:
    """Percentile interval of R²(pred) − (R²(other) if given) over candidates resampled
    (:func:`~mechsel.analysis.correlation.bootstrap_indices`: the same resamples for every row)."""
    if n_boot < 1:
        return float("nan"), float("nan")
    idx = bootstrap_indices(len(y), n_boot, seed)
    yb = y[idx].T
    stat = _r2_columns(yb, pred[idx].T)
    if other is not None:
        stat = stat - _r2_columns(yb, other[idx].T)
    stat = stat[np.isfinite(stat)]
    if stat.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    return float(np.quantile(stat, tail)), float(np.quantile(stat, 1 - tail))


def covariate_matrix(labels: np.ndarray, n_tokens: np.ndarray, slot: np.ndarray | None = None) -> Float[np.ndarray, "n q"]:
    """Label one-hot (first level dropped), token count and, when given, prompt slot one-hot:
    the baseline a representation must beat, and what :func:`residualise` removes."""
    cols = [np.asarray(n_tokens, dtype=np.float64)[:, None]]
    for v in (labels, slot):
        if v is None:
            continue
        levels = np.unique(v)
        cols += [(np.asarray(v) == lev).astype(np.float64)[:, None] for lev in levels[1:]]
    return np.hstack(cols)


def residualise(y: np.ndarray, covariates: np.ndarray) -> tuple[np.ndarray, float]:
    """``y`` minus its least-squares fit on ``covariates`` (with an intercept), and the R² of
    that fit (in-sample: how much of quality the covariates explain)."""
    design = np.hstack([np.ones((len(y), 1)), covariates])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    ss = float(((y - y.mean()) ** 2).sum())
    return resid, (1.0 - float((resid**2).sum()) / ss) if ss > 0 else float("nan")


def bag_of_words(texts: Sequence[str], min_count: int = 2) -> Float[np.ndarray, "n v"]:
    """Word counts (lower-cased, split on non-letters) of the words in at least ``min_count``
    texts: the bag-of-words baseline."""
    import re

    tokens = [re.findall(r"[a-z0-9']+", t.lower()) for t in texts]
    df: dict[str, int] = {}
    for toks in tokens:
        for w in set(toks):
            df[w] = df.get(w, 0) + 1
    vocab = {w: j for j, w in enumerate(sorted(w for w, c in df.items() if c >= min_count))}
    out = np.zeros((len(texts), max(1, len(vocab))))
    for i, toks in enumerate(tokens):
        for w in toks:
            j = vocab.get(w)
            if j is not None:
                out[i, j] += 1
    return out


def decodability_table(
    representations: Mapping[tuple[Any, ...], np.ndarray],
    quality: Float[np.ndarray, " n"],
    baselines: Mapping[str, np.ndarray],
    *,
    key_names: Sequence[str] = ("representation", "mask", "layer"),
    strata: np.ndarray | None = None,
    n_folds: int = 5,
    n_perm: int = 200,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per representation and one per baseline: out-of-fold R², interval, permutation p;
    for representations also ``gain`` = R² − the best baseline's R², its paired bootstrap
    interval (``gain_low``, ``gain_high``) and that baseline's name. Every row uses the same folds."""
    y = np.asarray(quality, dtype=np.float64)
    folds = make_folds(len(y), n_folds, seed)
    rows = []
    base_fits: dict[str, Decoding] = {}
    for name, x in baselines.items():
        d = decode(x, y, folds=folds, strata=strata, n_perm=n_perm, n_boot=n_boot, level=level, seed=seed)
        base_fits[name] = d
        rows.append({**dict.fromkeys(key_names, None), "kind": "baseline", "baseline_name": name, **_row(d)})
    best = max(base_fits, key=lambda k: base_fits[k].r2) if base_fits else None
    for key, x in representations.items():
        d = decode(x, y, folds=folds, strata=strata, n_perm=n_perm, n_boot=n_boot, level=level, seed=seed)
        row = {**dict(zip(key_names, key)), "kind": "representation", "baseline_name": best, **_row(d)}
        if best is not None:
            lo, hi = _bootstrap_r2(y, d.predictions, base_fits[best].predictions, n_boot, level, seed)
            row.update(gain=d.r2 - base_fits[best].r2, gain_low=lo, gain_high=hi)
        rows.append(row)
    return pd.DataFrame(rows)


def _row(d: Decoding) -> dict[str, float | int]:
    return {"r2": d.r2, "ci_low": d.ci_low, "ci_high": d.ci_high, "p_value": d.p_value, "n": d.n, "n_features": d.n_features}
