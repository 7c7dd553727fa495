"""Known data faults, injected into raw data on purpose: for the evaluation and the demo.

Each fault class changes what arrives on one day, the way the real failure would, in DuckDB
tables named like the raw tables (`events`, `cdc_orders`, ...) holding raw rows. What
arrives when is decided by `ingested_at`. Magnitudes are drawn per injection (`sample`), from
ranges of failures that cost a shop money or trust; the evaluation never sees a threshold
of the rules. Faults a team would repair in raw (bad rows removed by a backfill) carry a
`repair`, applied after the fault day was judged, so the next day does not inherit them.

Classes (family: what breaks):

- freshness, volume, nulls, duplicates, schema, references (what the agent's hand rules
  were written for): late_data, volume_drop, volume_spike, null_burst, duplicate_burst,
  duplicate_keys, schema_drift, orphaned_fk;
- values: wrong_amount (the database charges a share of orders x k), price_in_cents (an
  app release sends prices in cents), invalid_values (the CDC bridge drops a field the
  database requires);
- mixes: tracking_stop (a page's view call stops on the web), device_misclassified (a user
  agent parser release maps desktops to "unknown");
- partial stalls: source_stall (one app's events stop from some hour), cdc_stall (the CDC
  path stalls from some hour while events flow); their backlogs land after midnight;
- cross-source: phantom_products (product views with ids the database does not have).

`DETECTED_BY` lists, per class, the checks ("asset:check") that are expected to catch it;
any one of them counts. The module is a catalogue of sixteen small, independent fault
definitions read top to bottom, hence its length.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from streaming.raw.writer import ParquetRawWriter

DRIFT_COLUMN = "client_ip"
MISSING_PRODUCT_ID = 990001
RELATIONSHIPS_PRODUCT = "relationships_stg_order_items_product_id__product_id__ref_stg_products_"


@dataclass(frozen=True)
class Fault:
    type: str
    day: date
    params: tuple[tuple[str, Any], ...] = ()

    def param(self, name: str) -> Any:
        return dict(self.params)[name]

    @property
    def detected_by(self) -> tuple[str, ...]:
        return DETECTED_BY[self.type]

    @property
    def family(self) -> str:
        return CLASSES[self.type].family

    def describe(self) -> str:
        shown = ", ".join(
            f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params
        )
        return f"{self.type}({shown})" if shown else self.type


@dataclass(frozen=True)
class FaultClass:
    family: str
    sample: Callable[[random.Random], dict[str, Any]]
    sql: Callable[[Fault], list[str]]
    repair: Callable[[Fault], list[str]] | None = None
    ranges: str = ""  # the magnitudes drawn, for the report


def make_fault(kind: str, day: date, rng: random.Random | None = None) -> Fault:
    params = CLASSES[kind].sample(rng or random.Random(0))
    return Fault(kind, day, tuple(sorted(params.items())))


def _d(day: date) -> str:
    return f"date '{day.isoformat()}'"


def _ts(moment: datetime) -> str:
    return f"timestamp '{moment.isoformat(sep=' ')}'"


def _start(fault: Fault) -> datetime:
    return datetime.combine(fault.day, time())


def _share(column: str, share: float, fault: Fault) -> str:
    """A deterministic share of rows, different for each injection."""
    salt = f"{fault.type}{fault.day}"
    return f"hash(cast({column} as varchar) || '{salt}') % 1000 < {round(share * 1000)}"


def _received_on(fault: Fault) -> str:
    return f"cast(received_at as date) = {_d(fault.day)}"


def _uniform(low: float, high: float) -> Callable[[random.Random], float]:
    return lambda rng: round(rng.uniform(low, high), 3)


# --- what the hand rules were written for ----------------------------------------------


def _late_data(f: Fault) -> list[str]:
    since = _start(f) + timedelta(hours=f.param("from_hour"))
    return [
        f"update events set ingested_at = received_at + interval 7 hour "
        f"where received_at >= {_ts(since)} and received_at < {_ts(_start(f) + timedelta(1))}"
    ]


def _volume_drop(f: Fault) -> list[str]:
    return [
        f"delete from events where {_received_on(f)} and source in ('ios', 'android') "
        f"and {_share('anonymous_id', f.param('share'), f)}"
    ]


def _volume_spike(f: Fault) -> list[str]:
    return [
        f"insert into events select * replace ("
        f"message_id || '-bot' as message_id, anonymous_id || '-bot' as anonymous_id, "
        f"'bot-' || coalesce(ingestion_id, '') as ingestion_id) "
        f"from events where {_received_on(f)} and source = 'web' "
        f"and {_share('anonymous_id', f.param('share'), f)}"
    ]


def _null_burst(f: Fault) -> list[str]:
    return [
        f"update events set page_path = null, traffic_source = null "
        f"where {_received_on(f)} and source = 'web' "
        f"and {_share('message_id', f.param('share'), f)}"
    ]


def _duplicate_burst(f: Fault) -> list[str]:
    return [
        f"insert into events select * replace ("
        f"ingested_at + interval 1 minute as ingested_at, "
        f"'redelivery-' || coalesce(ingestion_id, '') as ingestion_id) "
        f"from events where {_received_on(f)} and {_share('message_id', f.param('share'), f)}"
    ]


def _injected(table: str, f: Fault, select: str) -> list[str]:
    """Insert rows (a temp table remembers them, for the repair)."""
    name = f"_injected_{f.type}_{f.day:%Y%m%d}"
    return [
        f"create or replace temp table {name} as {select}",
        f"insert into {table} select * replace (cast(ingested_at as date) as ingest_date) "
        f"from {name}",
    ]


def _remove_injected(table: str) -> Callable[[Fault], list[str]]:
    def repair(f: Fault) -> list[str]:
        name = f"_injected_{f.type}_{f.day:%Y%m%d}"
        return [f"delete from {table} where (pk, lsn) in (select pk, lsn from {name})"]

    return repair


def _duplicate_keys(f: Fault) -> list[str]:
    return _injected(
        "cdc_orders",
        f,
        f"select * replace (replace(pk, ':', ': ') as pk, lsn + 1 as lsn, "
        f"ingested_at + interval 1 second as ingested_at) from cdc_orders "
        f"where ingest_date = {_d(f.day)} and op in ('c', 'u') "
        f"and {_share('pk', f.param('share'), f)}",
    )


def _orphaned_fk(f: Fault) -> list[str]:
    bad = f"cast(json_merge_patch(after, '{{\"product_id\": {MISSING_PRODUCT_ID}}}') as varchar)"
    return _injected(
        "cdc_order_items",
        f,
        f"select * replace ('u' as op, after as before, {bad} as after, lsn + 1 as lsn, "
        f"ingested_at + interval 1 second as ingested_at) from cdc_order_items "
        f"where ingest_date = {_d(f.day)} and op = 'c' and {_share('pk', f.param('share'), f)}",
    )


# schema_drift changes the day's files as they are written: see drift_batch


# --- values ----------------------------------------------------------------------------


def _backup(f: Fault) -> str:
    return f"_backup_{f.type}_{f.day:%Y%m%d}"


def _patched(table: str, f: Fault, where: str, after: str) -> list[str]:
    """Rewrite `after` of the matching rows in place (their originals are kept for the
    repair)."""
    return [
        f"create or replace temp table {_backup(f)} as select pk, lsn, after from {table} "
        f"where {where}",
        f"update {table} set after = {after} where {where}",
    ]


def _restore(table: str) -> Callable[[Fault], list[str]]:
    def repair(f: Fault) -> list[str]:
        return [
            f"update {table} set after = original.after from {_backup(f)} as original "
            f"where {table}.pk = original.pk and {table}.lsn = original.lsn"
        ]

    return repair


def _orders_of_the_day(f: Fault) -> str:
    """A share of the orders created on the fault's day (every change of them): round(share
    x orders), at least one, in an order salted per injection. A day has a few dozen new
    orders: drawn one by one, 6% of 43 was no order at all (a fault that did not happen)."""
    salt = f"{f.type}{f.day}"
    ranked = (
        f"select pk, row_number() over (order by hash(pk || '{salt}'), pk) as n, "
        f"count(*) over () as orders from cdc_orders where ingest_date = {_d(f.day)} "
        f"and op = 'c'"
    )
    chosen = f"n <= greatest(1, round(orders * {f.param('share')}))"
    return f"after is not null and pk in (select pk from ({ranked}) as ranked where {chosen})"


def _wrong_amount(f: Fault) -> list[str]:
    """The checkout prices a share of the day's orders x k (subtotal, hence total): the
    database records what was charged, the shop's events report the right amounts."""

    def amount(key: str) -> str:
        return f"cast(json_extract_string(after, '$.{key}') as double)"

    subtotal = f"round({amount('subtotal')} * {f.param('factor')}, 2)"
    patched = (
        f"cast(json_merge_patch(after, json_object("
        f"'subtotal', cast({subtotal} as varchar), "
        f"'total_amount', cast(round({subtotal} + {amount('shipping')}, 2) as varchar))) "
        f"as varchar)"
    )
    return _patched("cdc_orders", f, _orders_of_the_day(f), patched)


