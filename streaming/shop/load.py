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

from collector.contract import stamp
from streaming.cdc.debezium import build_envelope, parse_record, topic_for
from streaming.raw.rows import event_row
from streaming.raw.writer import RawWriter
from streaming.shop.simulator import (
    KEY_COLUMNS,
    Delivery,
    ShopConfig,
    Snapshot,
    SyntheticShop,
    Transaction,
)

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

    def rows(self, table: str, op: str, before: Any, after: Any, tx_id: int | None, at: Any,
             snapshot: str = "false") -> dict[str, Any]:
        key, value = build_envelope(
            prefix=self.prefix, db=DB_NAME, schema=DB_SCHEMA, table=table, op=op,
            key_columns=KEY_COLUMNS[table], before=before, after=after, lsn=next(self.lsn),
            tx_id=tx_id, commit_ts=at, snapshot=snapshot, emitted_at=at,
        )
        record = parse_record(key, value)
        assert record is not None
        topic = topic_for(self.prefix, DB_SCHEMA, table)
        return record.to_raw_row(ingested_at=at + PIPELINE_DELAY, kafka_topic=topic,
                                 kafka_partition=0, kafka_offset=next(self.offsets[topic]))


def load_shop(
    writer: RawWriter,
    config: ShopConfig,
    *,
    topic_prefix: str = "shop",
    progress: Callable[[str], None] | None = None,
) -> tuple[SyntheticShop, LoadStats]:
    """Simulate the shop and append everything it produced to raw, one flush per day."""
    shop = SyntheticShop(config, progress=progress)
    encoder = _CdcEncoder(topic_prefix)
    stats = LoadStats()
    pending: dict[str, list[dict[str, Any]]] = defaultdict(list)
    current_day = None

    def flush() -> None:
        for table, rows in pending.items():
            writer.write(table, rows)
            stats.by_table[table] += len(rows)
        pending.clear()

    writer.ensure_tables()
    for item in shop.run():
        day = item.at.date()
        if current_day is not None and day != current_day:
            flush()
        current_day = day
        if isinstance(item, Delivery):
            payload = stamp(item.payload, item.received_at)
            pending["events"].append(event_row(
                payload, source=item.source, received_at=item.received_at,
                ingested_at=item.received_at + PIPELINE_DELAY, ingestion_id=f"load-{day}",
            ))
            stats.events += 1
        elif isinstance(item, Snapshot):
            for table, rows in item.rows.items():
                for row in rows:
                    pending[f"cdc_{table}"].append(
                        encoder.rows(table, "r", None, row, None, item.at, snapshot="true"))
                    stats.changes += 1
        elif isinstance(item, Transaction):
            for change in item.changes:
                pending[f"cdc_{change.table}"].append(encoder.rows(
                    change.table, change.op, change.before, change.after, item.tx_id, item.at))
                stats.changes += 1
    flush()
    return shop, stats
