"""The collector's configuration, resolved once from the platform settings.

Everything comes from the typed `platform_core.settings.Settings` (parsed and validated
there); this module applies the collector's own rules: demo write keys locally, none allowed
to be missing on GCP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from platform_core.contract import MAX_EVENT_BYTES as CONTRACT_MAX_EVENT_BYTES
from platform_core.settings import Settings, get_settings

log = logging.getLogger("collector.config")

KIB = 1024
MIB = 1024 * KIB

# --- Limits: what one request may make the collector store or publish -------------------------
# Each is checked before the work it bounds; where, is said next to it. They keep a request's
# memory, messages and spool bytes in proportion to its body (issue 12: a 477 KB batch whose
# 430 KB context was merged into 1,000 events made 430 MB of messages).
#
# Segment's limits: 32 KB per event and per single-event body, 500 KB per batch body. Body
# sizes are checked while reading and inflating (collector.body); the 32 KB per event is
# checked on each event as stamped, after the batch's fields are merged into it
# (collector.ingest._Batch.add, `MAX_STAMPED_EVENT_BYTES` of the contract).
MAX_EVENT_BYTES = CONTRACT_MAX_EVENT_BYTES
MAX_BATCH_BYTES = 500 * KIB
# Events per batch: Pub/Sub's 1,000 messages per Publish request, far above what SDKs send
# (analytics-python and RudderStack: 100; analytics.js: 500 KB). Checked right after parsing,
# before any per-event work (collector.ingest.ingest_batch).
MAX_BATCH_EVENTS = 1000
# A request's encoded messages (events as stamped + dead letters): four times the largest
# body. Checked before the per-event loop from the size of the batch's shared fields x events,
# then exactly while events are encoded (collector.ingest). It keeps one request within one
# Publish RPC per topic and one spool frame, and bounds what a request waiting for Pub/Sub
# holds in memory (x COLLECTOR_MAX_IN_FLIGHT).
MAX_REQUEST_MESSAGE_BYTES = 2 * MIB
# Pub/Sub: at most 1,000 messages and 10 MB per Publish request. The collector's RPCs (and so
# its spool frames, which are Publish requests) stay under 9 MiB (collector.delivery).
MAX_MESSAGES_PER_PUBLISH = 1000
MAX_PUBLISH_BYTES = 9 * MIB
PUBSUB_REQUEST_LIMIT_BYTES = 10 * 1000 * 1000
# gzip members per body: SDKs send one; 500 KB of empty members would cost ~25,000 inflater
# set-ups (collector.body.gunzip_limited).
MAX_GZIP_MEMBERS = 16

# How long a request waits for Pub/Sub before it spools its events instead.
DEFAULT_PUBLISH_TIMEOUT_S = 5.0
# What a 503 tells the client to wait before retrying (spool full, Pub/Sub unreachable,
# too many requests in flight).
RETRY_AFTER_S = 5

DEMO_WRITE_KEYS = {
    "demo-web-key": "web",
    "demo-ios-key": "ios",
    "demo-android-key": "android",
    "demo-server-key": "server",
}


class CollectorConfigError(ValueError):
    """The collector cannot start with these settings."""


@dataclass(frozen=True)
class CollectorConfig:
    host: str
    port: int
    project: str
    events_topic: str
    dead_letter_topic: str
    emulator_host: str
    is_local: bool
    write_keys: dict[str, str]
    demo_keys: bool
    spool_dir: Path
    spool_max_bytes: int
    cors_origins: tuple[str, ...]
    publish_timeout_s: float = DEFAULT_PUBLISH_TIMEOUT_S
    max_in_flight: int = 128
    max_connections: int = 2048

    @property
    def events_topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.events_topic}"

    @property
    def dead_letter_topic_path(self) -> str:
        return f"projects/{self.project}/topics/{self.dead_letter_topic}"

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> CollectorConfig:
        settings = settings or get_settings()
        keys, demo = dict(settings.collector_write_keys), False
        if not keys:
            if not settings.is_local:
                raise CollectorConfigError(
                    "COLLECTOR_WRITE_KEYS is empty: set `key=source` pairs (comma separated) "
                    "when PLATFORM_ENV=gcp; the collector accepts no event without a write key"
                )
            keys, demo = dict(DEMO_WRITE_KEYS), True
        return cls(
            host=settings.collector_host,
            port=settings.collector_port,
            project=settings.gcp_project,
            events_topic=settings.pubsub_events_topic,
            dead_letter_topic=settings.pubsub_dead_letter_topic,
            emulator_host=settings.pubsub_emulator_host,
            is_local=settings.is_local,
            write_keys=keys,
            demo_keys=demo,
            spool_dir=settings.spool_path,
            spool_max_bytes=settings.collector_spool_max_bytes,
            cors_origins=settings.collector_cors_origins,
            publish_timeout_s=settings.collector_publish_timeout.total_seconds(),
            max_in_flight=settings.collector_max_in_flight,
            max_connections=settings.collector_max_connections,
        )
