"""Counters of the job: Beam metrics, mirrored in a process-local tally.

The Beam metrics are what Dataflow shows. The bundle-based DirectRunner (2.77) reports only the
first bundle of each step: its state sampler caches the ScopedState, and with it the metrics
container, of the first bundle it ran. Locally the job therefore prints the process-local
tally, which the DoFns update in the same call (they run in this process on the DirectRunner).
"""

from __future__ import annotations

import threading
from collections import Counter

from apache_beam.metrics import Metrics

NAMESPACE = "raw_stream"
LOCAL_COUNTS: Counter[str] = Counter()
_LOCK = threading.Lock()


class Count:
    def __init__(self, name: str) -> None:
        self.name = name
        self.counter = Metrics.counter(NAMESPACE, name)

    def inc(self, n: int = 1) -> None:
        self.counter.inc(n)
        with _LOCK:
            LOCAL_COUNTS[self.name] += n


def local_counts() -> dict[str, int]:
    with _LOCK:
        return dict(LOCAL_COUNTS)
