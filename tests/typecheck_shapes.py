"""The run-time type checker used under pytest: checks jaxtyping array annotations only.

``pyproject.toml`` installs it through jaxtyping's import hook for the ``mechsel`` package, so
every function's tensor shapes and dtypes are checked in tests. Other annotations (``Literal``
choices, ``str`` paths, ...) are left to mechsel's own validation, so the tests see exactly the
teaching errors users see instead of a generic type-check failure.
"""

from __future__ import annotations

import re
import types

from beartype import beartype

_ARRAY_ANNOTATION = re.compile(
    r"\b(Float|Float16|Float32|Float64|BFloat16|Int|Int8|Int16|Int32|Int64|UInt|UInt8|Bool|"
    r"Shaped|Num|Real|Integer|Inexact|Complex)\["
)


def _is_array_annotation(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else repr(annotation)
    return bool(_ARRAY_ANNOTATION.search(text))


def shapes_only(obj):
    """Type-check ``obj`` with beartype, restricted to its jaxtyping array annotations."""
    if not isinstance(obj, types.FunctionType):
        return obj
    annotations = getattr(obj, "__annotations__", {}) or {}
    kept = {k: v for k, v in annotations.items() if _is_array_annotation(v)}
    if not kept:
        return obj
    clone = types.FunctionType(obj.__code__, obj.__globals__, obj.__name__, obj.__defaults__, obj.__closure__)
    clone.__kwdefaults__ = obj.__kwdefaults__
    clone.__dict__.update(obj.__dict__)
    clone.__qualname__ = obj.__qualname__
    clone.__module__ = obj.__module__
    clone.__doc__ = obj.__doc__
    clone.__annotations__ = kept
    return beartype(clone)
