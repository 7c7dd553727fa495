"""Schemas of the raw layer, defined once for the Parquet lake and for BigQuery.

Raw is append-only and keeps what arrived: the payload as received plus ingestion metadata.
A few columns are derived at ingestion (skew-corrected time, device, traffic source) so that
partitioning and clustering can use them; staging may always re-derive from `payload`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

# The shop's tables captured by CDC and their primary keys: the contract between the source
# database, the capture, the bridge, staging's current state and the reconciliation.
CDC_KEY_COLUMNS: dict[str, tuple[str, ...]] = {
    "users": ("user_id",),
    "products": ("product_id",),
    "orders": ("order_id",),
    "order_items": ("order_id", "line_number"),
}
CDC_TABLES = tuple(CDC_KEY_COLUMNS)


@dataclass(frozen=True)
class Column:
    name: str
    arrow: pa.DataType
    bq_type: str
    required: bool
    description: str


@dataclass(frozen=True)
class RawTable:
    name: str
    columns: tuple[Column, ...]
    partition_column: str
    cluster_columns: tuple[str, ...]
    description: str

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.arrow, nullable=not c.required) for c in self.columns])

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


_TS = pa.timestamp("us")  # naive UTC: DuckDB then never shifts it by the session time zone


def _c(name: str, arrow: pa.DataType, bq: str, description: str, required: bool = False) -> Column:
    return Column(name, arrow, bq, required, description)


EVENTS = RawTable(
    name="events",
    description="Behaviour events as accepted by the collector, one row per delivery.",
    partition_column="event_date",
    cluster_columns=("type", "event"),
    columns=(
        _c("message_id", pa.string(), "STRING", "Segment messageId (dedup key)", True),
        _c("type", pa.string(), "STRING", "track, page, screen, identify, group, alias", True),
        _c("event", pa.string(), "STRING", "Track event name, or page/screen name"),
        _c("anonymous_id", pa.string(), "STRING", "Client-generated visitor id"),
        _c("user_id", pa.string(), "STRING", "Shop user id once known"),
        _c("source", pa.string(), "STRING", "Source of the write key (web, ios, ...)", True),
        _c("original_timestamp", _TS, "TIMESTAMP", "Client clock when the event happened"),
        _c("sent_at", _TS, "TIMESTAMP", "Client clock when the batch was sent"),
        _c("received_at", _TS, "TIMESTAMP", "Collector clock on receipt", True),
        _c("event_timestamp", _TS, "TIMESTAMP", "Skew-corrected event time", True),
        _c("event_date", pa.date32(), "DATE", "UTC date of event_timestamp (partition)", True),
        _c("device_type", pa.string(), "STRING", "desktop, mobile, tablet or unknown"),
        _c("os_name", pa.string(), "STRING", "Operating system from context or user agent"),
        _c("browser", pa.string(), "STRING", "Browser family from the user agent"),
        _c("page_path", pa.string(), "STRING", "context.page.path"),
        _c("traffic_source", pa.string(), "STRING", "utm_source, referrer host or direct"),
        _c("payload", pa.string(), "STRING", "The message JSON as received", True),
        _c("ingested_at", _TS, "TIMESTAMP", "When the row was written to raw", True),
        _c("ingestion_id", pa.string(), "STRING", "Pub/Sub message id or loader batch id"),
    ),
)

EVENTS_DEAD_LETTER = RawTable(
    name="events_dead_letter",
    description="Messages that could not be accepted into raw.events, with the reason.",
    partition_column="ingest_date",
    cluster_columns=("stage",),
    columns=(
        _c("stage", pa.string(), "STRING", "Where it was rejected: collector or pipeline", True),
        _c("error", pa.string(), "STRING", "Why it was rejected", True),
        _c("payload", pa.string(), "STRING", "What arrived, verbatim (maybe not JSON)", True),
        _c("source", pa.string(), "STRING", "Source of the write key, when known"),
        _c("message_id", pa.string(), "STRING", "messageId when it could be read"),
        _c("pubsub_message_id", pa.string(), "STRING", "Pub/Sub message id"),
        _c("ingested_at", _TS, "TIMESTAMP", "When the row was written", True),
        _c("ingest_date", pa.date32(), "DATE", "UTC date of ingested_at (partition)", True),
    ),
)


def _cdc_table(table: str) -> RawTable:
    return RawTable(
        name=f"cdc_{table}",
        description=f"Change events of the shop's {table} table (Debezium envelopes, flattened).",
        partition_column="ingest_date",
        cluster_columns=("pk",),
        columns=(
            _c(
                "op",
                pa.string(),
                "STRING",
                "c create, u update, d delete, r snapshot, t truncate",
                True,
            ),
            _c("pk", pa.string(), "STRING", "Primary key as canonical JSON (null for truncate)"),
            _c("before", pa.string(), "STRING", "Row before the change (JSON)"),
            _c("after", pa.string(), "STRING", "Row after the change (JSON)"),
            _c("lsn", pa.int64(), "INT64", "PostgreSQL LSN of the change", True),
            _c("tx_id", pa.int64(), "INT64", "Source transaction id"),
            _c("source_ts", _TS, "TIMESTAMP", "Commit time in the source database", True),
            _c("snapshot", pa.string(), "STRING", "Debezium source.snapshot (true/last/false)"),
            _c("kafka_topic", pa.string(), "STRING", "Kafka topic the change came from"),
            _c("kafka_partition", pa.int32(), "INT64", "Kafka partition"),
            _c("kafka_offset", pa.int64(), "INT64", "Kafka offset"),
            _c("ingested_at", _TS, "TIMESTAMP", "When the row was written to raw", True),
            _c("ingest_date", pa.date32(), "DATE", "UTC date of ingested_at (partition)", True),
        ),
    )


RAW_TABLES: dict[str, RawTable] = {
    t.name: t for t in (EVENTS, EVENTS_DEAD_LETTER, *(_cdc_table(name) for name in CDC_TABLES))
}


def raw_table(name: str) -> RawTable:
    try:
        return RAW_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown raw table {name!r}; known: {', '.join(RAW_TABLES)}") from None
