"""Known data faults, injected into raw data on purpose: for the evaluation and the demo.

Each fault is SQL over DuckDB tables named like the raw tables (`events`, `cdc_orders`, ...)
holding raw rows: it changes what arrives on one day, the way the real failure would, and
(for faults a real team would repair) adds the repair on the next day. What arrives when
is decided by `ingested_at`, so "late" data is data whose ingestion moved to a later day.

- late_data: events received after 20:00 are ingested 7 h later (raw/events freshness);
- volume_drop: the iOS and Android apps send nothing, about 30% of the traffic (volume of
  raw and staging events, and of the sessions built from them);
- volume_spike: bot traffic doubles the web events (same checks);
- null_burst: a web SDK release drops page path and traffic source on 60% of its events
  (null_rate of raw and staging events);
- duplicate_burst: a redelivery storm ingests 30% of the events twice (raw duplicate rate);
- duplicate_keys: the CDC bridge writes 20% of order changes under a re-encoded key
  (duplicate keys in stg_orders and fct_orders, blocking);
- schema_drift: the writer adds a column and writes sent_at as text (raw schema_change);
- orphaned_fk: 30% of new order lines point at a product that does not exist
  (stg_order_items referential integrity).

duplicate_keys and orphaned_fk are repaired on D+1 (a delete of the re-encoded keys, an
update back to the right product); the others are one-day events by nature.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from streaming.raw.writer import ParquetRawWriter

FAULT_TYPES = (
    "late_data",
    "volume_drop",
    "volume_spike",
    "null_burst",
    "duplicate_burst",
    "duplicate_keys",
    "schema_drift",
    "orphaned_fk",
)

# The checks expected to catch each fault ("asset:check"); any of them counts.
DETECTED_BY: dict[str, tuple[str, ...]] = {
    "late_data": ("raw/events:freshness",),
    # an app outage shows in the events and in the sessions built from them
    "volume_drop": (
        "raw/events:volume_anomaly",
        "staging/stg_events:volume_anomaly",
        "staging/int_sessions:volume_anomaly",
    ),
    "volume_spike": (
        "raw/events:volume_anomaly",
        "staging/stg_events:volume_anomaly",
        "staging/int_sessions:volume_anomaly",
    ),
    "null_burst": ("raw/events:null_rate", "staging/stg_events:null_rate"),
    "duplicate_burst": ("raw/events:duplicate_keys",),
    "duplicate_keys": ("staging/stg_orders:duplicate_keys", "mart/fct_orders:duplicate_keys"),
    "schema_drift": ("raw/events:schema_change",),
    "orphaned_fk": ("staging/stg_order_items:referential_integrity_product_id",),
}
DRIFT_COLUMN = "client_ip"
MISSING_PRODUCT_ID = 990001


@dataclass(frozen=True)
class Fault:
    type: str
    day: date

    @property
    def detected_by(self) -> tuple[str, ...]:
        return DETECTED_BY[self.type]


def _d(day: date) -> str:
    return f"date '{day.isoformat()}'"


def _ts(moment: datetime) -> str:
    return f"timestamp '{moment.isoformat(sep=' ')}'"


def _sql(fault: Fault) -> list[str]:
    d = fault.day
    day, start = _d(d), datetime.combine(d, time())
    repair_at = _ts(start + timedelta(days=1, hours=1))
    received_on_day = f"cast(received_at as date) = {day}"
    if fault.type == "late_data":
        return [
            f"update events set ingested_at = received_at + interval 7 hour "
            f"where received_at >= {_ts(start + timedelta(hours=20))} "
            f"and received_at < {_ts(start + timedelta(days=1))}"
        ]
    if fault.type == "volume_drop":
        return [f"delete from events where {received_on_day} and source in ('ios', 'android')"]
    if fault.type == "volume_spike":
        return [
            f"insert into events select * replace ("
            f"message_id || '-bot' as message_id, anonymous_id || '-bot' as anonymous_id, "
            f"'bot-' || coalesce(ingestion_id, '') as ingestion_id) "
            f"from events where {received_on_day} and source = 'web'"
        ]
    if fault.type == "null_burst":
        return [
            f"update events set page_path = null, traffic_source = null "
            f"where {received_on_day} and source = 'web' and hash(message_id) % 10 < 6"
        ]
    if fault.type == "duplicate_burst":
        return [
            f"insert into events select * replace ("
            f"ingested_at + interval 1 minute as ingested_at, "
            f"'redelivery-' || coalesce(ingestion_id, '') as ingestion_id) "
            f"from events where {received_on_day} and hash(message_id) % 10 < 3"
        ]
    if fault.type == "duplicate_keys":
        variant = "replace(pk, ':', ': ')"
        return [
            f"create or replace temp table _reencoded as select * replace ("
            f"{variant} as pk, lsn + 1 as lsn, ingested_at + interval 1 second as ingested_at) "
            f"from cdc_orders where ingest_date = {day} and op in ('c', 'u') "
            f"and hash(pk) % 10 < 2",
            "insert into cdc_orders select * replace (cast(ingested_at as date) as ingest_date) "
            "from _reencoded",
            # the repair: the bridge is fixed and the re-encoded keys are deleted
            f"insert into cdc_orders select * replace ('d' as op, after as before, "
            f"null as after, lsn + 1 as lsn, {repair_at} as ingested_at, "
            f"cast({repair_at} as date) as ingest_date) from (select * from _reencoded "
            f"qualify row_number() over (partition by pk order by lsn desc) = 1)",
        ]
    if fault.type == "orphaned_fk":
        bad = (
            f"cast(json_merge_patch(after, '{{\"product_id\": {MISSING_PRODUCT_ID}}}') as varchar)"
        )
        return [
            f"create or replace temp table _orphaned as select * replace ('u' as op, "
            f"after as before, {bad} as after, lsn + 1 as lsn, "
            f"ingested_at + interval 1 second as ingested_at) "
            f"from cdc_order_items where ingest_date = {day} and op = 'c' and hash(pk) % 10 < 3",
            "insert into cdc_order_items select * replace (cast(ingested_at as date) as "
            "ingest_date) from _orphaned",
            # the repair: the right product id is written back
            f"insert into cdc_order_items select * replace (before as after, after as before, "
            f"lsn + 1 as lsn, {repair_at} as ingested_at, cast({repair_at} as date) "
            f"as ingest_date) from _orphaned",
        ]
    if fault.type == "schema_drift":
        return []  # applied to the day's files when they are written: see drift_batch
    raise ValueError(f"unknown fault type {fault.type!r}; known: {', '.join(FAULT_TYPES)}")


def apply_fault(con: Any, fault: Fault) -> None:
    """Change the raw tables held by DuckDB connection `con` as the fault would."""
    for statement in _sql(fault):
        con.execute(statement)


def drift_batch(table: str, arrival_day: date, arrow_table: Any, faults: list[Fault]) -> Any:
    """Schema drift: the files of `table` written for `arrival_day` get the drifted schema."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if table != "events" or not any(
        f.type == "schema_drift" and f.day == arrival_day for f in faults
    ):
        return arrow_table
    drifted = arrow_table.append_column(
        DRIFT_COLUMN, pa.array(["203.0.113.7"] * arrow_table.num_rows, pa.string())
    )
    index = drifted.schema.get_field_index("sent_at")
    as_text = pc.strftime(drifted.column("sent_at"), format="%Y-%m-%dT%H:%M:%S")
    return drifted.set_column(index, "sent_at", as_text)


