"""``data/<task>``: the task's candidate, dev and test subsets (a source stage: always read)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from mechsel.errors import ConfigError

__all__ = ["data_stage"]


def data_stage(ctx: Any) -> dict[str, Any]:
    """Outputs ``examples`` (task, subset, position, example_id, text, label, n_references) and
    ``fingerprint`` (hash of the three subsets: a change in the data recomputes everything below).

    The subsets are the shared ones every later stage reads (``ctx.resources.splits``); they must
    have been drawn the way the task's settings ask (sizes, seed, ``stratify``, ``min_words``)."""
    task = ctx.params["task"]
    splits = ctx.resources.splits(task)
    wanted = ctx.resources.task(task).split_config(ctx.params["seed"])
    if splits.config != wanted:
        raise ConfigError(
            f"The subsets of task {task!r} were drawn with {splits.config}, but tasks[{task}] asks for {wanted}. "
            f"Draw them with TaskSettings.split_config(split_seed) (in Resources.splits) so every setting is honoured."
        )
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
