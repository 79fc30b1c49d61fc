"""Per-example statistics: the reducer protocol, the moment families, and the result object."""

from mechsel.stats.base import STATISTICS, Reducer
from mechsel.stats.moments import DEFAULT_MOMENTS, MOMENT_NAMES, TOKEN_MOMENT_NAMES, Moments, TokenMoments
from mechsel.stats.result import StatsResult

__all__ = [
    "STATISTICS",
    "Reducer",
    "DEFAULT_MOMENTS",
    "MOMENT_NAMES",
    "TOKEN_MOMENT_NAMES",
    "Moments",
    "TokenMoments",
    "StatsResult",
]
