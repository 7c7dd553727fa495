"""A realistic synthetic shop landed in a Parquet lake and built with dbt on the local target,
shared (session scope, through this folder's conftest) by the dbt project's tests and the
mart proofs.

The shop has everything the marts must get right: three currencies, refunds, cancellations
purged from the source, order lines renumbered (a primary-key change), retries, retries
after a clock correction (another event time, sometimes another date), server events
without a messageId, clocks years off, carts bought in a later session; CDC runs over three
Kafka partitions and is down for 30 hours, then re-snapshots (rows deleted meanwhile never
send a delete). Raw lands in two halves split by ingestion time: dbt builds after each, so
the second build takes the incremental path; a full refresh of stg_events and int_sessions
into another DuckDB file is the reference it must equal. dbt runs as a subprocess, as Dagster
runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from devtools.shop.load import CdcPath, RawLoader
from devtools.shop.simulator import ShopConfig, SyntheticShop
from streaming.raw.writer import ParquetRawWriter

ROOT = Path(__file__).resolve().parents[2]
PROJECT_DIR = ROOT / "dbt_project"
CONFIG = ShopConfig(
    seed=5,
    days=10,
    sessions_per_day=60,
    initial_users=80,
    products=30,
    end_date=date(2026, 11, 20),
    duplicate_rate=0.02,  # more client retries
    offline_rate=0.06,  # and more app sessions delivered hours late
    far_off_clock_rate=0.02,  # a few devices set years off
    clock_fix_retry_rate=0.6,  # retries after an NTP correction
    renumber_lines_rate=1.0,  # every multi-line order renumbered when it ships, if need be
    missing_message_id_rate=0.5,  # the backend's events often without a messageId
)
OUTAGE = (datetime(2026, 11, 16, 8, tzinfo=UTC), datetime(2026, 11, 17, 14, tzinfo=UTC))
CUTOFF = datetime(2026, 11, 17, 3, 0)  # rows ingested before this land first


class IngestedWindow:
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
        command, env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}"
    return result


def query(warehouse: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql).fetchall()


@dataclass
class Built:
    shop: SyntheticShop
    items: list[Any]  # everything the shop yielded
    lake: Path
    warehouse: Path  # built on the first half, then incrementally on the rest
    reference: Path  # stg_events and int_sessions by a full refresh over everything
    tmp: Path


def land(items: list[Any], writer: Any) -> None:
    loader = RawLoader(writer, cdc=CdcPath(partitions=3, outage=OUTAGE))
    for item in items:
        loader.add(item)
    loader.finish(now=CONFIG.end)


@pytest.fixture(scope="session")
def shop_build(tmp_path_factory: pytest.TempPathFactory) -> Built:
    tmp = tmp_path_factory.mktemp("dbt")
    lake, warehouse, reference = tmp / "lake", tmp / "warehouse.duckdb", tmp / "reference.duckdb"
    shop = SyntheticShop(CONFIG)
    items = list(shop.run())
    writer = ParquetRawWriter(lake)
    land(items, IngestedWindow(writer, before=True))
    run_dbt("build", lake=lake, warehouse=warehouse, tmp=tmp)
    land(items, IngestedWindow(writer, before=False))
    run_dbt("build", lake=lake, warehouse=warehouse, tmp=tmp)
    full_refresh = ("run", "-s", "stg_events", "int_sessions", "--full-refresh")
    run_dbt(*full_refresh, lake=lake, warehouse=reference, tmp=tmp)
    return Built(shop, items, lake, warehouse, reference, tmp)
