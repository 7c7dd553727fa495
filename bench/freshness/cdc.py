"""The CDC leg of bench.freshness: PostgreSQL commit -> raw.cdc_orders -> mart_daily_sales.

The local CDC path as `make dev` runs it: a PostgreSQL with logical replication, the capture
(pgoutput -> Debezium envelopes), the mock Kafka cluster in its own process and the bridge
writing raw.cdc_* into the benchmark's lake. A writer thread commits paid orders (one line
each) at a steady rate while the event traffic runs; the raw sensor sees the new cdc_orders
files and refreshes the whole-table models downstream (stg_orders ... mart_daily_sales).

Measured per order, from its commit time in PostgreSQL (`source_ts`, which the capture
carries; the server and the benchmark share this machine's clock):
- -> readable in raw: the mtime of the Parquet file that holds its change (the bridge writes
  a file and renames it into place);
- -> reflected in mart_daily_sales: the first materialization of the mart by a run that
  started after the order was readable in raw (an upper bound, as for events).
No order missing: every committed order is looked up in staging.stg_orders after the run.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC
from pathlib import Path

import duckdb
import psycopg

from bench.cdc.shop import raw_rows, seed
from devtools.cdc.processes import ChildProcess, start_bridge, start_capture, start_mock_kafka
from devtools.sourcedb.migrate import migrate
from devtools.sourcedb.server import temporary_postgres

MART = ("mart", "mart_daily_sales")
USERS = 50
PRODUCTS = 20
FIRST_ORDER = 1_000_000  # above anything a seed would use


class OrderWriter(threading.Thread):
    """Commits one paid order per 1/rate seconds until stopped (or `duration` elapsed)."""

    def __init__(self, dsn: str, rate: float, duration: float) -> None:
        super().__init__(daemon=True)
        self.dsn, self.rate, self.duration = dsn, rate, duration
        self.committed: list[int] = []
        self.failed: list[str] = []  # errors, counted: the run goes on
        self.stop_event = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            n = 0
            while not self.stop_event.is_set():
                due = started + n / self.rate
                if due - started >= self.duration:
                    return
                self.stop_event.wait(max(0.0, due - time.monotonic()))
                order_id = FIRST_ORDER + n
                n += 1
                try:
                    with conn.transaction():
                        conn.execute(
                            "insert into orders values (%s, %s, 'paid', 'USD', 20.00, 4.99, 24.99,"
                            " now(), now(), now(), null)",
                            (order_id, 1 + order_id % USERS),
                        )
                        conn.execute(
                            "insert into order_items values (%s, 1, %s, 2, 10.00)",
                            (order_id, 1 + order_id % PRODUCTS),
                        )
                    self.committed.append(order_id)
                except psycopg.Error as error:
                    self.failed.append(str(error))


@contextlib.contextmanager
def cdc_path(work: Path, lake: Path, timeout: float = 180) -> Iterator[str]:
    """PostgreSQL, mock Kafka, capture and bridge (into `lake`), each stopped by pid on exit;
    yields the database's DSN once the initial snapshot of the seeded users and products
    is readable in raw."""
    logs = work / "cdc-logs"
    env = {"LAKE_DIR": str(lake), "DATA_DIR": str(work), "PLATFORM_ENV": "local"}
    children: list[ChildProcess] = []
    with temporary_postgres() as pg:
        try:
            migrate(pg.dsn())
            seed(pg.dsn(), PRODUCTS, USERS)
            kafka = start_mock_kafka(logs)
            children.append(kafka.child)
            children.append(start_capture(logs, pg.dsn(), kafka.bootstrap, env=env))
            children.append(start_bridge(logs, kafka.bootstrap, env=env))
            deadline = time.monotonic() + timeout
            while raw_rows(lake, "cdc_products") < PRODUCTS:
                for child in children:
                    if not child.alive():
                        raise RuntimeError(f"{child.name} exited:\n{child.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the CDC snapshot did not land within {timeout:.0f}s")
                time.sleep(0.5)
            yield pg.dsn()
        finally:
            for child in reversed(children):
                child.stop(30)


def landed_orders(lake: Path) -> dict[int, tuple[float, float]]:
    """order id -> (commit time, readable in raw) of each streamed insert in raw.cdc_orders."""
    glob = f"{lake / 'cdc_orders'}/ingest_date=*/*.parquet"
    if not list((lake / "cdc_orders").glob("ingest_date=*/*.parquet")):
        return {}
    with duckdb.connect() as con:
        rows = con.execute(
            f"select pk, source_ts, filename from read_parquet('{glob}', filename = true)"
            " where op = 'c'"
        ).fetchall()
    mtimes: dict[str, float] = {}
    landed = {}
    for pk, source_ts, filename in rows:
        if filename not in mtimes:
            mtimes[filename] = os.stat(filename).st_mtime
        committed = (source_ts if source_ts.tzinfo else source_ts.replace(tzinfo=UTC)).timestamp()
        landed[int(json.loads(pk)["order_id"])] = (committed, mtimes[filename])
    return landed


def mart_latencies(
    mart_runs: list, landed: dict[int, tuple[float, float]], orders: list[int]
) -> tuple[list[float], list[float], int]:
    """(commit -> raw, commit -> mart, orders not yet reflected), from the mart's
    materializations [(run start, materialized at, run end, run id)], oldest first."""
    raw, mart, pending = [], [], 0
    for order_id in orders:
        if order_id not in landed:
            pending += 1
            continue
        committed, readable = landed[order_id]
        raw.append(readable - committed)
        reflected = [m for start, m, _end, _run in mart_runs if start >= readable]
        if reflected:
            mart.append(min(reflected) - committed)
        else:
            pending += 1
    return raw, mart, pending


def staged_orders(warehouse: Path, orders: list[int]) -> int:
    """How many of `orders` staging.stg_orders holds (read after Dagster has stopped)."""
    if not orders:
        return 0
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select count(*) from staging.stg_orders where order_id in (select unnest(?))",
            [orders],
        ).fetchone()[0]
