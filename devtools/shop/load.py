"""Land the synthetic shop directly in raw through the raw writer (no collector, no Kafka).

Events take the same enrichment as on the live path; database changes become Debezium
envelopes and go through `parse_record`, exactly as the CDC bridge handles Kafka records.

The CDC path is modelled as production runs it (`CdcPath`): every topic has several Kafka
partitions (a key always goes to the same one, offsets count per partition); all rows of a
snapshot carry the one LSN the snapshot was taken at; and, when asked, the capture is down
for a while (an outage: its replication slot was lost), so the changes committed meanwhile
are never captured, and then re-snapshots every table (rows deleted during the outage are
simply not in it).
"""

from __future__ import annotations

import itertools
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from devtools.shop.simulator import (
    KEY_COLUMNS,
    Delivery,
    ShopConfig,
    Snapshot,
    SyntheticShop,
    Transaction,
)
from platform_core.contract import stamp
from platform_core.raw.rows import event_row
from streaming.cdc.debezium import build_envelope, parse_record, topic_for
from streaming.raw.writer import RawWriter

PIPELINE_DELAY = timedelta(seconds=2)
DB_NAME = "shop"
DB_SCHEMA = "public"


@dataclass(frozen=True)
class CdcPath:
    """How the CDC path behaves while the shop is loaded."""

    partitions: int = 3  # Kafka partitions per topic
    outage: tuple[datetime, datetime] | None = None  # [start, end): nothing captured


@dataclass
class LoadStats:
    events: int = 0
    changes: int = 0
    by_table: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    missed_changes: int = 0  # committed during the outage, never captured
    resnapshot_rows: int = 0


class _CdcEncoder:
    """Assigns LSNs, Kafka partitions and offsets the way one capture process would."""

    def __init__(self, prefix: str, partitions: int) -> None:
        self.prefix = prefix
        self.partitions = partitions
        self.lsn = itertools.count(23_000_000, 56)
        self.offsets: dict[tuple[str, int], itertools.count[int]] = defaultdict(itertools.count)

    def next_lsn(self) -> int:
        return next(self.lsn)

    def rows(
        self,
        table: str,
        op: str,
        before: Any,
        after: Any,
        tx_id: int | None,
        at: Any,
        snapshot: str = "false",
        lsn: int | None = None,
    ) -> dict[str, Any]:
        key, value = build_envelope(
            prefix=self.prefix,
            db=DB_NAME,
            schema=DB_SCHEMA,
            table=table,
            op=op,
            key_columns=KEY_COLUMNS[table],
            before=before,
            after=after,
            lsn=self.next_lsn() if lsn is None else lsn,
            tx_id=tx_id,
            commit_ts=at,
            snapshot=snapshot,
            emitted_at=at,
        )
        record = parse_record(key, value)
        assert record is not None
        topic = topic_for(self.prefix, DB_SCHEMA, table)
        # Kafka's producer puts a key in one partition (a hash of its bytes; a stable one here)
        partition = zlib.crc32(key) % self.partitions if key else 0
        return record.to_raw_row(
            ingested_at=at + PIPELINE_DELAY,
            kafka_topic=topic,
            kafka_partition=partition,
            kafka_offset=next(self.offsets[(topic, partition)]),
        )