def inject_orphaned_order_items(
    lake_path: Path | str, day: date, share: float = 0.3, ops: tuple[str, ...] = ("c",)
) -> int:
    """For the demo: on `day`, point a share of that day's new order lines at a product that
    does not exist (CDC updates appended to the raw lake through the raw writer).
    Returns how many order lines were changed."""
    import duckdb

    writer = ParquetRawWriter(lake_path)
    modulo = max(1, round(share * 10))
    with duckdb.connect() as con:
        rows = (
            con.sql(
                f"select * replace ('u' as op, after as before, "
                f"cast(json_merge_patch(after, '{{\"product_id\": {MISSING_PRODUCT_ID}}}') "
                f"as varchar) as after, lsn + 1 as lsn, "
                f"ingested_at + interval 1 second as ingested_at) "
                f"from read_parquet('{writer.glob('cdc_order_items')}', union_by_name = true, "
                f"hive_partitioning = false) "
                f"where ingest_date = {_d(day)} and op in ({', '.join(repr(o) for o in ops)}) "
                f"and hash(pk) % 10 < {modulo}"
            )
            .to_arrow_table()
            .to_pylist()
        )
    for row in rows:
        row["ingest_date"] = row["ingested_at"].date()
    return writer.write("cdc_order_items", rows)
