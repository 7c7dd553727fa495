"""What the CDC capture is told (`CaptureConfig`), what it counts (`CaptureStats`) and how it
gives up (`CaptureError`): shared by the capture's modules (`streaming/cdc/capture*.py`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

DEFAULT_SLOT = "shop_cdc"
DEFAULT_PUBLICATION = "shop_cdc"
# Every connection of the capture reads values in one shape (UTC, ISO dates, exact floats),
# so the same row gives the same Debezium JSON whether it is snapshotted or streamed.
SESSION_OPTIONS = "-c timezone=UTC -c datestyle=ISO,YMD -c extra_float_digits=3"
# One logger name for every part of the capture: its log lines read as one process's.
CAPTURE_LOGGER = "streaming.cdc.capture"


class CaptureError(RuntimeError):
    """The capture cannot go on safely (it exits; a restart resumes from the slot)."""


@dataclass
class CaptureConfig:
    dsn: str
    bootstrap: str
    prefix: str = "shop"
    slot: str = DEFAULT_SLOT
    publication: str = DEFAULT_PUBLICATION
    snapshot: bool = True  # initial snapshot when the slot is new (Debezium snapshot.mode=initial)
    heartbeat_interval: float = 5.0
    status_interval: float = 1.0
    slot_wait: float = 60.0  # how long to wait for a previous capture's walsender to let go
    snapshot_fetch: int = 5000
    producer: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptureStats:
    snapshot_rows: int = 0
    changes: int = 0
    transactions: int = 0
    heartbeats: int = 0
    confirmed_lsn: int = 0
    received_lsn: int = 0
    last_commit: datetime | None = None
    by_op: dict[str, int] = field(default_factory=dict)
