"""Small helpers shared by the figure builders (filtering tidy frames, labels)."""

from __future__ import annotations

from typing import cast

import pandas as pd

from mechsel.errors import DataError

TEMPLATE = "plotly_white"
PAPER_RHO_BOUND = 0.33


def only(frame: pd.DataFrame, what: str, **filters: object) -> pd.DataFrame:
    """Rows matching every ``column=value`` filter whose column exists; ``None`` values are skipped.

    A column with several values and no filter raises, so a figure never silently mixes tasks.
    """
    out = frame
    for col, val in filters.items():
        if col not in out.columns:
            continue
        if val is None:
            values = out[col].dropna().unique()
            if len(values) > 1:
                raise DataError(
                    f"The {what} frame holds several values of {col!r} ({sorted(map(str, values))}); pass {col}=... to pick one."
                )
            continue
        out = cast(pd.DataFrame, out[out[col] == val])
        if out.empty:
            raise DataError(f"No rows with {col}={val!r} in the {what} frame; it holds {sorted(map(str, frame[col].unique()))}.")
    if out.empty:
        raise DataError(f"The {what} frame is empty: nothing to plot.")
    return out


def suffix(**parts: object) -> str:
    """`` — sst2, accuracy`` from the non-empty parts."""
    vals = [str(v) for v in parts.values() if v is not None and v != ""]
    return f" — {', '.join(vals)}" if vals else ""
