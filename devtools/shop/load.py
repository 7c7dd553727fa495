"""Land the synthetic shop directly in raw through the raw writer (no collector, no Kafka).

Events take the same enrichment as on the live path; database changes become Debezium
envelopes and go through `parse_record`, exactly as the CDC bridge handles Kafka records.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
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


@dataclass
class LoadStats:
    events: int = 0
    changes: int = 0
    by_table: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class _CdcEncoder:
    """Assigns LSNs and Kafka offsets the way one capture process and one partition would."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.lsn = itertools.count(23_000_000, 56)
        self.offsets: dict[str, itertools.count[int]] = defaultdict(itertools.count)

    def rows(
        self,
        table: str,
        op: str,
        before: Any,
        after: Any,
        tx_id: int | None,
        at: Any,
        snapshot: str = "false",
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
            lsn=next(self.lsn),
            tx_id=tx_id,
            commit_ts=at,
            snapshot=snapshot,
            emitted_at=at,
        )
        record = parse_record(key, value)
        assert record is not None
        topic = topic_for(self.prefix, DB_SCHEMA, table)
        return record.to_raw_row(
            ingested_at=at + PIPELINE_DELAY,
            kafka_topic=topic,
            kafka_partition=0,
            kafka_offset=next(self.offsets[topic]),
        )


class RawLoader:
    """Appends simulator items to raw the way the live paths would, one flush per day."""

    def __init__(self, writer: RawWriter, topic_prefix: str = "shop") -> None:
        self.writer = writer
        self.encoder = _CdcEncoder(topic_prefix)
        self.stats = LoadStats()
        self._pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._day = None
        writer.ensure_tables()

    def add(self, item: Snapshot | Delivery | Transaction) -> None:
        day = item.at.date()
        if self._day is not None and day != self._day:
            self.flush()
        self._day = day
        if isinstance(item, Delivery):
            payload = stamp(item.payload, item.received_at)
            self._pending["events"].append(
                event_row(
                    payload,
                    source=item.source,
                    received_at=item.received_at,
                    ingested_at=item.received_at + PIPELINE_DELAY,
                    ingestion_id=f"load-{day}",
                )
            )
            self.stats.events += 1
        elif isinstance(item, Snapshot):
            for table, rows in item.rows.items():
                for row in rows:
                    self._pending[f"cdc_{table}"].append(
                        self.encoder.rows(table, "r", None, row, None, item.at, snapshot="true")
                    )
                    self.stats.changes += 1
        elif isinstance(item, Transaction):
            for change in item.changes:
                self._pending[f"cdc_{change.table}"].append(
                    self.encoder.rows(
                        change.table, change.op, change.before, change.after, item.tx_id, item.at
                    )
                )
                self.stats.changes += 1

    def flush(self) -> None:
        for table, rows in self._pending.items():
            self.writer.write(table, rows)
            self.stats.by_table[table] += len(rows)
        self._pending.clear()


def load_shop(
    writer: RawWriter,
    config: ShopConfig,
    *,
    topic_prefix: str = "shop",
    progress: Callable[[str], None] | None = None,
) -> tuple[SyntheticShop, LoadStats]:
    """Simulate the shop and append everything it produced to raw, one flush per day."""
    shop = SyntheticShop(config, progress=progress)
    loader = RawLoader(writer, topic_prefix)
    for item in shop.run():
        loader.add(item)
    loader.flush()
    return shop, loader.stats
