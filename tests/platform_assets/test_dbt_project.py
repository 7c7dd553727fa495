"""The dbt project on the local target (DuckDB over the Parquet lake), on real synthetic data.

The realistic shop of shop_build.py is landed in two halves split by ingestion time and built
after each (the second build is incremental); a full refresh of stg_events is the reference
it must equal. Other tests work on copies of the lake and the warehouse: replayed raw rows,
deletes, truncates, partition runs with vars in either order, and the dbt unit tests. dbt runs
as a subprocess, as Dagster runs it. The marts' values are proven in test_marts_*.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from streaming.raw.writer import ParquetRawWriter
from tests.platform_assets.shop_build import (
    CONFIG,
    CUTOFF,
    ROOT,
    Built,
    query,
    run_dbt,
)

pytestmark = pytest.mark.long  # dbt builds of a whole shop, minutes


@pytest.fixture
def built(shop_build: Built) -> Built:
    return shop_build


def _copy(built: Built, name: str) -> tuple[Path, Path, Path]:
    tmp = built.tmp / name
    tmp.mkdir()
    shutil.copytree(built.lake, tmp / "lake")
    shutil.copy(built.warehouse, tmp / "warehouse.duckdb")
    return tmp / "lake", tmp / "warehouse.duckdb", tmp


# --- fast checks (no build) ----------------------------------------------------------------


@pytest.mark.slow  # about a minute: it renders and lints every model and analysis
def test_sqlfluff_lint_passes() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sqlfluff",
            "lint",
            "dbt_project/models",
            "dbt_project/analyses",
            "--disable-progress-bar",
            "--nocolor",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:]


# --- build, incremental, against the generator's truth -------------------------------------


@pytest.mark.slow
def test_incremental_build_equals_full_refresh(built: Built) -> None:
    # the second half recomputed earlier event dates too (late, offline deliveries)
    late = query(
        built.warehouse,
        f"""
        select count(*) from staging.stg_events
        where ingested_at >= timestamp '{CUTOFF}' and event_date < date '{CUTOFF.date()}'
    """,
    )[0][0]
    assert late > 0
    _assert_same_rows(built, "stg_events")


@pytest.mark.slow
def test_incremental_sessions_equal_a_full_rebuild(built: Built) -> None:
    """int_sessions rebuilds only the visitors with new events: after the second half, the
    sessions equal those of a full refresh, the visitors with events in both halves too."""
    returning = query(
        built.warehouse,
        f"""
        select count(*) from (
            select anonymous_id from staging.stg_events
            group by anonymous_id
            having min(ingested_at) < timestamp '{CUTOFF}'
                and max(ingested_at) >= timestamp '{CUTOFF}'
        )
    """,
    )[0][0]
    assert returning > 0
    _assert_same_rows(built, "int_sessions")


def _assert_same_rows(built: Built, table: str) -> None:
    """The incrementally built staging table holds the same rows as the full refresh's."""
    with duckdb.connect() as con:
        con.execute(f"attach '{built.warehouse}' as inc (read_only)")
        con.execute(f"attach '{built.reference}' as ref (read_only)")
        count = f"select count(*) from {{}}.staging.{table}"
        assert (
            con.execute(count.format("inc")).fetchone()
            == con.execute(count.format("ref")).fetchone()
        )
        for left, right in (("inc", "ref"), ("ref", "inc")):
            missing = con.execute(f"""
                select count(*) from (
                    select * from {left}.staging.{table}
                    except all
                    select * from {right}.staging.{table}
                )
            """).fetchone()[0]
            assert missing == 0, f"{missing} {table} rows of {left} are not in {right}"


