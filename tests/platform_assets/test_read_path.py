"""The local warehouse's read path: readers never block a refresh, and see the last one.

The issue's reproduction: a reader in another process holding the warehouse open made dbt fail
after ~30 s with the reader's PID. Readers now open `Settings.warehouse_read_path`, a copy dbt's
asset publishes after each invocation (platform_assets/dbt/read_snapshot.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from devtools.shop.load import RawLoader, load_shop
from devtools.shop.simulator import RowChange, ShopConfig, Transaction
from platform_assets.dbt.read_snapshot import PublishError, publish_read_snapshot
from platform_core.settings import Settings, get_settings
from streaming.raw.writer import ParquetRawWriter

# --- the publisher on plain DuckDB files ---------------------------------------------------


def make_warehouse(path: Path, value: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists mart")
        con.execute(f"create or replace table mart.t as select {value} as v")


def read_value(path: Path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select v from mart.t").fetchone()[0]


def test_the_read_path_sits_beside_the_warehouse_under_the_same_file_name(tmp_path):
    settings = Settings.from_env({"DUCKDB_PATH": str(tmp_path / "wh" / "shop.duckdb")})
    # the same file name keeps DuckDB's catalog name, which fully qualified names use
    assert settings.warehouse_read_path == tmp_path / "wh" / "read" / "shop.duckdb"
    default = Settings.from_env({"DATA_DIR": str(tmp_path)})
    assert default.warehouse_read_path == tmp_path / "read" / "warehouse.duckdb"


HOLDER = textwrap.dedent(
    """
    # An analyst's session: one connection, held open; prints what it sees now and again
    # after a line arrives on stdin.
    import duckdb, sys
    held = duckdb.connect(sys.argv[1], read_only=True)
    print(held.execute(sys.argv[2]).fetchone()[0], flush=True)
    sys.stdin.readline()
    print(held.execute(sys.argv[2]).fetchone()[0], flush=True)
    """
)


def hold(path: Path, query: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), query],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def test_publish_replaces_the_snapshot_while_a_reader_keeps_the_one_it_opened(tmp_path):
    source, target = tmp_path / "warehouse.duckdb", tmp_path / "read" / "warehouse.duckdb"
    make_warehouse(source, 1)
    report = publish_read_snapshot(source, target)
    assert report.bytes == source.stat().st_size and read_value(target) == 1
    session = hold(target, "select v from mart.t")  # an analyst's open session
    try:
        assert session.stdout.readline().strip() == "1"
        make_warehouse(source, 2)  # the next refresh, with the reader still connected
        publish_read_snapshot(source, target)
        assert read_value(target) == 2  # a new connection: the last completed refresh
        out, _ = session.communicate("\n", timeout=30)
        assert out.strip() == "1"  # the open session kept its own, consistent snapshot
    finally:
        session.kill()
        session.wait()
    assert [p.name for p in target.parent.iterdir()] == ["warehouse.duckdb"]  # no temp left


def test_publish_waits_for_a_writer_and_gives_up_with_a_clear_error(tmp_path):
    source, target = tmp_path / "warehouse.duckdb", tmp_path / "read" / "warehouse.duckdb"
    make_warehouse(source, 1)
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import duckdb, sys, time
                con = duckdb.connect({str(source)!r})
                con.execute("create or replace table mart.t as select 7 as v")
                print("writing", flush=True)
                time.sleep(float(sys.argv[1]))
                con.close()
                """
            ),
            "1.5",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "writing"
        with pytest.raises(PublishError, match="a writer kept"):
            publish_read_snapshot(source, target, lock_timeout=0.2)
        assert not target.exists()  # nothing half-published
        report = publish_read_snapshot(source, target, lock_timeout=30)
        assert report.waited_seconds > 0.2
        assert read_value(target) == 7  # what the writer committed, once it let go
    finally:
        writer.kill()
        writer.wait()


def test_publish_applies_the_wal_a_crashed_writer_left(tmp_path):
    source, target = tmp_path / "warehouse.duckdb", tmp_path / "read" / "warehouse.duckdb"
    make_warehouse(source, 1)
    crash = textwrap.dedent(
        f"""
        import duckdb, os
        con = duckdb.connect({str(source)!r})
        con.execute("pragma disable_checkpoint_on_shutdown")
        con.execute("set wal_autocheckpoint = '1GB'")
        con.execute("update mart.t set v = 3")
        os._exit(0)  # no checkpoint: the update lives in the WAL only
        """
    )
    subprocess.run([sys.executable, "-c", crash], check=True)
    assert source.with_name(source.name + ".wal").exists()
    publish_read_snapshot(source, target)
    assert read_value(target) == 3