def _price_in_cents(f: Fault) -> list[str]:
    """An app release reports product prices and order amounts in cents."""
    return [
        f"update events set payload = cast(json_merge_patch(payload, json_object('properties', "
        f"json_object('{key}', cast(json_extract_string(payload, '$.properties.{key}') "
        f"as double) * 100))) as varchar) "
        f"where {_received_on(f)} and source = '{f.param('source')}' "
        f"and json_extract(payload, '$.properties.{key}') is not null "
        f"and {_share('anonymous_id', f.param('share'), f)}"
        for key in ("price", "total", "subtotal", "revenue")
    ]


def _invalid_values(f: Fault) -> list[str]:
    """The CDC bridge drops a field the database requires (NOT NULL) from the changes of a
    share of the day's new orders."""
    dropped = f"cast(json_merge_patch(after, '{{\"{f.param('column')}\": null}}') as varchar)"
    where = f"ingest_date = {_d(f.day)} and {_orders_of_the_day(f)}"
    return _patched("cdc_orders", f, where, dropped)


# --- mixes -----------------------------------------------------------------------------


def _tracking_stop(f: Fault) -> list[str]:
    where = (
        f"{_received_on(f)} and source = 'web' and event = '{f.param('event')}' "
        f"and {_share('anonymous_id', f.param('share'), f)}"
    )
    return [
        f"create or replace temp table {_backup(f)} as select * from events where {where}",
        f"delete from events where {where}",
    ]


