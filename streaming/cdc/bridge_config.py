"""What the CDC bridge is told (`BridgeConfig`), what it counts (`BridgeStats`) and how it gives
up (`BridgeError`): shared by the bridge's modules (`streaming/cdc/bridge*.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from streaming.cdc.kafka import cdc_topics, dead_letter_topic

DEFAULT_GROUP = "cdc-bridge"
# One logger name for every part of the bridge: its log lines read as one process's.
BRIDGE_LOGGER = "streaming.cdc.bridge"


class BridgeError(RuntimeError):
    """The bridge cannot go on without risking loss (it exits; a restart resumes)."""


@dataclass
class BridgeConfig:
    bootstrap: str
    prefix: str = "shop"
    topics: list[str] | None = None  # default: the shop's four tables
    group: str = DEFAULT_GROUP
    batch_size: int = 5000
    max_delay: float = 1.0  # seconds a row may wait in the buffer
    session_timeout_ms: int = 10000
    dead_letter_topic: str | None = None
    consumer: dict[str, Any] = field(default_factory=dict)

    @property
    def subscribed(self) -> list[str]:
        return self.topics or cdc_topics(self.prefix)

    @property
    def dlq(self) -> str:
        return self.dead_letter_topic or dead_letter_topic(self.prefix)


@dataclass
class BridgeStats:
    records: int = 0
    rows: int = 0
    skipped: int = 0  # tombstones, heartbeats, transaction markers
    dead_letters: int = 0
    batches: int = 0
    commits: int = 0
    uncommitted: int = 0  # commits refused because the group was rebalancing (rows come again)
