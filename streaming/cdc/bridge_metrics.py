"""The bridge's Prometheus metrics (served by `python -m streaming.cdc.bridge --metrics-port`):
consumer lag (from librdkafka's statistics), changes, batch latency and size, dead letters,
source-commit-to-raw lag."""

from __future__ import annotations

import json
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

    def record_lag(self, statistics: str) -> None:
        """librdkafka's statistics callback (JSON): each partition's consumer lag."""
        try:
            stats = json.loads(statistics)
        except ValueError:
            return
        for topic, info in (stats.get("topics") or {}).items():
            for partition, pinfo in (info.get("partitions") or {}).items():
                if partition == "-1" or pinfo.get("consumer_lag", -1) < 0:
                    continue
                self.lag.labels(topic, partition).set(pinfo["consumer_lag"])

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
