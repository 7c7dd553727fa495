"""The bridge's Prometheus metrics (served by `python -m streaming.cdc.bridge --metrics-port`):
consumer lag (from librdkafka's statistics), changes, batch latency and size, dead letters,
source-commit-to-raw lag.

The lag gauge has a series per partition this group member owns, and only those: a partition
revoked or lost in a rebalance loses its series here at once (its new owner reports it), so
``sum by (topic) (cdc_bridge_consumer_lag)`` over every pod counts each partition once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class BridgeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.lag = Gauge(
            "cdc_bridge_consumer_lag",
            "Records behind the partition's end",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.changes = Counter(
            "cdc_bridge_changes", "Raw CDC rows delivered", ["table", "op"], registry=self.registry
        )
        self.dead_letters = Counter(
            "cdc_bridge_dead_letters",
            "Records sent to the dead-letter topic",
            ["topic"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "cdc_bridge_batch_seconds",
            "Sink write + offset commit time per batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "cdc_bridge_batch_rows",
            "Rows per batch",
            buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000),
            registry=self.registry,
        )
        self.commit_lag = Histogram(
            "cdc_bridge_source_to_raw_seconds",
            "Source commit to raw row written",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )

        # partition -> committed offset (-1: none yet), for the partitions this member owns
        self._owned: dict[tuple[str, str], int] = {}

    def own(self, partitions: Iterable[tuple[str, int, int]]) -> None:
        """Partitions assigned to this member, with their committed offsets (-1: none)."""
        for topic, partition, committed in partitions:
            self._owned[(topic, str(partition))] = committed

    def committed(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Offsets this member committed (the lag counts what is not committed)."""
        for (topic, partition), offset in positions.items():
            key = (topic, str(partition))
            if key in self._owned:
                self._owned[key] = offset

    def disown(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Partitions revoked or lost: drop their lag series (no stale value left behind)."""
        for topic, partition in partitions:
            key = (topic, str(partition))
            self._owned.pop(key, None)
            with contextlib.suppress(KeyError):
                self.lag.remove(*key)

    def record_lag(self, statistics: str) -> None:
        """librdkafka's statistics callback (JSON): for each owned partition, the records
        between its end and the offset committed. (The statistics also list partitions this
        member no longer owns, and librdkafka's own consumer_lag stays -1 on a partition
        assigned at an explicit offset until this member commits there: a member that took
        a partition over and is stuck would report no lag at all.)"""
        try:
            stats = json.loads(statistics)
        except ValueError:
            return
        for topic, info in (stats.get("topics") or {}).items():
            for partition, pinfo in (info.get("partitions") or {}).items():
                committed = self._owned.get((topic, partition))
                if committed is None:
                    continue
                # read_committed (librdkafka's default) reads up to the last stable offset
                end = pinfo.get("ls_offset", -1)
                end = end if end >= 0 else pinfo.get("hi_offset", -1)
                start = committed if committed >= 0 else pinfo.get("lo_offset", -1)
                if end < 0 or start < 0:
                    continue
                self.lag.labels(topic, partition).set(max(0, end - start))

    def record_batch(
        self, rows: dict[str, list[dict[str, Any]]], count: int, seconds: float, now: float
    ) -> None:
        """A batch written and committed: its size, time, changes and their lag (`now` is
        the wall clock; snapshot rows have no commit to measure from)."""
        self.batch_seconds.observe(seconds)
        self.batch_rows.observe(count)
        for table, table_rows in rows.items():
            for row in table_rows:
                self.changes.labels(table, row["op"]).inc()
                if row["snapshot"] in (None, "false"):
                    source = row["source_ts"].replace(tzinfo=UTC).timestamp()
                    self.commit_lag.observe(max(0.0, now - source))
