"""End to end: the synthetic shop writes thousands of changes into PostgreSQL while the capture
and the bridge are SIGKILLed at random (seeded) moments and restarted; afterwards dbt builds
staging and the marts from raw, and the Dagster reconciliation check finds zero differences
(and mart revenue equals the database's). Then it shows the check failing with the differing
keys on a tampered warehouse, and reporting "not drained" while the capture is down.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
import psycopg
import pytest

from devtools.cdc.processes import ChildProcess, start_bridge, start_capture, start_mock_kafka
from devtools.shop.simulator import ShopConfig, SyntheticShop
from devtools.sourcedb.driver import replay
from devtools.sourcedb.migrate import migrate
from devtools.sourcedb.server import temporary_postgres
from platform_assets.dbt.read_snapshot import publish_read_snapshot
from platform_assets.reconciliation.checks import (
    CDC_TABLES,
    CdcSourceResource,
    reconciliation_checks,
    staging_asset_key,
)
from platform_core.settings import get_settings
from streaming.cdc.pgoutput import parse_lsn
from streaming.cdc.reconcile import DuckDBWarehouse, drain_status

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SEED = 20261126
SHOP = ShopConfig(seed=11, days=20, sessions_per_day=1000, end_date=date(2026, 11, 20))
TPS = 300  # simulated transactions per second into PostgreSQL (~25 s of changes)
CAPTURE_ARGS = ["--heartbeat-interval", "1"]
BRIDGE_ARGS = ["--session-timeout-ms", "6000", "--max-delay", "0.5"]
# the CDC staging tables the reconciliation compares, and the sales marts with everything
# they are built from
DBT_MODELS = [
    "stg_users",
    "stg_products",
    "stg_orders",
    "stg_order_items",
    "+mart_daily_sales",
    "+mart_daily_sales_by_currency",
]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    values = {
        "DATA_DIR": str(tmp_path),
        "LAKE_DIR": str(tmp_path / "lake"),
        "DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "PLATFORM_ENV": "local",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_settings.cache_clear()
    yield values
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    get_settings.cache_clear()


def run_dbt(env: dict[str, str], tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "dbt.cli.main",
        "build",
        "--select",
        *DBT_MODELS,
        "--indirect-selection",
        "cautious",
        "--project-dir",
        str(ROOT / "dbt_project"),
        "--profiles-dir",
        str(ROOT / "dbt_project"),
        "--target-path",
        str(tmp_path / "target"),
        "--log-path",
        str(tmp_path / "dbt-logs"),
    ]
    result = subprocess.run(
        command,
        env={**os.environ, **env, "DBT_TARGET": "local"},
        cwd=ROOT / "dbt_project",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]
    publish(env)


def publish(env: dict[str, str]) -> None:
    """What the dbt asset does after dbt exits: readers (the check) see the new build."""
    settings = get_settings()
    assert str(settings.warehouse_path) == env["DUCKDB_PATH"]
    publish_read_snapshot(settings.warehouse_path, settings.warehouse_read_path)


def run_check(resource: CdcSourceResource) -> dict[str, Any]:
    specs = [dg.AssetSpec(staging_asset_key(t)) for t in CDC_TABLES]
    job = dg.define_asset_job(
        "reconcile", selection=dg.AssetSelection.checks(*reconciliation_checks())
    )
    defs = dg.Definitions(
        assets=specs,
        asset_checks=reconciliation_checks(),
        jobs=[job],
        resources={"cdc_source": resource},
    )
    result = defs.resolve_job_def("reconcile").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
    )
    evaluations = {
        e.asset_key.path[-1].removeprefix("stg_"): e for e in result.get_asset_check_evaluations()
    }
    assert set(evaluations) == set(CDC_TABLES)
    return evaluations


def test_kill_and_restart_reconciles_exactly(env: dict[str, str], tmp_path: Path) -> None:
    rng = random.Random(SEED)
    logs = tmp_path / "logs"
    items = list(SyntheticShop(SHOP).run())
    with temporary_postgres() as pg:
        migrate(pg.dsn())
        kafka = start_mock_kafka(logs)
        procs: dict[str, ChildProcess] = {}

        def start(name: str) -> ChildProcess:
            if name == "capture":
                return start_capture(logs, pg.dsn(), kafka.bootstrap, extra=CAPTURE_ARGS, env=env)
            return start_bridge(logs, kafka.bootstrap, extra=BRIDGE_ARGS, env=env)

        try:
            procs = {name: start(name) for name in ("capture", "bridge")}
            stats: dict[str, Any] = {}
            done = threading.Event()

            def drive() -> None:
                try:
                    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                        stats["drive"] = replay(conn, items, max_tps=TPS)
                finally:
                    done.set()

            driver = threading.Thread(target=drive, daemon=True)
            driver.start()
            victims = ["capture", "bridge"] * 3
            rng.shuffle(victims)
            kills = {"capture": 0, "bridge": 0}
            while not done.is_set() or victims:
                time.sleep(rng.uniform(1.0, 3.5))
                name = victims.pop() if victims else rng.choice(["capture", "bridge"])
                if done.is_set() and not victims and kills[name] >= 2:
                    break
                procs[name].kill()  # SIGKILL the process group, no warning
                kills[name] += 1
                time.sleep(rng.uniform(0.0, 1.5))
                procs[name] = start(name)
            driver.join(120)
            assert "drive" in stats, "the driver failed"
            assert stats["drive"].changes > 5000
            assert min(kills.values()) >= 2, kills

            # the stream drains: everything committed is in Kafka, and everything in Kafka in raw
            with psycopg.connect(pg.dsn()) as conn:
                lsn = parse_lsn(
                    conn.execute("select pg_current_wal_insert_lsn()::text").fetchone()[0]
                )
            warehouse = DuckDBWarehouse(env["DUCKDB_PATH"], env["LAKE_DIR"])
            drained = drain_status(
                dsn=pg.dsn(),
                source_lsn=lsn,
                slot="shop_cdc",
                kafka_bootstrap=kafka.bootstrap,
                bridge_group="cdc-bridge",
                topics=[f"shop.public.{t}" for t in CDC_TABLES],
                warehouse=warehouse,
                tables=CDC_TABLES,
                staging_built_at=None,
                timeout=180,
            )
            for child in procs.values():
                assert child.alive(), child.log_tail()
            assert drained.drained, (
                drained,
                procs["capture"].log_tail(),
                procs["bridge"].log_tail(),
            )

            run_dbt(env, tmp_path)
            resource = CdcSourceResource.from_settings(
                get_settings(),
                dsn=pg.dsn(),
                kafka_bootstrap=kafka.bootstrap,
                drain_timeout_seconds=60,
            )
            evaluations = run_check(resource)
            for table, evaluation in evaluations.items():
                assert evaluation.passed, (table, evaluation.description, evaluation.metadata)
                assert evaluation.metadata["differences"].value == 0
                assert evaluation.metadata["source_rows"].value > 0

            # replays happened (at-least-once) and staging removed them
            with duckdb.connect() as con:
                rows, distinct = con.execute(
                    f"select count(*), count(distinct (pk, lsn)) from read_parquet("
                    f"'{env['LAKE_DIR']}/cdc_*/*/*.parquet', union_by_name = true)"
                ).fetchone()
            assert rows >= distinct > stats["drive"].changes

            # mart revenue equals the database's, per currency (a sale is a paid order; its
            # refund reverses it; amounts of different currencies are never added)
            with psycopg.connect(pg.dsn(), options="-c timezone=UTC") as conn:
                source = conn.execute(
                    "select currency, count(*) filter (where paid_at is not null),"
                    " coalesce(sum(total_amount) filter (where paid_at is not null), 0),"
                    " coalesce(sum(total_amount) filter (where refunded_at is not null), 0)"
                    " from orders group by currency"
                ).fetchall()
            with duckdb.connect(env["DUCKDB_PATH"], read_only=True) as con:
                mart = con.execute(
                    "select currency, sum(orders), sum(gross_revenue), sum(refunds)"
                    " from mart.mart_daily_sales_by_currency group by currency"
                ).fetchall()
            expected = {c: (n, Decimal(g), Decimal(r)) for c, n, g, r in source if n or r}
            got = {c: (n, Decimal(str(g)), Decimal(str(r))) for c, n, g, r in mart}
            assert got == expected

            # a tampered warehouse fails, with the differing keys listed
            with duckdb.connect(env["DUCKDB_PATH"]) as con:
                order_id = con.execute("select min(order_id) from staging.stg_orders").fetchone()[0]
                con.execute("delete from staging.stg_orders where order_id = ?", [order_id])
                user_id = con.execute("select max(user_id) from staging.stg_users").fetchone()[0]
                con.execute(
                    "update staging.stg_users set email = 'x@example.com' where user_id = ?",
                    [user_id],
                )
            publish(env)
            evaluations = run_check(resource)
            assert not evaluations["orders"].passed and not evaluations["users"].passed
            assert evaluations["orders"].severity == dg.AssetCheckSeverity.ERROR
            assert evaluations["orders"].metadata["missing_in_warehouse"].value == [
                f'{{"order_id":"{order_id}"}}'
            ]
            assert evaluations["users"].metadata["different_values"].value == [
                f'{{"user_id":"{user_id}"}}'
            ]
            assert evaluations["products"].passed and evaluations["order_items"].passed

            # with the capture down and the source moving on, it is "not drained", not a diff
            procs["capture"].stop()
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                conn.execute(
                    "insert into users values (999999, 'late@example.com', 'Late', 'DE',"
                    " false, now(), now())"
                )
            evaluations = run_check(
                CdcSourceResource.from_settings(
                    get_settings(),
                    dsn=pg.dsn(),
                    kafka_bootstrap=kafka.bootstrap,
                    drain_timeout_seconds=3,
                )
            )
            for evaluation in evaluations.values():
                assert not evaluation.passed
                assert evaluation.severity == dg.AssetCheckSeverity.WARN
                assert evaluation.metadata["status"].value == "not drained"
        finally:
            for child in procs.values():
                child.kill()
            kafka.stop()


def test_local_stack_command(tmp_path: Path) -> None:
    """`python -m devtools.cdc` runs every part, and SIGTERM stops them all."""
    import shutil
    import signal
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="cdc-stack-"))  # reachable by the server's OS user
    os.chmod(data, 0o755)
    env = {**os.environ, "DATA_DIR": str(data), "PLATFORM_ENV": "local"}
    for key in ("LAKE_DIR", "DUCKDB_PATH", "SOURCE_DB_DSN", "KAFKA_BOOTSTRAP_SERVERS"):
        env.pop(key, None)
    log = open(tmp_path / "stack.log", "wb")  # noqa: SIM115 - closed below
    stack = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.cdc",
            "--drive-days",
            "2",
            "--speed",
            "100000",
            "--capture-metrics-port",
            "0",
            "--bridge-metrics-port",
            "0",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        drive_log = data / "logs" / "drive.log"
        while time.monotonic() < deadline:
            assert stack.poll() is None, (tmp_path / "stack.log").read_text()
            if drive_log.exists() and "applied" in drive_log.read_text():
                break
            time.sleep(0.5)
        else:
            raise AssertionError("the shop driver did not finish")
        lake = data / "lake"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if all(list((lake / f"cdc_{t}").glob("ingest_date=*/*.parquet")) for t in CDC_TABLES):
                break
            time.sleep(0.5)
        else:
            raise AssertionError("raw did not receive every table")
        children = [
            int(p) for p in os.listdir("/proc") if p.isdigit() and _parent(int(p)) == stack.pid
        ]
        assert len(children) >= 4  # sourcedb, mock-kafka, capture, bridge (+ drive, done)
        os.killpg(stack.pid, signal.SIGTERM)
        assert stack.wait(120) == 0, (tmp_path / "stack.log").read_text()
        for child in children:  # every part stopped with it
            with pytest.raises(ProcessLookupError):
                os.killpg(child, 0)
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait(30)
        log.close()
        shutil.rmtree(data, ignore_errors=True)


def _parent(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return int(handle.read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None
