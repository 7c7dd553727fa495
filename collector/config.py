"""The collector's configuration, resolved once from the platform settings.

Everything comes from the typed `platform_core.settings.Settings` (parsed and validated
there); this module applies the collector's own rules: demo write keys locally, none allowed
to be missing on GCP.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from platform_core.settings import Settings, get_settings

log = logging.getLogger("collector.config")

KIB = 1024
# Segment's limits: 32 KB per event (and per non-batch request), 500 KB per batch request.
MAX_EVENT_BYTES = 32 * KIB
MAX_BATCH_BYTES = 500 * KIB
# A Publish RPC carries at most 1,000 messages (Pub/Sub quota); larger batches are split.
MAX_MESSAGES_PER_PUBLISH = 1000
# How long a request waits for Pub/Sub before it spools its events instead.
DEFAULT_PUBLISH_TIMEOUT_S = 5.0
# What a 503 tells the client to wait before retrying (spool full, Pub/Sub unreachable).
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
        )
