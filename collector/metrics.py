"""Prometheus metrics of one collector app (own registry, so tests can run several apps)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "collector_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=r,
        )
        self.request_latency = Histogram(
            "collector_request_duration_seconds",
            "Time to answer a request, by route",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events_accepted = Counter(
            "collector_events_accepted",
            "Events accepted (published or spooled)",
            ["source", "type"],
            registry=r,
        )
        self.events_rejected = Counter(
            "collector_events_rejected",
            "Events rejected, by reason (invalid_event and event_too_large go to the "
            "dead-letter topic; the others are whole requests refused with a 4xx)",
            ["reason"],
            registry=r,
        )
        self.publish_latency = Histogram(
            "collector_publish_latency_seconds",
            "Pub/Sub Publish RPC latency, by topic kind",
            ["topic"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.publish_failures = Counter(
            "collector_publish_failures",
            "Publish RPCs that failed, by gRPC status",
            ["code"],
            registry=r,
        )
        self.events_spooled = Counter(
            "collector_events_spooled",
            "Messages written to the spool (Pub/Sub unavailable)",
            registry=r,
        )
        self.events_replayed = Counter(
            "collector_events_replayed",
            "Spooled messages published by the replay task",
            registry=r,
        )
        self.spool_full = Counter(
            "collector_spool_full",
            "Requests answered 503 because the spool was full",
            registry=r,
        )
        self.spool_quarantined = Counter(
            "collector_spool_quarantined",
            "Spool records moved to the quarantine folder, by reason: refused (Pub/Sub refused "
            "them for good), corrupt (damaged on disk), torn (a write cut short by a crash or "
            "a disk error, never acknowledged), foreign (not a publish request for this "
            "collector's topics)",
            ["reason"],
            registry=r,
        )
        self.spool_quarantine_bytes = Gauge(
            "collector_spool_quarantine_bytes",
            "Bytes in the spool's quarantine folder (they count towards COLLECTOR_SPOOL_MAX_MB)",
            registry=r,
        )
        self.spool_oldest_pending = Gauge(
            "collector_spool_oldest_pending_timestamp_seconds",
            "Unix time the oldest record still to replay was spooled (0 when none). Its last "
            "value outlives the pod: a pod gone with a non-zero value left a stranded spool",
            registry=r,
        )
        self.requests_in_flight = Gauge(
            "collector_requests_in_flight",
            "Event requests being handled now (limit COLLECTOR_MAX_IN_FLIGHT)",
            registry=r,
        )
        self.spool_depth_events = Gauge(
            "collector_spool_depth_events",
            "Messages in the spool waiting for replay",
            registry=r,
        )
        self.spool_depth_bytes = Gauge(
            "collector_spool_depth_bytes",
            "Bytes of spool records waiting for replay (acknowledged events not yet in Pub/Sub)",
            registry=r,
        )
        self.spool_disk_bytes = Gauge(
            "collector_spool_disk_bytes",
            "Bytes the spool occupies on disk, quarantine included (limit applies)",
            registry=r,
        )
        self.replay_lag = Gauge(
            "collector_spool_replay_lag_seconds",
            "Age of the oldest spooled record not yet replayed (0 when the spool is empty)",
            registry=r,
        )
        self.pubsub_available = Gauge(
            "collector_pubsub_available",
            "1 when the last Pub/Sub call succeeded",
            registry=r,
        )

    def watch_spool(
        self,
        depth_events: Callable[[], float],
        depth_bytes: Callable[[], float],
        disk_bytes: Callable[[], float],
        lag_seconds: Callable[[], float],
        quarantine_bytes: Callable[[], float],
        oldest_pending: Callable[[], float],
    ) -> None:
        self.spool_depth_events.set_function(depth_events)
        self.spool_depth_bytes.set_function(depth_bytes)
        self.spool_disk_bytes.set_function(disk_bytes)
        self.replay_lag.set_function(lag_seconds)
        self.spool_quarantine_bytes.set_function(quarantine_bytes)
        self.spool_oldest_pending.set_function(oldest_pending)