@pytest.mark.slow
def test_a_refresh_rebuilds_only_the_sessions_of_visitors_with_new_events(built: Built) -> None:
    lake, warehouse, tmp = _copy(built, "sessions")
    # the visitor whose events landed first (outside any look-back), and another one
    (quiet,), (active,) = query(
        warehouse,
        """
        select anonymous_id from staging.stg_events where anonymous_id is not null
        group by anonymous_id order by max(ingested_at), anonymous_id limit 2
    """,
    )
    # a mark on the quiet visitor's sessions that only a rebuild of them would erase
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update staging.int_sessions set page_views = page_views + 1000 "
            f"where anonymous_id = '{quiet}'"
        )
    last = _raw_rows(
        lake, "events", f"anonymous_id = '{active}'", "order by event_timestamp desc limit 1"
    )[0]
    (before,) = query(
        warehouse,
        f"select events from staging.int_sessions where anonymous_id = '{active}' "
        "order by session_number desc limit 1",
    )[0]
    later = datetime(2026, 11, 21, 9, 0)
    ten_minutes_on = last["event_timestamp"] + timedelta(minutes=10)  # the same session
    ParquetRawWriter(lake).write(
        "events",
        [
            {
                **last,
                "message_id": "one-more-event-of-the-session",
                "event_timestamp": ten_minutes_on,
                "event_date": ten_minutes_on.date(),
                "received_at": later,
                "ingested_at": later,
            }
        ],
    )
    run_dbt("run", "-s", "stg_events", "int_sessions", lake=lake, warehouse=warehouse, tmp=tmp)
    marked = query(
        warehouse,
        "select bool_and(page_views >= 1000) from staging.int_sessions "
        f"where anonymous_id = '{quiet}'",
    )
    assert marked == [(True,)], "the sessions of a visitor without new events were rebuilt"
    (after,) = query(
        warehouse,
        f"select events from staging.int_sessions where anonymous_id = '{active}' "
        "order by session_number desc limit 1",
    )[0]
    assert after == before + 1


@pytest.mark.slow
def test_stg_events_has_one_row_per_message(built: Built) -> None:
    """A message is (source, message_id): Segment messageIds are unique per source."""
    raw_messages, raw_rows = query(
        built.warehouse,
        f"""
        select count(distinct (source, message_id)), count(*)
        from read_parquet('{built.lake}/events/**/*.parquet', union_by_name = true)
    """,
    )[0]
    assert raw_rows > raw_messages  # the generator's retries are there
    assert query(built.warehouse, "select count(*) from staging.stg_events")[0][0] == raw_messages


@pytest.mark.slow
def test_current_state_matches_the_source_database(built: Built) -> None:
    orders = {row["order_id"]: row for row in built.shop.rows("orders")}
    staged = {
        order_id: (status, total)
        for order_id, status, total in query(
            built.warehouse, "select order_id, status, total_amount from staging.stg_orders"
        )
    }
    assert staged == {k: (r["status"], r["total_amount"]) for k, r in orders.items()}
    users = query(built.warehouse, "select user_id from staging.stg_users")
    assert sorted(u for (u,) in users) == sorted(r["user_id"] for r in built.shop.rows("users"))
    items = query(
        built.warehouse,
        "select order_id, line_number, quantity, unit_price from staging.stg_order_items",
    )
    assert sorted(items) == sorted(
        (r["order_id"], r["line_number"], r["quantity"], r["unit_price"])
        for r in built.shop.rows("order_items")
    )
    prices = dict(query(built.warehouse, "select product_id, price from staging.stg_products"))
    assert prices == {r["product_id"]: r["price"] for r in built.shop.rows("products")}


# --- partition runs, replays, deletes, truncates -------------------------------------------


@pytest.mark.slow
def test_vars_recompute_the_given_dates_and_those_sharing_their_messages(built: Built) -> None:
    lake, warehouse, tmp = _copy(built, "vars")
    with duckdb.connect(str(warehouse)) as con:
        con.execute("update staging.stg_events set browser = 'stale'")
    run_dbt(
        "run",
        "-s",
        "stg_events",
        "--vars",
        "{min_date: '2026-11-15', max_date: '2026-11-16'}",
        lake=lake,
        warehouse=warehouse,
        tmp=tmp,
    )
    stale = dict(
        query(
            warehouse,
            """
        select event_date, bool_and(browser is not distinct from 'stale')
        from staging.stg_events group by event_date
    """,
        )
    )
    given = {date(2026, 11, 15), date(2026, 11, 16)}
    deliveries = _raw_rows(lake, "events", "true")
    messages = {(r["source"], r["message_id"]) for r in deliveries if r["event_date"] in given}
    sharing = {r["event_date"] for r in deliveries if (r["source"], r["message_id"]) in messages}
    assert {d for d, is_stale in stale.items() if not is_stale} == given | sharing
    assert len(stale) == CONFIG.days


