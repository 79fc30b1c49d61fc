"""``data/<task>``: the task's candidate, dev and test subsets (a source stage: always read)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from mechsel.errors import ConfigError
from mechsel.experiment.engine import StageContext
from mechsel.tasks.splits import SplitConfig

if TYPE_CHECKING:
    from mechsel.experiment.resources import Resources

__all__ = ["DataParams", "data_stage"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataParams:
    """Settings of ``data/<task>``."""

    task: str
    """The task's name."""
    definition: Mapping[str, Any]
    """The task fields that determine prompts and rows (:meth:`mechsel.tasks.TaskConfig.describe`)."""
    split: SplitConfig
    """How the candidate / dev / test subsets are drawn (sizes, seed, stratification, length filter)."""
    source: str
    """``local`` (the data directory) or ``hub``."""
    splits: Mapping[str, str]
    """The dataset split each subset is drawn from (:meth:`mechsel.tasks.TaskConfig.subset_splits`)."""


def data_stage(ctx: StageContext[DataParams]) -> dict[str, Any]:
    """Outputs ``examples`` (task, subset, position, example_id, text, label, n_references) and
    ``fingerprint`` (hash of the three subsets: a change in the data recomputes everything below).

    The subsets are the shared ones every later stage reads (``ctx.resources.splits``); they must
    have been drawn the way the task's settings ask (sizes, seed, ``stratify``, ``min_words``)."""
    res: Resources = ctx.resources
    task = ctx.params.task
    splits = res.splits(task)
    wanted = ctx.params.split
    if splits.config != wanted:
        raise ConfigError(
            f"The subsets of task {task!r} were drawn with {splits.config}, but tasks[{task}] asks for {wanted}. "
            f"Draw them with TaskSettings.split_config(split_seed) (in Resources.splits) so every setting is honoured."
        )
    logger.info("data %s: drawn from %s", task, splits.origin or "its source")
    rows = []
    for subset, examples in (("candidate", splits.pool), ("dev", splits.dev), ("test", splits.test)):
        for pos, e in enumerate(examples):
            rows.append(
                {
                    "task": task,
                    "subset": subset,
                    "position": pos,
                    "example_id": str(e.id),
                    "text": e.text(),
                    "label": -1 if e.label is None else int(e.label),
                    "n_references": len(e.references),
                }
            )
    return {"examples": pd.DataFrame(rows), "fingerprint": splits.data_hash}
