"""One small registry per kind of thing (datasets, models, methods, samplers, initialisers).

Modelled on torchvision's ``register_model`` / ``get_model`` / ``list_models``: a decorator
registers a builder under a name, a duplicate name is a programming error, and an unknown name is
a user error that lists the known ones.
"""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from bench.core.errors import BenchError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise BenchError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