def _raw_rows(lake: Path, table: str, where: str, order: str = "") -> list[dict[str, Any]]:
    with duckdb.connect() as con:
        arrow = con.sql(f"""
            select * from read_parquet('{lake}/{table}/**/*.parquet', union_by_name = true,
                                       hive_partitioning = false)
            where {where} {order}
        """).to_arrow_table()
    return arrow.to_pylist()


@pytest.mark.slow
def test_replays_deletes_and_truncates(built: Built) -> None:
    lake, warehouse, tmp = _copy(built, "replays")
    writer = ParquetRawWriter(lake)
    counts_sql = """
        select
            (select count(*) from staging.stg_events),
            (select count(*) from staging.stg_orders),
            (select count(*) from staging.stg_order_status_history),
            (select count(*) from staging.stg_users),
            (select count(*) from staging.stg_order_items)
    """
    events, orders, history, users, items = query(warehouse, counts_sql)[0]
    assert items > 0
    later = datetime(2026, 11, 21, 9, 0)

    # at-least-once delivery: a message arrives again after everything else
    event = _raw_rows(
        lake,
        "events",
        "type = 'track'",
        "qualify row_number() over (partition by source, message_id order by received_at) = 1 "
        "order by event_timestamp limit 1",
    )[0]
    writer.write("events", [{**event, "received_at": later, "ingested_at": later}])

    # a bridge replay: every change of one order again, as new Kafka records
    order_changes = _raw_rows(lake, "cdc_orders", "op = 'c'", "order by lsn limit 1")
    order_pk = order_changes[0]["pk"]
    replay = _raw_rows(lake, "cdc_orders", f"pk = '{order_pk}'", "order by lsn")
    assert len(replay) > 1
    writer.write(
        "cdc_orders",
        [
            {
                **row,
                "kafka_offset": row["kafka_offset"] + 100_000,
                "ingested_at": later,
                "ingest_date": later.date(),
            }
            for row in replay
        ],
    )

    max_lsn = max(
        r["lsn"]
        for table in ("cdc_users", "cdc_orders", "cdc_order_items", "cdc_products")
        for r in _raw_rows(lake, table, "true", "order by lsn desc limit 1")
    )
    cdc_meta = {
        "tx_id": 1,
        "source_ts": later,
        "snapshot": "false",
        "kafka_partition": 0,
        "kafka_offset": 10_000_000,
        "ingested_at": later,
        "ingest_date": later.date(),
    }

    # a user deletes their account
    user_id = query(warehouse, "select min(user_id) from staging.stg_users")[0][0]
    user_pk = json.dumps({"user_id": user_id}, separators=(",", ":"))
    user = _raw_rows(lake, "cdc_users", f"pk = '{user_pk}'", "order by lsn desc")[0]
    writer.write(
        "cdc_users",
        [
            {
                **cdc_meta,
                "op": "d",
                "pk": user["pk"],
                "before": user["after"],
                "after": None,
                "lsn": max_lsn + 56,
                "kafka_topic": "shop.public.users",
            }
        ],
    )

    # TRUNCATE order_items, then one line is inserted again (after the truncate's LSN)
    line = _raw_rows(lake, "cdc_order_items", "op in ('c', 'r')", "order by lsn desc limit 1")[0]
    items_topic = "shop.public.order_items"
    truncate = {**cdc_meta, "op": "t", "pk": None, "before": None, "after": None}
    reinsert = {**cdc_meta, "op": "c", "pk": line["pk"], "before": None, "after": line["after"]}
    writer.write(
        "cdc_order_items",
        [
            {**truncate, "lsn": max_lsn + 112, "kafka_topic": items_topic},
            {
                **reinsert,
                "lsn": max_lsn + 168,
                "kafka_topic": items_topic,
                "kafka_offset": 10_000_001,
            },
        ],
    )

    run_dbt(
        "run",
        "-s",
        "stg_events",
        "stg_orders",
        "stg_order_status_history",
        "stg_users",
        "stg_order_items",
        lake=lake,
        warehouse=warehouse,
        tmp=tmp,
    )

    assert query(warehouse, counts_sql)[0] == (events, orders, history, users - 1, 1)
    assert query(
        warehouse, f"select count(*) from staging.stg_users where user_id = {user_id}"
    ) == [(0,)]
    kept = query(
        warehouse,
        f"select received_at from staging.stg_events where message_id = '{event['message_id']}'",
    )
    assert kept == [(event["received_at"],)]  # the first delivery still wins
    order_id = json.loads(order_pk)["order_id"]
    current = {r["order_id"]: r["status"] for r in built.shop.rows("orders")}
    status = query(warehouse, f"select status from staging.stg_orders where order_id = {order_id}")
    assert status == ([(current[order_id],)] if order_id in current else [])


