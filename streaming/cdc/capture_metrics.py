"""The capture's Prometheus metrics (served by `python -m streaming.cdc.capture --metrics-port`)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class CaptureMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.changes = Counter(
            "cdc_capture_changes",
            "Change events sent to Kafka",
            ["table", "op"],
            registry=self.registry,
        )
        self.snapshot_rows = Counter(
            "cdc_capture_snapshot_rows", "Snapshot rows sent to Kafka", registry=self.registry
        )
        self.confirmed_lsn = Gauge(
            "cdc_capture_confirmed_lsn",
            "LSN confirmed to the slot (everything before is in Kafka)",
            registry=self.registry,
        )
        self.inflight = Gauge(
            "cdc_capture_inflight_transactions",
            "Transactions received but not yet acknowledged by Kafka",
            registry=self.registry,
        )
        self.last_commit = Gauge(
            "cdc_capture_last_commit_timestamp_seconds",
            "Commit time of the last streamed transaction",
            registry=self.registry,
        )
