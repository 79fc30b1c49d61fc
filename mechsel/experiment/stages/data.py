"""``data/<task>``: the task's candidate, dev and test subsets (a source stage: always read)."""

from __future__ import annotations

from typing import Any

import pandas as pd

__all__ = ["data_stage"]


def data_stage(ctx: Any) -> dict[str, Any]:
    """Outputs ``examples`` (task, subset, position, example_id, text, label, n_references) and
    ``fingerprint`` (hash of the three subsets: a change in the data recomputes everything below)."""
    task = ctx.params["task"]
    splits = ctx.resources.splits(task)
    rows = []
    for subset, examples in (("candidate", splits.pool), ("dev", splits.dev), ("test", splits.test)):
        for pos, e in enumerate(examples):
            rows.append({"task": task, "subset": subset, "position": pos, "example_id": str(e.id), "text": e.text(),
                         "label": -1 if e.label is None else int(e.label), "n_references": len(e.references)})
    return {"examples": pd.DataFrame(rows), "fingerprint": splits.data_hash}
