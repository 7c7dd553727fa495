"""Reconcile the warehouse's current state (staging) with the source database.

Per table: row counts and one checksum over every row, computed the same way on both sides:
each row's compared columns are fetched and rendered canonically in Python (NULL, booleans,
integers, decimals without trailing zeros, UTC timestamps with microseconds, text), the
lines sorted by primary key and hashed with MD5. When the checksums differ the rows are
compared key by key and the differing keys are listed (capped).

A comparison is only meaningful once the stream has drained, so `drain_status` says first
whether everything the database had committed when it was read has reached staging:

1. capture: the replication slot's confirmed LSN has reached the database's WAL position
   read together with the source rows (everything up to there is in Kafka);
2. bridge: the bridge's consumer group has committed offsets up to the end of every CDC
   partition (everything in Kafka is in raw) — checked when Kafka is reachable;
3. staging: no raw CDC row was ingested after the staging build began (settle margin).

"Not drained" is reported as such, never as a difference.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, Protocol

from platform_core.raw.schema import CDC_KEY_COLUMNS
from streaming.cdc.kafka import cdc_topics
from streaming.cdc.pgoutput import format_lsn, parse_lsn
from streaming.raw.writer import ParquetRawWriter

# Columns compared per table: every column of the source table (staging keeps them all).
COMPARED_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": (
        "user_id",
        "email",
        "full_name",
        "country",
        "marketing_opt_in",
        "created_at",
        "updated_at",
    ),
    "products": (
        "product_id",
        "sku",
        "name",
        "category",
        "brand",
        "price",
        "currency",
        "active",
        "created_at",
        "updated_at",
    ),
    "orders": (
        "order_id",
        "user_id",
        "status",
        "currency",
        "subtotal",
        "shipping",
        "total_amount",
        "created_at",
        "updated_at",
        "paid_at",
        "refunded_at",
    ),
    "order_items": ("order_id", "line_number", "product_id", "quantity", "unit_price"),
}
NULL = "\\N"
SEPARATOR = "\x1f"


def canonical(value: Any) -> str:
    """One value rendered the same whichever database it came from."""
    if value is None:
        return NULL
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            return str(value)
        text = format(value.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return text.replace("\\", "\\\\").replace(SEPARATOR, "\\x1f")


def canonical_rows(rows: Iterable[Sequence[Any]], key_width: int) -> dict[tuple[str, ...], str]:
    """{canonical key: canonical line} for rows whose first `key_width` values are the key."""
    result: dict[tuple[str, ...], str] = {}
    for row in rows:
        rendered = [canonical(v) for v in row]
        key = tuple(rendered[:key_width])
        if key in result:
            raise ValueError(f"duplicate primary key {key}")
        result[key] = SEPARATOR.join(rendered)
    return result


def checksum(lines: dict[tuple[str, ...], str]) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for key in sorted(lines):
        digest.update(lines[key].encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _key_label(key: tuple[str, ...], columns: Sequence[str]) -> str:
    return json.dumps(dict(zip(columns, key, strict=False)), separators=(",", ":"))


@dataclass
class TableReconciliation:
    table: str
    source_rows: int
    warehouse_rows: int
    source_checksum: str
    warehouse_checksum: str
    missing_in_warehouse: list[str] = field(default_factory=list)
    extra_in_warehouse: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)
    differences: int = 0

    @property
    def matches(self) -> bool:
        return (
            self.source_rows == self.warehouse_rows
            and self.source_checksum == self.warehouse_checksum
        )


def compare(
    table: str,
    source: dict[tuple[str, ...], str],
    warehouse: dict[tuple[str, ...], str],
    max_keys: int = 20,
) -> TableReconciliation:
    result = TableReconciliation(
        table, len(source), len(warehouse), checksum(source), checksum(warehouse)
    )
    if result.matches:
        return result
    keys = CDC_KEY_COLUMNS[table]
    missing = sorted(set(source) - set(warehouse))
    extra = sorted(set(warehouse) - set(source))
    different = sorted(k for k in set(source) & set(warehouse) if source[k] != warehouse[k])
    result.differences = len(missing) + len(extra) + len(different)
    result.missing_in_warehouse = [_key_label(k, keys) for k in missing[:max_keys]]
    result.extra_in_warehouse = [_key_label(k, keys) for k in extra[:max_keys]]
    result.different = [_key_label(k, keys) for k in different[:max_keys]]
    return result


# --- the two sides -------------------------------------------------------------------------


class Warehouse(Protocol):
    def rows(self, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        """Current-state rows of staging.stg_<table>, the given columns in order."""

    def raw_max_ingested_at(self, tables: Sequence[str]) -> datetime | None:
        """Latest ingested_at (naive UTC) over the raw CDC tables."""


class DuckDBWarehouse:
    """The local warehouse: staging in the DuckDB file at `path` (the read snapshot dbt
    publishes, so this reader never blocks a refresh), raw in the Parquet lake."""

    def __init__(self, path: Any, lake: Any, schema: str = "staging") -> None:
        self.path = str(path)
        self.lake = lake
        self.schema = schema

    def rows(self, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        import duckdb

        names = ", ".join(f'"{c}"' for c in columns)
        with duckdb.connect(self.path, read_only=True) as con:
            return con.execute(f'select {names} from "{self.schema}"."stg_{table}"').fetchall()

    def raw_max_ingested_at(self, tables: Sequence[str]) -> datetime | None:
        import duckdb

        lake = ParquetRawWriter(self.lake)
        latest: datetime | None = None
        with duckdb.connect() as con:
            for table in tables:
                if not any(lake.table_path(f"cdc_{table}").glob("**/*.parquet")):
                    continue
                value = con.execute(
                    f"select max(ingested_at) from read_parquet('{lake.glob(f'cdc_{table}')}', "
                    "union_by_name = true)"
                ).fetchone()[0]
                if value is not None and (latest is None or value > latest):
                    latest = value
        return latest


class BigQueryWarehouse:
    """Production: staging and raw datasets in BigQuery."""

    def __init__(
        self, client: Any, project: str, staging_dataset: str = "staging", raw_dataset: str = "raw"
    ) -> None:
        self.client = client
        self.project = project
        self.staging = staging_dataset
        self.raw = raw_dataset

    def rows(self, table: str, columns: Sequence[str]) -> list[tuple[Any, ...]]:
        names = ", ".join(f"`{c}`" for c in columns)
        query = f"select {names} from `{self.project}.{self.staging}.stg_{table}`"
        return [tuple(row.values()) for row in self.client.query(query).result()]

    def raw_max_ingested_at(self, tables: Sequence[str]) -> datetime | None:
        parts = " union all ".join(
            f"select max(ingested_at) as m from `{self.project}.{self.raw}.cdc_{t}`" for t in tables
        )
        rows = list(self.client.query(f"select max(m) as m from ({parts})").result())
        value = rows[0]["m"] if rows else None
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value


@dataclass
class SourceRead:
    wal_lsn: int
    rows: dict[str, list[tuple[Any, ...]]]


def read_source(dsn: str, tables: Sequence[str], schema: str = "public") -> SourceRead:
    """The source tables in one consistent snapshot, with the WAL position it was taken at."""
    import psycopg

    with psycopg.connect(dsn, options="-c timezone=UTC") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            # The snapshot is taken by this first statement; a transaction committing after it
            # ends at a WAL position above what it reads.
            wal = parse_lsn(conn.execute("select pg_current_wal_insert_lsn()::text").fetchone()[0])
            rows = {}
            for table in tables:
                names = ", ".join(f'"{c}"' for c in COMPARED_COLUMNS[table])
                rows[table] = conn.execute(f'select {names} from "{schema}"."{table}"').fetchall()
    return SourceRead(wal, rows)


# --- draining ------------------------------------------------------------------------------


@dataclass
class DrainStatus:
    drained: bool
    reason: str
    facts: dict[str, Any] = field(default_factory=dict)


def slot_confirmed_lsn(dsn: str, slot: str) -> int | None:
    import psycopg

    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select confirmed_flush_lsn::text from pg_replication_slots where slot_name = %s",
            (slot,),
        ).fetchone()
    return parse_lsn(row[0]) if row and row[0] else None


def bridge_lag(bootstrap: str, group: str, topics: Sequence[str]) -> dict[str, int]:
    """Records not yet committed by the bridge's group, per topic[partition] (only those > 0)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        metadata = consumer.list_topics(timeout=10)
        partitions = [
            TopicPartition(t, p)
            for t in topics
            if t in metadata.topics
            for p in metadata.topics[t].partitions
        ]
        committed = (
            {
                (tp.topic, tp.partition): tp.offset
                for tp in consumer.committed(partitions, timeout=10)
            }
            if partitions
            else {}
        )
        lag = {}
        for tp in partitions:
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            offset = committed.get((tp.topic, tp.partition), -1)
            behind = high - (offset if offset >= 0 else low)
            if behind > 0:
                lag[f"{tp.topic}[{tp.partition}]"] = behind
        return lag
    finally:
        consumer.close()