@pytest.mark.slow
def test_dedup_does_not_depend_on_the_order_dates_are_built(built: Built) -> None:
    """A retry sent after the client's clock was corrected lands on the next event date,
    and its first delivery lands in raw only later. Building the retry's date then the
    first's used to keep the retry; building them the other way round, the first."""
    event = _raw_rows(
        built.lake, "events", "type = 'track' and event_date = date '2026-11-18'", "limit 1"
    )[0]
    first = {
        **event,
        "message_id": "late-first-delivery",
        "event_timestamp": datetime(2026, 11, 18, 23, 59, 58),
        "event_date": date(2026, 11, 18),
        "received_at": datetime(2026, 11, 21, 10, 0, 0),
        "ingested_at": datetime(2026, 11, 21, 10, 0, 2),
    }
    retry = {
        **first,
        "event_timestamp": datetime(2026, 11, 19, 2, 59, 58),  # the clock moved by 3 hours
        "event_date": date(2026, 11, 19),
        "received_at": datetime(2026, 11, 21, 10, 0, 40),
        "ingested_at": datetime(2026, 11, 21, 10, 0, 41),
    }
    results = []
    for order in (("2026-11-19", "2026-11-18"), ("2026-11-18", "2026-11-19")):
        lake, warehouse, tmp = _copy(built, "order-" + "-".join(d[-2:] for d in order))
        writer = ParquetRawWriter(lake)
        writer.write("events", [retry])
        writer.write("events", [first])
        for day in order:
            run_dbt(
                "run", "-s", "stg_events", "--vars", json.dumps({"min_date": day, "max_date": day}),
                lake=lake, warehouse=warehouse, tmp=tmp,
            )  # fmt: skip
        results.append(
            query(
                warehouse,
                "select message_id, event_date, received_at from staging.stg_events "
                "where message_id = 'late-first-delivery'",
            )
        )
    assert (
        results[0]
        == results[1]
        == [("late-first-delivery", date(2026, 11, 18), first["received_at"])]
    )


@pytest.mark.slow
def test_dbt_unit_tests_pass(built: Built) -> None:
    """The project's dbt unit tests (given/expect rows for the edge cases of the CDC current
    state, dedup, sessions, attribution and the marts' definitions)."""
    lake, warehouse, tmp = _copy(built, "unit-tests")
    run_dbt(
        "test", "--select", "test_type:unit", "--vars", "{unit_tests: true}",
        lake=lake, warehouse=warehouse, tmp=tmp,
    )  # fmt: skip
    results = json.loads((tmp / "target" / "run_results.json").read_text())["results"]
    names = {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in results}
    assert len(names) >= 16 and set(names.values()) == {"pass"}, names
    for name in (
        "current_state_resnapshot_is_the_whole_table",
        "dedup_across_dates_building_the_later_date",
        "sessions_split_after_thirty_minutes_to_the_microsecond",
        "last_non_direct_touch_within_thirty_days",
        "daily_sales_average_order_value_rounds_half_up_in_cents",
    ):
        assert name in names


def test_build_on_an_empty_lake(tmp_path: Path) -> None:
    """A fresh deployment: only the raw tables' zero-row schema files, no data yet."""
    lake, warehouse = tmp_path / "lake", tmp_path / "warehouse.duckdb"
    ParquetRawWriter(lake).ensure_tables()
    run_dbt("build", lake=lake, warehouse=warehouse, tmp=tmp_path)
    assert query(warehouse, "select count(*) from mart.mart_daily_sales") == [(0,)]
