"""A string-keyed registry for pluggable parts (selectors, statistics, tasks).

Each kind of part has exactly one registry instance, created in the module that defines the
part's protocol; concrete parts register themselves with the decorator where they are defined,
and the package imports those modules in one visible place (``mechsel/__init__.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from mechsel.errors import ConfigError, did_you_mean

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects of one kind; refuses duplicates and explains unknown names.

    Args:
        kind: what the registry holds, used in error messages (e.g. ``"selector"``).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering an object under ``name``; a second use of a name raises."""

        def decorator(obj: T) -> T:
            self.add(name, obj)
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name``; raises if the name is taken."""
        if not isinstance(name, str) or not name:
            raise ConfigError(f"A {self.kind} name must be a non-empty string, got {name!r}.")
        if name in self._items:
            raise ConfigError(
                f"A {self.kind} named {name!r} is already registered ({self._items[name]!r}). "
                f"Pick another name, or remove the duplicate registration."
            )
        self._items[name] = obj

    def get(self, name: str) -> T:
        """Return the object registered under ``name``; unknown names list the valid ones."""
        try:
            return self._items[name]
        except (KeyError, TypeError):
            raise ConfigError(
                f"Unknown {self.kind} {name!r}.{did_you_mean(str(name), self.names())} Valid {self.kind}s: {', '.join(self.names())}."
            ) from None

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