def drain_status(
    *,
    dsn: str,
    source_lsn: int,
    slot: str,
    kafka_bootstrap: str | None,
    bridge_group: str,
    topics: Sequence[str],
    warehouse: Warehouse,
    tables: Sequence[str],
    staging_built_at: Mapping[str, datetime] | None,
    timeout: float = 30.0,
    settle_seconds: float = 2.0,
) -> DrainStatus:
    """Wait (up to `timeout`) for the stream to catch up with `source_lsn`; say whether it did."""

    facts: dict[str, Any] = {"source_wal_lsn": format_lsn(source_lsn)}
    deadline = time.monotonic() + timeout
    confirmed = slot_confirmed_lsn(dsn, slot)
    while (confirmed is None or confirmed < source_lsn) and time.monotonic() < deadline:
        time.sleep(0.5)
        confirmed = slot_confirmed_lsn(dsn, slot)
    facts["slot_confirmed_lsn"] = format_lsn(confirmed) if confirmed is not None else None
    if confirmed is None:
        return DrainStatus(False, f"replication slot {slot!r} does not exist", facts)
    if confirmed < source_lsn:
        return DrainStatus(
            False,
            "the capture has not confirmed the database's current WAL position (is it running?)",
            facts,
        )
    if kafka_bootstrap:
        lag = bridge_lag(kafka_bootstrap, bridge_group, topics)
        while lag and time.monotonic() < deadline:
            time.sleep(0.5)
            lag = bridge_lag(kafka_bootstrap, bridge_group, topics)
        facts["bridge_lag"] = sum(lag.values())
        if lag:
            return DrainStatus(False, f"the bridge is behind by {sum(lag.values())} records", facts)
    else:
        facts["bridge_lag"] = "not checked (no Kafka configured)"
    stale = staging_behind_raw(warehouse, tables, staging_built_at, settle_seconds, facts)
    if stale:
        return DrainStatus(
            False,
            f"raw received CDC rows after staging was built ({', '.join(stale)}): rebuild staging",
            facts,
        )
    return DrainStatus(True, "drained", facts)