def _backfill_events(f: Fault) -> list[str]:
    """The lost events are recovered (server logs) and loaded the next morning."""
    morning = _ts(_start(f) + timedelta(days=1, minutes=30))
    return [
        f"insert into events select * replace ({morning} + (ingested_at - "
        f"{_ts(_start(f))}) / 1000 as ingested_at) from {_backup(f)}"
    ]


def _device_misclassified(f: Fault) -> list[str]:
    return [
        f"update events set device_type = 'unknown' where {_received_on(f)} "
        f"and source = 'web' and device_type = 'desktop' "
        f"and {_share('anonymous_id', f.param('share'), f)}"
    ]


# --- partial stalls --------------------------------------------------------------------


def _source_stall(f: Fault) -> list[str]:
    """One app's events stop flowing from some hour; the backlog lands in order once the
    path resumes, after the day was judged (while the other sources flow all along)."""
    since = _start(f) + timedelta(hours=f.param("from_hour"))
    delay = f"({_ts(_start(f) + timedelta(days=1, minutes=30))} - {_ts(since)})"
    return [
        f"update events set ingested_at = ingested_at + {delay} "
        f"where source = '{f.param('source')}' "
        f"and received_at >= {_ts(since)} and received_at < {_ts(_start(f) + timedelta(1))}"
    ]


