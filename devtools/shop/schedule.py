"""The synthetic shop's timeline: what will happen (deliveries, database intents), in time
order; things scheduled for the same instant keep the order they were scheduled in."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from datetime import datetime
from typing import Any


class Schedule:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Any]] = []
        self._seq = itertools.count()

    def add(self, at: datetime, item: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), item))

    def due_before(self, until: datetime) -> Iterator[tuple[datetime, Any]]:
        """Take out, in order, everything scheduled before `until`."""
        while self._heap and self._heap[0][0] < until:
            at, _, item = heapq.heappop(self._heap)
            yield at, item

    def clear(self) -> None:
        self._heap.clear()