def staging_behind_raw(
    warehouse: Warehouse,
    tables: Sequence[str],
    staging_built_at: Mapping[str, datetime] | None,
    settle_seconds: float,
    facts: dict[str, Any],
) -> list[str]:
    """The tables whose raw CDC received rows after their staging table was last built.

    Per table: a table nobody changed today keeps an old build and is still current, so
    comparing the oldest build with the newest raw row of any table would report "not
    drained" all day long for no reason."""
    if staging_built_at is None:
        facts["staging_built_at"] = "unknown"
        return []
    stale = []
    for table in tables:
        latest = warehouse.raw_max_ingested_at([table])
        built = staging_built_at.get(table)
        facts[f"{table}_raw_max_ingested_at"] = latest.isoformat() if latest else None
        facts[f"{table}_staging_built_at"] = built.isoformat() if built else "unknown"
        if latest is None or built is None:
            continue
        if built.tzinfo is not None:
            built = built.astimezone(UTC).replace(tzinfo=None)
        if (built - latest).total_seconds() < settle_seconds:
            stale.append(f"stg_{table}")
    return stale


@dataclass
class Reconciliation:
    drain: DrainStatus
    tables: dict[str, TableReconciliation]

    @property
    def passed(self) -> bool:
        return self.drain.drained and all(t.matches for t in self.tables.values())


def reconcile(
    *,
    dsn: str,
    warehouse: Warehouse,
    tables: Sequence[str] = tuple(CDC_KEY_COLUMNS),
    slot: str = "shop_cdc",
    kafka_bootstrap: str | None = None,
    bridge_group: str = "cdc-bridge",
    topic_prefix: str = "shop",
    staging_built_at: Mapping[str, datetime] | None = None,
    drain_timeout: float = 30.0,
    max_keys: int = 20,
) -> Reconciliation:
    source = read_source(dsn, tables)
    drain = drain_status(
        dsn=dsn,
        source_lsn=source.wal_lsn,
        slot=slot,
        kafka_bootstrap=kafka_bootstrap,
        bridge_group=bridge_group,
        topics=cdc_topics(topic_prefix, tuple(tables)),
        warehouse=warehouse,
        tables=tables,
        staging_built_at=staging_built_at,
        timeout=drain_timeout,
    )
    results: dict[str, TableReconciliation] = {}
    if drain.drained:
        for table in tables:
            width = len(CDC_KEY_COLUMNS[table])
            columns = COMPARED_COLUMNS[table]
            results[table] = compare(
                table,
                canonical_rows(source.rows[table], width),
                canonical_rows(warehouse.rows(table, columns), width),
                max_keys,
            )
    return Reconciliation(drain, results)
