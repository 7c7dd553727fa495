"""The capture's initial snapshot: every published table read under the slot's exported
snapshot as Debezium ``op=r`` events (``source.snapshot`` "true", the very last one "last"),
and the state record in Kafka that says the snapshot is complete.

Snapshot events carry the slot's restart LSN, which is not above any change the slot will
stream, so "latest LSN wins" in staging always prefers a streamed change over a snapshot row.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg

from streaming.cdc import pgoutput
from streaming.cdc.capture_catalog import TableInfo
from streaming.cdc.capture_config import (
    CAPTURE_LOGGER,
    SESSION_OPTIONS,
    CaptureConfig,
    CaptureError,
    CaptureStats,
)
from streaming.cdc.capture_metrics import CaptureMetrics
from streaming.cdc.capture_outbox import Outbox
from streaming.cdc.debezium import build_envelope, topic_for
from streaming.cdc.kafka import state_topic

log = logging.getLogger(CAPTURE_LOGGER)


def state_key(db: str, slot: str) -> str:
    """The key of this database's slot in the capture's state topic."""
    return f"{db}/{slot}"


class InitialSnapshot:
    def __init__(
        self,
        config: CaptureConfig,
        db: str,
        tables: dict[tuple[str, str], TableInfo],
        outbox: Outbox,
        stats: CaptureStats,
        metrics: CaptureMetrics | None,
        stop: threading.Event,
    ) -> None:
        self.config = config
        self.db = db
        self.tables = tables
        self.outbox = outbox
        self.stats = stats
        self.metrics = metrics
        self._stop = stop

    def take(self, lsn: int, exported: str | None) -> None:
        """Every published table as op=r events, under the slot's exported snapshot (or, for
        a slot that outlived an unfinished snapshot, under a fresh one)."""
        started = datetime.now(UTC)
        with psycopg.connect(
            self.config.dsn,
            options=SESSION_OPTIONS,
            application_name=f"{self.config.prefix}-cdc-snapshot",
        ) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                if exported:
                    conn.execute(f"set transaction snapshot '{exported}'")
                # one row behind, so that the very last row can be marked "last"
                held: tuple[TableInfo, dict[str, Any]] | None = None
                for info, row in self._rows(conn):
                    if held is not None:
                        self._emit(*held, lsn, started, "true")
                    held = (info, row)
                if held is not None:
                    self._emit(*held, lsn, started, "last")
        self.outbox.flush_all("snapshot")
        log.info("snapshot done: %d rows at %s", self.stats.snapshot_rows, pgoutput.format_lsn(lsn))

    def mark_complete(self, snapshot_lsn: int, consistent_lsn: int) -> None:
        """Record in Kafka that this slot's snapshot is complete (a restart does not redo it)."""
        value = {
            "slot": self.config.slot,
            "db": self.db,
            "snapshot_completed": True,
            "snapshot_lsn": snapshot_lsn,
            "consistent_lsn": consistent_lsn,
            "ts_ms": int(time.time() * 1000),
        }
        self.outbox.produce(
            state_topic(self.config.prefix),
            state_key(self.db, self.config.slot).encode(),
            json.dumps(value).encode(),
        )
        self.outbox.flush_all("capture state")

    def _rows(self, conn: psycopg.Connection) -> Iterator[tuple[TableInfo, dict[str, Any]]]:
        for (schema, table), info in sorted(self.tables.items()):
            ident = f'"{schema}"."{table}"'
            with conn.cursor(name=f"cdc_snapshot_{table}") as cursor:
                cursor.itersize = self.config.snapshot_fetch
                cursor.execute(f"select * from {ident}")
                names = [d.name for d in cursor.description]
                for values in cursor:
                    yield info, dict(zip(names, values, strict=True))
            if self._stop.is_set():
                raise CaptureError("stopped during the initial snapshot")

    def _emit(
        self, info: TableInfo, row: dict[str, Any], lsn: int, started: datetime, marker: str
    ) -> None:
        key, value = build_envelope(
            prefix=self.config.prefix,
            db=self.db,
            schema=info.schema,
            table=info.table,
            op="r",
            key_columns=info.key_columns,
            before=None,
            after=row,
            lsn=lsn,
            tx_id=None,
            commit_ts=started,
            snapshot=marker,
        )
        self.outbox.produce(topic_for(self.config.prefix, info.schema, info.table), key, value)
        self.stats.snapshot_rows += 1
        if self.metrics:
            self.metrics.snapshot_rows.inc()
