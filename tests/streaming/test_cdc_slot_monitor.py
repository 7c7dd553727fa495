"""Replication slot metrics (streaming/cdc/slot_monitor.py) against a real PostgreSQL: the WAL a
slot nobody reads holds back grows with every write, an idle slot says it is inactive, and a
database that cannot be reached says so instead of failing the scrape."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from prometheus_client import generate_latest

from devtools.sourcedb.server import LocalPostgres, temporary_postgres
from streaming.cdc.slot_monitor import registry_for

pytestmark = pytest.mark.slow  # a PostgreSQL server (~3 s)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalPostgres]:
    with temporary_postgres() as pg:
        yield pg


def wal_bytes_written(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        before = conn.execute("select pg_current_wal_lsn()").fetchone()[0]
        conn.execute("create table if not exists filler (x text)")
        conn.execute("insert into filler select repeat('x', 500) from generate_series(1, 20000)")
        return int(
            conn.execute("select pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", (before,)).fetchone()[
                0
            ]
        )


def test_an_unread_slot_reports_the_wal_it_holds_back(server: LocalPostgres) -> None:
    dsn = server.dsn("postgres")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_create_logical_replication_slot('monitored', 'pgoutput')")
    registry = registry_for(dsn)
    value = registry.get_sample_value
    assert value("cdc_slot_up") == 1
    first = value("cdc_slot_retained_wal_bytes", {"slot": "monitored"})
    written = wal_bytes_written(dsn)
    assert written > 5_000_000
    second = value("cdc_slot_retained_wal_bytes", {"slot": "monitored"})
    assert second - first >= written  # nobody reads it: every byte written is kept
    assert value("cdc_slot_confirmed_lag_bytes", {"slot": "monitored"}) >= written
    assert value("cdc_slot_active", {"slot": "monitored"}) == 0
    assert value("cdc_slot_lost", {"slot": "monitored"}) == 0
    # the local server bounds what a slot may keep, so the headroom is reported
    assert 0 < value("cdc_slot_safe_wal_size_bytes", {"slot": "monitored"}) <= 2 * 1024**3
    text = generate_latest(registry).decode()
    assert 'cdc_slot_retained_wal_bytes{slot="monitored"}' in text


def test_an_unreachable_database_is_a_metric_not_an_error(server: LocalPostgres) -> None:
    registry = registry_for("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    assert registry.get_sample_value("cdc_slot_up") == 0
    assert "cdc_slot_up 0.0" in generate_latest(registry).decode()
