"""Several collector processes in one pod (COLLECTOR_WORKERS): their spool directories, and
the pod's spool gauges whichever worker answers a /metrics scrape.

One Python process uses one core; a pod with N cores runs N workers behind one listening
socket (collector.__main__ forks them). A spool belongs to one process (its flock), so with
N > 1 worker i spools to `COLLECTOR_SPOOL_DIR/worker-<i>`; with one worker the spool is
`COLLECTOR_SPOOL_DIR` itself, as before. `python -m collector.drain` drains a directory and
every `worker-*` directory in it, so scaling the worker count down strands nothing.

A scrape (and the preStop hook, which waits for the spool to drain) reaches one worker. Each
worker writes its spool gauges to `spool-gauges.json` in its own directory every second, and
the spool gauges any worker exports are those of the whole pod: depths and sizes summed,
the replay lag the largest, the oldest pending record the oldest. (Counters and latency
histograms stay per process: see the README, "Several workers per pod".)
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

WORKER_PREFIX = "worker-"
GAUGES_FILE = "spool-gauges.json"
PUBLISH_EVERY_S = 1.0
# a worker whose file is older than this is gone (its last values no longer describe a
# running process; the drain tool or its restart takes care of its spool)
STALE_AFTER_S = 30.0

Gauge = Callable[[], float]
GAUGE_NAMES = ("depth_events", "depth_bytes", "disk_bytes", "lag_s", "quarantine_bytes", "oldest")


def spool_dir(base: Path, worker: int, workers: int) -> Path:
    """The spool directory of worker `worker` (0-based) of `workers`."""
    return base if workers == 1 else base / f"{WORKER_PREFIX}{worker}"


def spool_dirs(base: Path) -> list[Path]:
    """`base` and the worker directories in it: every spool a pod's volume may hold."""
    workers = sorted(
        (p for p in base.glob(f"{WORKER_PREFIX}*") if p.is_dir()),
        key=lambda p: (len(p.name), p.name),
    )
    return [base, *workers]


class PodSpoolGauges:
    """The pod's spool gauges, from this worker's live values and the other workers' files."""

    def __init__(self, own_dir: Path, base: Path, own: tuple[Gauge, ...]) -> None:
        self.own_dir = own_dir
        self.base = base
        self.own = own

    def values(self) -> list[float]:
        return [float(gauge()) for gauge in self.own]

    def publish(self) -> None:
        """Write this worker's values for the others (atomically: a reader sees old or new)."""
        path = self.own_dir / GAUGES_FILE
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps({"at": time.time(), "values": self.values()}))
        os.replace(temporary, path)

    def _others(self) -> list[list[float]]:
        found = []
        now = time.time()
        for directory in spool_dirs(self.base):
            if directory == self.own_dir:
                continue
            try:
                state = json.loads((directory / GAUGES_FILE).read_text())
            except (OSError, ValueError):
                continue
            values = state.get("values")
            if now - float(state.get("at", 0)) < STALE_AFTER_S and len(values) == len(self.own):
                found.append([float(v) for v in values])
        return found

    def gauges(self) -> tuple[Gauge, ...]:
        """The six callables of `Metrics.watch_spool`, for the whole pod."""

        def total(i: int) -> Gauge:
            return lambda: float(self.own[i]()) + sum(v[i] for v in self._others())

        def largest(i: int) -> Gauge:
            return lambda: max([float(self.own[i]()), *(v[i] for v in self._others())])

        def oldest(i: int) -> Gauge:  # 0 means none pending
            def value() -> float:
                found = [t for t in [float(self.own[i]()), *(v[i] for v in self._others())] if t]
                return min(found, default=0.0)

            return value

        return (total(0), total(1), total(2), largest(3), total(4), oldest(5))

    async def publish_forever(self) -> None:
        while True:
            with contextlib.suppress(OSError):
                await asyncio.to_thread(self.publish)
            await asyncio.sleep(PUBLISH_EVERY_S)