class _Replica:
    """The source tables as the simulator changed them (what a re-snapshot reads)."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {t: {} for t in KEY_COLUMNS}

    def load(self, snapshot: Snapshot) -> None:
        for table, rows in snapshot.rows.items():
            for row in rows:
                self.tables[table][tuple(row[c] for c in KEY_COLUMNS[table])] = dict(row)

    def apply(self, tx: Transaction) -> None:
        for change in tx.changes:
            rows = self.tables[change.table]
            if change.op == "d":
                rows.pop(change.key, None)
            else:
                rows[change.key] = dict(change.after or {})


class RawLoader:
    """Appends simulator items to raw the way the live paths would, one flush per day."""

    def __init__(
        self, writer: RawWriter, topic_prefix: str = "shop", cdc: CdcPath | None = None
    ) -> None:
        self.writer = writer
        self.cdc = cdc or CdcPath()
        self.encoder = _CdcEncoder(topic_prefix, self.cdc.partitions)
        self.stats = LoadStats()
        self._pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._day = None
        self._replica = _Replica()
        self._resnapshot_due = self.cdc.outage is not None
        writer.ensure_tables()

    def add(self, item: Snapshot | Delivery | Transaction) -> None:
        if self._resnapshot_due and self.cdc.outage and item.at >= self.cdc.outage[1]:
            self._resnapshot(self.cdc.outage[1])
        day = item.at.date()
        if self._day is not None and day != self._day:
            self.flush()
        self._day = day
        if isinstance(item, Delivery):
            self._event(item)
        elif isinstance(item, Snapshot):
            self._replica.load(item)
            self._snapshot(item.rows, item.at)
        elif isinstance(item, Transaction):
            self._replica.apply(item)
            if self._captured(item.at):
                self._transaction(item)
            else:
                self.stats.missed_changes += len(item.changes)

    def flush(self) -> None:
        for table, rows in self._pending.items():
            self.writer.write(table, rows)
            self.stats.by_table[table] += len(rows)
        self._pending.clear()

    def finish(self, now: datetime | None = None) -> None:
        """The end of the load: an outage still going on ends now (re-snapshot), if `now`
        is past it; then everything pending is written."""
        outage = self.cdc.outage
        if self._resnapshot_due and outage and now is not None and now >= outage[1]:
            self._resnapshot(outage[1])
        self.flush()

    # --- what each item becomes ----------------------------------------------------------

    def _captured(self, at: datetime) -> bool:
        outage = self.cdc.outage
        return outage is None or not outage[0] <= at < outage[1]

    def _event(self, item: Delivery) -> None:
        payload = stamp(item.payload, item.received_at)
        self._pending["events"].append(
            event_row(
                payload,
                source=item.source,
                received_at=item.received_at,
                ingested_at=item.received_at + PIPELINE_DELAY,
                ingestion_id=f"load-{self._day}",
            )
        )
        self.stats.events += 1

    def _snapshot(self, tables: dict[str, list[dict[str, Any]]], at: datetime) -> int:
        """Every row as op r, all at the one LSN the snapshot was taken at; the very last
        row is marked "last", as the capture and Debezium mark it."""
        lsn = self.encoder.next_lsn()
        rows = [(table, row) for table, table_rows in tables.items() for row in table_rows]
        for index, (table, row) in enumerate(rows):
            marker = "last" if index == len(rows) - 1 else "true"
            self._pending[f"cdc_{table}"].append(
                self.encoder.rows(table, "r", None, row, None, at, snapshot=marker, lsn=lsn)
            )
            self.stats.changes += 1
        return len(rows)

    def _resnapshot(self, at: datetime) -> None:
        self._resnapshot_due = False
        rows = {t: list(r.values()) for t, r in self._replica.tables.items()}
        self.stats.resnapshot_rows = self._snapshot(rows, at)

    def _transaction(self, item: Transaction) -> None:
        for change in item.changes:
            self._pending[f"cdc_{change.table}"].append(
                self.encoder.rows(
                    change.table, change.op, change.before, change.after, item.tx_id, item.at
                )
            )
            self.stats.changes += 1


def load_shop(
    writer: RawWriter,
    config: ShopConfig,
    *,
    topic_prefix: str = "shop",
    cdc: CdcPath | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[SyntheticShop, LoadStats]:
    """Simulate the shop and append everything it produced to raw, one flush per day."""
    shop = SyntheticShop(config, progress=progress)
    loader = RawLoader(writer, topic_prefix, cdc)
    for item in shop.run():
        loader.add(item)
    loader.finish(now=config.end)
    return shop, loader.stats