def test_publish_without_a_warehouse_says_so(tmp_path):
    with pytest.raises(PublishError, match="no warehouse"):
        publish_read_snapshot(tmp_path / "missing.duckdb", tmp_path / "read" / "x.duckdb")


# --- a real refresh while a reader holds the read path -------------------------------------

POLLER = textwrap.dedent(
    """
    # A BI tool: a new connection every 0.2 s (each closed again); prints what each saw,
    # until stdin closes.
    import duckdb, sys, threading, time
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        try:
            with duckdb.connect(sys.argv[1], read_only=True) as con:
                print("fresh", con.execute(sys.argv[2]).fetchone()[0], flush=True)
        except Exception as error:
            print("error", type(error).__name__, str(error).replace(chr(10), " "), flush=True)
        time.sleep(0.2)
    """
)
USERS = "select count(*) from staging.stg_users"


@pytest.fixture(scope="module")
def tiny_shop(tmp_path_factory: pytest.TempPathFactory, dbt_manifest: Path) -> Iterator[dict]:
    """A few days of a small shop in a private lake and warehouse (not the shared
    small_platform: this module adds rows to raw)."""
    data_dir = tmp_path_factory.mktemp("read-path")
    values = {
        "DATA_DIR": str(data_dir),
        "LAKE_DIR": str(data_dir / "lake"),
        "DUCKDB_PATH": str(data_dir / "warehouse.duckdb"),
        "PLATFORM_ENV": "local",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    config = ShopConfig(
        seed=5, days=3, sessions_per_day=60, products=30, initial_users=80, end_date=DAY
    )
    shop, _ = load_shop(ParquetRawWriter(data_dir / "lake"), config)
    yield {"data_dir": data_dir, "shop": shop, "config": config}
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


DAY = datetime(2026, 3, 4, tzinfo=UTC).date()


def add_user(lake: Path, template: dict, user_id: int) -> None:
    """One more sign-up, landed in raw the way the CDC bridge lands it."""
    at = datetime.combine(DAY, clock(23, 59), tzinfo=UTC)
    row = {**template, "user_id": user_id, "email": f"new{user_id}@example.com"}
    loader = RawLoader(ParquetRawWriter(lake))
    loader.add(Transaction(at, 10**9 + user_id, (RowChange("users", "c", None, row),)))
    loader.flush()


@pytest.mark.slow
def test_a_refresh_succeeds_while_a_reader_holds_the_read_path(tiny_shop):
    # imported here: @dbt_assets reads the manifest the dbt_manifest fixture prepares
    from platform_assets.dbt.assets import dbt_models
    from platform_assets.definitions import build_definitions, platform_assets

    settings = get_settings()
    defs = build_definitions(settings)
    users = len(tiny_shop["shop"].rows("users"))  # the simulator's own count
    config = tiny_shop["config"]
    with dg.instance_for_test() as instance:
        first = dg.materialize(
            platform_assets(settings),
            instance=instance,
            resources=defs.resources,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: (config.first_day - timedelta(1)).isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: config.last_day.isoformat(),
            },
        )
        assert first.success
        assert settings.warehouse_read_path.exists()
        add_user(settings.lake_path, tiny_shop["shop"].rows("users")[0], 10**6)

        session = hold(settings.warehouse_read_path, USERS)  # a notebook, left open
        poller = subprocess.Popen(
            [sys.executable, "-c", POLLER, str(settings.warehouse_read_path), USERS],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert session.stdout.readline().strip() == str(users)
            assert poller.stdout.readline().split() == ["fresh", str(users)]
            started = time.monotonic()
            refresh = dg.materialize(
                [dbt_models],
                selection=dg.AssetSelection.assets(dbt_models).without_checks(),
                instance=instance,
                resources=defs.resources,
                raise_on_error=False,
            )
            refresh_seconds = time.monotonic() - started
            time.sleep(0.6)  # a few more polls after the refresh
            held, _ = session.communicate("\n", timeout=60)
            out, _ = poller.communicate("", timeout=60)
        finally:
            for process in (session, poller):
                process.kill()
                process.wait()
    lines = [line.split(maxsplit=1) for line in out.splitlines()]
    assert refresh.success, refresh_seconds
    assert not [line for line in lines if line[0] == "error"], out
    fresh = [int(value) for kind, value in lines if kind == "fresh"]
    # every poll saw a whole refresh: the one before, then the one after (never a mix)
    assert set(fresh) == {users, users + 1}, fresh
    assert fresh == sorted(fresh)
    assert fresh[-1] == users + 1  # after the refresh: the last completed one
    assert held.strip() == str(users)  # the open session kept its own snapshot
    # the materialization carries the publish's cost
    event = refresh.asset_materializations_for_node(dbt_models.op.name)[0]
    assert event.metadata["read_snapshot_publish_ms"].value >= 0
