"""The dbt project on the local target (DuckDB over the Parquet lake), on real synthetic data.

One session-scoped fixture simulates a small shop and lands it in a Parquet lake in two
halves, split by ingestion time: everything ingested before a cutoff, then the rest (late
events included). dbt builds after each half, so the second build takes the incremental
path; a full refresh of stg_events into another DuckDB file is the reference it must equal.
Other tests work on copies of the lake and the warehouse: replayed raw rows, deletes,
truncates and a partition run with vars. dbt runs as a subprocess, as Dagster runs it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from devtools.shop.load import load_shop
from devtools.shop.simulator import PAID_STATUSES, ShopConfig, SyntheticShop
from streaming.raw.writer import ParquetRawWriter

ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = ROOT / "dbt_project"
CONFIG = ShopConfig(
    seed=5,  # a seed whose ten days include refunds and cancelled orders
    days=10,
    sessions_per_day=60,
    initial_users=80,
    products=30,
    end_date=date(2026, 11, 20),
    duplicate_rate=0.02,  # more client retries
    offline_rate=0.06,  # and more app sessions delivered hours late
)
CUTOFF = datetime(2026, 11, 17, 3, 0)  # rows ingested before this land first


class _IngestedWindow:
    """A raw writer that lets through only rows ingested before (or from) a cutoff."""

    def __init__(self, inner: ParquetRawWriter, before: bool) -> None:
        self.inner = inner
        self.before = before

    def ensure_tables(self) -> None:
        self.inner.ensure_tables()

    def write(self, table: str, rows: Any) -> int:
        kept = [r for r in rows if (r["ingested_at"] < CUTOFF) == self.before]
        return self.inner.write(table, kept) if kept else 0


def run_dbt(*args: str, lake: Path, warehouse: Path, tmp: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "LAKE_DIR": str(lake),
        "DUCKDB_PATH": str(warehouse),
        "DBT_TARGET": "local",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    command = [
        sys.executable,
        "-m",
        "dbt.cli.main",
        *args,
        "--project-dir",
        str(PROJECT_DIR),
        "--profiles-dir",
        str(PROJECT_DIR),
        "--target-path",
        str(tmp / "target"),
        "--log-path",
        str(tmp / "logs"),
    ]
    result = subprocess.run(
        command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}"
    return result


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@dataclass
class Built:
    shop: SyntheticShop
    lake: Path
    warehouse: Path  # built on the first half, then incrementally on the rest
    reference: Path  # stg_events by a full refresh over everything
    tmp: Path


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("dbt")
    lake, warehouse, reference = tmp / "lake", tmp / "warehouse.duckdb", tmp / "reference.duckdb"
    writer = ParquetRawWriter(lake)
    load_shop(_IngestedWindow(writer, before=True), CONFIG)
    run_dbt("build", lake=lake, warehouse=warehouse, tmp=tmp)
    shop, _ = load_shop(_IngestedWindow(writer, before=False), CONFIG)
    run_dbt("build", lake=lake, warehouse=warehouse, tmp=tmp)
    run_dbt("run", "-s", "stg_events", "--full-refresh", lake=lake, warehouse=reference, tmp=tmp)
    return Built(shop, lake, warehouse, reference, tmp)


def _copy(built: Built, name: str) -> tuple[Path, Path, Path]:
    tmp = built.tmp / name
    tmp.mkdir()
    shutil.copytree(built.lake, tmp / "lake")
    shutil.copy(built.warehouse, tmp / "warehouse.duckdb")
    return tmp / "lake", tmp / "warehouse.duckdb", tmp


# --- fast checks (no build) ----------------------------------------------------------------


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
    with duckdb.connect() as con:
        con.execute(f"attach '{built.warehouse}' as inc (read_only)")
        con.execute(f"attach '{built.reference}' as ref (read_only)")
        total = con.execute("select count(*) from inc.staging.stg_events").fetchone()[0]
        assert total == con.execute("select count(*) from ref.staging.stg_events").fetchone()[0]
        for left, right in (("inc", "ref"), ("ref", "inc")):
            missing = con.execute(f"""
                select count(*) from (
                    select * from {left}.staging.stg_events
                    except all
                    select * from {right}.staging.stg_events
                )
            """).fetchone()[0]
            assert missing == 0, f"{missing} stg_events rows of {left} are not in {right}"


@pytest.mark.slow
def test_stg_events_has_one_row_per_message(built: Built) -> None:
    raw_messages, raw_rows = query(
        built.warehouse,
        f"""
        select count(distinct message_id), count(*)
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


@pytest.mark.slow
def test_daily_sales_match_the_source_database(built: Built) -> None:
    truth: dict[date, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * 4)
    for order in built.shop.rows("orders"):
        if order["status"] in PAID_STATUSES:
            day = truth[order["created_at"].date()]
            day[0] += 1
            day[1] += order["total_amount"]
        if order["refunded_at"] is not None:
            day = truth[order["refunded_at"].date()]
            day[2] += 1
            day[3] += order["total_amount"]
    assert any(refunded for _, _, refunded, _ in truth.values()), "pick a seed with refunds"
    rows = query(
        built.warehouse,
        """
        select sales_date, orders, gross_revenue, refunded_orders, refunds, net_revenue
        from mart.mart_daily_sales order by sales_date
    """,
    )
    mart = {d: [Decimal(o), g, Decimal(ro), r] for d, o, g, ro, r, _ in rows}
    assert {d: v for d, v in mart.items() if any(v)} == dict(truth)
    assert all(net == gross - refunds for _, _, gross, _, refunds, net in rows)
    days = [d for d, *_ in rows]
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]  # no gaps


@pytest.mark.slow
def test_marts_are_consistent(built: Built) -> None:
    paid = sum(1 for r in built.shop.rows("orders") if r["status"] in PAID_STATUSES)
    assert (
        query(built.warehouse, "select count(*) from mart.fct_orders where is_paid")[0][0] == paid
    )
    assert query(built.warehouse, "select sum(orders) from mart.mart_user_behavior")[0][0] == paid
    # sessions that ordered <= Order Completed events; every product appears once
    sessions_with_order, order_events = query(
        built.warehouse,
        """
        select
            (select sum(order_sessions) from mart.mart_conversion_funnel),
            (select count(*) from staging.stg_events where event_name = 'Order Completed')
    """,
    )[0]
    assert 0 < sessions_with_order <= order_events
    products = query(built.warehouse, "select count(*) from mart.mart_product_performance")[0][0]
    assert products == len(built.shop.rows("products"))


# --- partition runs, replays, deletes, truncates -------------------------------------------


@pytest.mark.slow
def test_vars_recompute_exactly_the_given_dates(built: Built) -> None:
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
    assert {d for d, is_stale in stale.items() if not is_stale} == {
        date(2026, 11, 15),
        date(2026, 11, 16),
    }
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
    event = _raw_rows(lake, "events", "type = 'track'", "order by event_timestamp limit 1")[0]
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


def test_build_on_an_empty_lake(tmp_path: Path) -> None:
    """A fresh deployment: only the raw tables' zero-row schema files, no data yet."""
    lake, warehouse = tmp_path / "lake", tmp_path / "warehouse.duckdb"
    ParquetRawWriter(lake).ensure_tables()
    run_dbt("build", lake=lake, warehouse=warehouse, tmp=tmp_path)
    assert query(warehouse, "select count(*) from mart.mart_daily_sales") == [(0,)]
