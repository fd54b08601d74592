"""Answers kept for a while: the one way exporters avoid asking an upstream on every scrape.

Every cache takes its clock, so tests step time instead of sleeping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Expiring(Generic[V]):
    """One answer, kept ``seconds`` after it was stored; ``due()`` says when to read it again."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self.value: V | None = None
        self.at = -math.inf

    def due(self, now: float | None = None) -> bool:
        """Nothing stored yet, or stored ``seconds`` ago or more."""
        now = self.clock() if now is None else now
        return self.value is None or now - self.at >= self.seconds

    def set(self, value: Any = True, now: float | None = None) -> None:
        self.value, self.at = value, self.clock() if now is None else now

    def drop(self) -> None:
        self.value, self.at = None, -math.inf


class ExpiringMap(Generic[K, V]):
    """Answers per key (a URL, a container id), each kept ``seconds``; ``keep()`` forgets keys
    that are gone, so the map never outgrows what is still there."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic):
        self.seconds, self.clock = seconds, clock
        self._items: dict[K, tuple[float, V]] = {}  # key -> (expires at, value)

    def fresh(self, key: K, now: float | None = None) -> bool:
        now = self.clock() if now is None else now
        item = self._items.get(key)
        return item is not None and now < item[0]

    def __getitem__(self, key: K) -> V:
        return self._items[key][1]

    def set(self, key: K, value: V, now: float | None = None, seconds: float | None = None) -> V:
        """Store ``value`` for ``seconds`` (default: the map's)."""
        now = self.clock() if now is None else now
        self._items[key] = (now + (self.seconds if seconds is None else seconds), value)
        return value

    def keep(self, keys: Iterable[K]) -> None:
        wanted = set(keys)
        self._items = {k: v for k, v in self._items.items() if k in wanted}

    def __len__(self) -> int:
        return len(self._items)
