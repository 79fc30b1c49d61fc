"""A group-sequential design for the gain part: add seeds in batches until each line is decided.

A line (task, metric, budget, competing selector against its baseline) is looked at after
``looks[0] < looks[1] < … < looks[K−1]`` paired seeds. At look ``k`` its mean paired difference
``d_k`` and standard error ``se_k`` (:func:`mechsel.analysis.paired.paired_inference`: the
seeds × test-queries bootstrap for accuracy) give three one-sided tests, each with its own
boundary ``c_k`` from an alpha-spending function (Lan & DeMets), so that looking after every batch
and stopping when a test crosses keeps each test's error at most its level:

* **non-superiority** ("no gain", H0: diff ≥ margin) — crosses when the repeated upper bound
  ``d_k + c_k(α) · se_k`` lies below the margin;
* **beats random** (H0: diff ≤ 0) — crosses when ``d_k − c_k(α/L) · se_k > 0``, ``L`` the number
  of lines (Bonferroni over lines, as the claim "no line beats random" needs);
* **worse than random** (H0: diff ≥ 0) — ``d_k + c_k(α/L) · se_k < 0``, reported as a finding.

A line stops at the first look where non-superiority or "beats" crosses; the others go on to
``looks[-1]`` seeds and are then INCONCLUSIVE, with their last repeated bounds.

**Boundaries.** The spending function is ``α(t) = α · t^rho`` with the information fraction
``t_k = looks[k] / looks[-1]`` (``rho = 1``: Pocock-like, early looks spend more; ``rho = 3``:
O'Brien–Fleming-like, the last look is nearly the fixed design). The boundaries are the exact
sequential quantiles of the canonical joint law of the z statistics (``Z_k = S_k / √n_k`` of a
Gaussian random walk, increments independent), computed by Monte Carlo on
:data:`BOUNDARY_PATHS` paths with a fixed seed, so they are reproducible. Test queries shared by
all looks make the real statistics more correlated than the canonical ones, which only lowers the
chance of crossing (Slepian's inequality): the design stays conservative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import numpy as np
import pandas as pd
from scipy import stats as sps

from mechsel.errors import ConfigError

__all__ = ["BOUNDARY_PATHS", "LINE_KEYS", "SequentialDesign", "boundaries", "decide_look", "line_looks", "sequential_looks", "pending"]

BOUNDARY_PATHS = 400_000
"""Monte Carlo paths behind each set of boundaries."""
LINE_KEYS: tuple[str, ...] = ("task", "metric", "budget", "selector", "baseline")
"""What names one line of the design."""


MIN_DECIDING_PAIRS = 10
"""Seeds a look needs before it may decide (below, the seeds × queries standard error and the
normal boundaries are not trusted; the exact sign-flip test of the fixed design applies)."""


@dataclass(frozen=True)
class SequentialDesign:
    """When a line is looked at and how the error is spent over the looks."""

    looks: tuple[int, ...]
    """Paired seeds at each look, increasing; the last is the most a line gets."""
    alpha: float = 0.05
    """Level of each one-sided test over all looks."""
    rho: float = 2.0
    """Exponent of the spending function ``α · t^rho``."""

    def __post_init__(self) -> None:
        if len(self.looks) < 1 or any(b <= a for a, b in zip(self.looks, self.looks[1:])) or self.looks[0] < 2:
            raise ConfigError(f"sequential looks must be increasing seed counts of at least 2, got {list(self.looks)}.")
        if not 0 < self.alpha < 0.5:
            raise ConfigError(f"sequential alpha must lie in (0, 0.5), got {self.alpha}.")
        if not self.rho > 0:
            raise ConfigError(f"sequential rho (spending exponent) must be positive, got {self.rho}.")

    @classmethod
    def of(cls, start: int, batch: int, max_seeds: int, alpha: float = 0.05, rho: float = 2.0) -> SequentialDesign:
        """Looks at ``start``, ``start + batch``, … up to ``max_seeds`` (always included)."""
        if batch < 1 or max_seeds < start:
            raise ConfigError(f"sequential batch must be ≥ 1 and max_seeds ≥ the first look ({start}), got {batch} and {max_seeds}.")
        looks = list(range(start, max_seeds + 1, batch))
        if looks[-1] != max_seeds:
            looks.append(max_seeds)
        return cls(tuple(looks), alpha, rho)

    def spent(self, alpha: float | None = None) -> np.ndarray:
        """Cumulative error spent by each look: ``α · (n_k / n_K)^rho``."""
        a = self.alpha if alpha is None else alpha
        t = np.asarray(self.looks, dtype=np.float64) / self.looks[-1]
        return a * t**self.rho


def boundaries(design: SequentialDesign, alpha: float | None = None) -> np.ndarray:
    """One-sided critical values ``c_k`` of the z statistic at each look (module docstring)."""
    a = design.alpha if alpha is None else alpha
    return np.array(_boundaries(design.looks, float(a), float(design.rho)))


@lru_cache(maxsize=64)
def _boundaries(looks: tuple[int, ...], alpha: float, rho: float) -> tuple[float, ...]:
    n = np.asarray(looks, dtype=np.float64)
    spend = np.diff(np.r_[0.0, alpha * (n / n[-1]) ** rho])
    rng = np.random.default_rng(0x5E9)
    steps = rng.standard_normal((BOUNDARY_PATHS, len(n))) * np.sqrt(np.diff(np.r_[0.0, n]))
    z = np.cumsum(steps, axis=1) / np.sqrt(n)
    alive = np.ones(BOUNDARY_PATHS, dtype=bool)
    out = []
    for k in range(len(n)):
        if k == 0:
            c = float(sps.norm.isf(spend[0]))
        else:
            zk = z[alive, k]
            share = spend[k] * BOUNDARY_PATHS / max(zk.size, 1)
            c = float(np.quantile(zk, 1.0 - share)) if 0 < share < 1 else float("inf")
        out.append(c)
        alive &= z[:, k] < c
    return tuple(out)


def decide_look(
    diff: float, se: float, k: int, design: SequentialDesign, margin: float, n_lines: int, n_pairs: int | None = None
) -> dict[str, float | bool]:
    """The three tests of look ``k`` (0-based) for a line with difference ``diff`` and standard
    error ``se``: the repeated bounds and which tests cross (module docstring). A look on fewer
    than :data:`MIN_DECIDING_PAIRS` seeds reports its bounds but decides nothing (the normal
    boundaries need that many; the fixed design's exact test judges such a line)."""
    c = float(boundaries(design)[k])
    c_line = float(boundaries(design, design.alpha / max(n_lines, 1))[k])
    ok = bool(np.isfinite(diff) and np.isfinite(se) and se > 0 and (n_pairs is None or n_pairs >= MIN_DECIDING_PAIRS))
    finite = bool(np.isfinite(diff) and np.isfinite(se) and se > 0)
    upper = diff + c * se if finite else float("nan")
    lower = diff - c_line * se if finite else float("nan")
    upper_line = diff + c_line * se if finite else float("nan")
    return {
        "boundary": c,
        "boundary_lines": c_line,
        "seq_upper": upper,
        "seq_lower": lower,
        "non_superior": bool(ok and upper < margin),
        "beats": bool(ok and lower > 0.0),
        "worse": bool(ok and upper_line < 0.0),
    }


def line_looks(
    diffs: pd.Series,
    design: SequentialDesign,
    margin: float,
    n_lines: int,
    se_of: Callable[[Sequence[int]], tuple[float, float]],
) -> pd.DataFrame:
    """Every look a line with paired differences ``diffs`` (indexed by seed, in seed order) has
    reached, until its first decision.

    ``se_of(seeds)`` returns the mean difference and standard error on those seeds (the caller
    binds the per-query matrix). Returns one line per look: ``look`` (1-based), ``n_pairs``,
    ``diff``, ``se`` and the columns of :func:`decide_look`, plus ``decision`` (``non_superior``,
    ``beats`` or ``""``) on the look where the line stopped.
    """
    seeds: Sequence[int] = list(diffs.index)
    rows = []
    for k, n in enumerate(design.looks):
        if len(seeds) < n:
            break
        diff, se = se_of(seeds[:n])
        row = {"look": k + 1, "n_pairs": n, "diff": diff, "se": se, **decide_look(diff, se, k, design, margin, n_lines, n)}
        row["decision"] = "beats" if row["beats"] else "non_superior" if row["non_superior"] else ""
        rows.append(row)
        if row["decision"]:
            break
    return pd.DataFrame(rows)


def sequential_looks(
    scores: pd.DataFrame,
    predictions: pd.DataFrame | None,
    lines: pd.DataFrame,
    design: SequentialDesign,
    *,
    margins: dict[str, float],
    n_boot: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """The looks of every line of ``lines`` (columns :data:`LINE_KEYS`) on the scores (and
    per-query predictions) available, seeds taken in increasing order; ``margins`` maps each
    metric to its margin in metric units. One frame: :data:`LINE_KEYS` then :func:`line_looks`'
    columns."""
    from mechsel.analysis.comparison import per_query_tables, query_matrix
    from mechsel.analysis.paired import paired_inference

    keys = ["task", "metric", "budget"]
    per_query = per_query_tables(predictions, scores, keys)
    frames = []
    for _, line in lines.iterrows():
        where = (scores["task"] == line["task"]) & (scores["metric"] == line["metric"]) & (scores["budget"] == line["budget"])
        a = scores[where & (scores["selector"] == line["selector"])].set_index("seed")["score"]
        b = scores[where & (scores["selector"] == line["baseline"])].set_index("seed")["score"]
        common = a.index.intersection(b.index).sort_values()
        diffs = (a.loc[common] - b.loc[common]).astype(float)
        key = (line["task"], line["metric"], line["budget"])

        def se_of(seeds: Sequence[int], diffs: pd.Series = diffs, key: tuple = key, line: pd.Series = line) -> tuple[float, float]:
            d = diffs.loc[list(seeds)].to_numpy()
            m = query_matrix(per_query, key, str(line["selector"]), str(line["baseline"]), pd.Index(list(seeds)), d)
            inf = paired_inference(d, m, n_boot=n_boot, seed=seed, exact_below=0)
            return inf.mean_diff, inf.se

        looks = line_looks(diffs, design, margins[str(line["metric"])], len(lines), se_of)
        if not looks.empty:
            frames.append(looks.assign(**{k: line[k] for k in LINE_KEYS}))
    if not frames:
        return pd.DataFrame(columns=[*LINE_KEYS, "look", "n_pairs", "diff", "se", "decision"])
    out = pd.concat(frames, ignore_index=True)
    return cast(pd.DataFrame, out[[*LINE_KEYS, *[c for c in out.columns if c not in LINE_KEYS]]])


def pending(looks: pd.DataFrame, lines: pd.DataFrame, design: SequentialDesign) -> pd.DataFrame:
    """The lines still undecided, each with ``next_n``: the seeds its next look needs (lines at the
    last look, or decided, are not pending)."""
    rows = []
    for _, line in lines.iterrows():
        mine = looks
        for k in LINE_KEYS:
            mine = cast(pd.DataFrame, mine[mine[k] == line[k]])
        done = len(mine)
        if done and (mine["decision"].iloc[-1] or done >= len(design.looks)):
            continue
        rows.append({**{k: line[k] for k in LINE_KEYS}, "next_n": design.looks[done]})
    return pd.DataFrame(rows, columns=[*LINE_KEYS, "next_n"])