def _cdc_stall(f: Fault) -> list[str]:
    since = _start(f) + timedelta(hours=f.param("from_hour"))
    # the backlog lands in order once the path resumes, after the day was judged
    delay = f"({_ts(_start(f) + timedelta(days=1, minutes=30))} - {_ts(since)})"
    return [
        f"update {table} set ingested_at = ingested_at + {delay}, "
        f"ingest_date = cast(ingested_at + {delay} as date) "
        f"where source_ts >= {_ts(since)} and source_ts < {_ts(_start(f) + timedelta(1))}"
        for table in ("cdc_users", "cdc_products", "cdc_orders", "cdc_order_items")
    ]


# --- cross-source ----------------------------------------------------------------------


def _phantom_products(f: Fault) -> list[str]:
    unknown = f"'{MISSING_PRODUCT_ID + 7}'"
    return [
        f"update events set payload = cast(json_merge_patch(payload, json_object('properties', "
        f"json_object('product_id', {unknown}))) as varchar) "
        f"where {_received_on(f)} and event = 'Product Viewed' "
        f"and {_share('message_id', f.param('share'), f)}"
    ]


CLASSES: dict[str, FaultClass] = {
    "late_data": FaultClass(
        "freshness", lambda r: {"from_hour": r.randint(18, 21)}, _late_data, ranges="from 18-21h"
    ),
    "volume_drop": FaultClass(
        "volume", lambda r: {"share": _uniform(0.6, 1.0)(r)}, _volume_drop, ranges="apps 60-100%"
    ),
    "volume_spike": FaultClass(
        "volume", lambda r: {"share": _uniform(0.6, 1.0)(r)}, _volume_spike, ranges="web +60-100%"
    ),
    "null_burst": FaultClass(
        "nulls", lambda r: {"share": _uniform(0.4, 0.8)(r)}, _null_burst, ranges="web 40-80%"
    ),
    "duplicate_burst": FaultClass(
        "duplicates", lambda r: {"share": _uniform(0.2, 0.4)(r)}, _duplicate_burst, ranges="20-40%"
    ),
    "duplicate_keys": FaultClass(
        "duplicates",
        lambda r: {"share": _uniform(0.1, 0.3)(r)},
        _duplicate_keys,
        _remove_injected("cdc_orders"),
        ranges="10-30% of changes",
    ),
    "schema_drift": FaultClass("schema", lambda r: {}, lambda f: [], ranges="-"),
    "orphaned_fk": FaultClass(
        "references",
        lambda r: {"share": _uniform(0.1, 0.4)(r)},
        _orphaned_fk,
        _remove_injected("cdc_order_items"),
        ranges="10-40% of lines",
    ),
    "wrong_amount": FaultClass(
        "values",
        lambda r: {
            "share": _uniform(0.6, 1.0)(r),
            "factor": r.choice((_uniform(0.4, 0.7), _uniform(1.4, 2.5)))(r),
        },
        _wrong_amount,
        _restore("cdc_orders"),
        ranges="60-100% of orders x0.4-0.7 or x1.4-2.5",
    ),
    "price_in_cents": FaultClass(
        "values",
        lambda r: {"source": r.choice(("ios", "android")), "share": _uniform(0.6, 1.0)(r)},
        _price_in_cents,
        ranges="ios|android, 60-100% of its visitors",
    ),
    "invalid_values": FaultClass(
        "values",
        lambda r: {
            "column": r.choice(("currency", "subtotal", "shipping")),
            "share": _uniform(0.05, 0.3)(r),
        },
        _invalid_values,
        _restore("cdc_orders"),
        ranges="currency|subtotal|shipping dropped on 5-30% of new orders",
    ),
    "tracking_stop": FaultClass(
        "mixes",
        lambda r: {
            "event": r.choice(("Product Viewed", "Product List Viewed")),
            "share": _uniform(0.7, 1.0)(r),
        },
        _tracking_stop,
        _backfill_events,
        ranges="product or list views, 70-100% of web visitors",
    ),
    "device_misclassified": FaultClass(
        "mixes",
        lambda r: {"share": _uniform(0.4, 0.9)(r)},
        _device_misclassified,
        ranges="40-90% of web desktops",
    ),
    "source_stall": FaultClass(
        "partial stalls",
        lambda r: {"source": r.choice(("ios", "android")), "from_hour": r.randint(1, 8)},
        _source_stall,
        ranges="ios|android from 1-8h",
    ),
    "cdc_stall": FaultClass(
        "partial stalls", lambda r: {"from_hour": r.randint(6, 16)}, _cdc_stall, ranges="from 6-16h"
    ),
    "phantom_products": FaultClass(
        "cross-source",
        lambda r: {"share": _uniform(0.05, 0.3)(r)},
        _phantom_products,
        ranges="5-30% of product views",
    ),
}
FAULT_TYPES = tuple(CLASSES)

_EVENT_VOLUME = (
    "raw/events:volume_anomaly",
    "staging/stg_events:volume_anomaly",
    "staging/int_sessions:volume_anomaly",
)
_EVENT_MIX = (
    "raw/events:column_mix",
    "staging/stg_events:column_mix",
    "staging/int_sessions:column_mix",
)
_AMOUNTS = "mart/fct_orders:consistency_order_amounts_events_vs_database"
# The checks expected to catch each class ("asset:check"); any of them counts.
DETECTED_BY: dict[str, tuple[str, ...]] = {
    "late_data": ("raw/events:freshness",),
    "volume_drop": _EVENT_VOLUME + _EVENT_MIX,
    "volume_spike": _EVENT_VOLUME + _EVENT_MIX,
    "null_burst": ("raw/events:null_rate", "staging/stg_events:null_rate") + _EVENT_MIX,
    "duplicate_burst": ("raw/events:duplicate_keys",),
    "duplicate_keys": (
        "staging/stg_orders:unique_stg_orders_order_id",
        "mart/fct_orders:unique_fct_orders_order_id",
    ),
    "schema_drift": ("raw/events:schema_change",),
    "orphaned_fk": (f"staging/stg_order_items:{RELATIONSHIPS_PRODUCT}",),
    "wrong_amount": (
        _AMOUNTS,
        "staging/stg_orders:column_values",
        "mart/fct_orders:column_values",
        "mart/mart_daily_sales:column_values",
    ),
    "price_in_cents": ("staging/stg_events:column_values", _AMOUNTS),
    # each NOT NULL is checked once: currency's by stg_orders' dbt test, the others by the
    # source's constraints
    "invalid_values": (
        "staging/stg_orders:source_constraints",
        "staging/stg_orders:not_null_stg_orders_currency",
    ),
    "tracking_stop": _EVENT_MIX
    + ("mart/mart_conversion_funnel:column_values", "staging/int_sessions:column_values"),
    "device_misclassified": _EVENT_MIX + ("mart/mart_conversion_funnel:column_mix",),
    "source_stall": _EVENT_MIX + _EVENT_VOLUME,
    "cdc_stall": (
        "mart/mart_daily_sales:consistency_orders_events_vs_database",
        _AMOUNTS,
        "raw/cdc_orders:volume_anomaly",
        "raw/cdc_order_items:volume_anomaly",
    ),
    "phantom_products": ("staging/stg_events:consistency_products_viewed_exist",),
}


def apply_fault(con: Any, fault: Fault) -> None:
    """Change the raw tables held by DuckDB connection `con` as the fault would."""
    for statement in CLASSES[fault.type].sql(fault):
        con.execute(statement)


def repair_fault(con: Any, fault: Fault) -> bool:
    """Undo a repairable fault in the raw tables (a backfill); False if it has no repair."""
    repair = CLASSES[fault.type].repair
    if repair is None:
        return False
    for statement in repair(fault):
        con.execute(statement)
    return True


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


__all__ = [
    "CLASSES",
    "DETECTED_BY",
    "FAULT_TYPES",
    "Fault",
    "apply_fault",
    "drift_batch",
    "inject_orphaned_order_items",
    "make_fault",
    "repair_fault",
]
