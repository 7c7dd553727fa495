"""`make dev` stops within 30 s on SIGTERM or Ctrl-C and leaves no process and no listening
port, even with a run in flight; started again, it keeps its data, comes up without a
backfill, and the run the stop cut short is marked failed (it would hold the warehouse pool).

It has a platform of its own (the fixture is per module): it stops it.
"""

from __future__ import annotations

import re
import signal
import time
from urllib.parse import urlsplit

import duckdb
import psycopg
import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from devtools.dev.launch import (
    RunningDev,
    left_behind,
    platform_processes,
    start_dev,
    stop_dev,
)

pytestmark = [pytest.mark.slow, pytest.mark.long, pytest.mark.timeout(1800)]

STOP_LIMIT_SECONDS = 30


def assert_stops_cleanly(platform: RunningDev, sig: int) -> float:
    pids, ports = platform_processes(platform)
    assert len(pids) >= 8 and ports, (pids, ports)  # the whole platform was running
    seconds = stop_dev(platform, sig)
    assert platform.process.returncode == 0, platform.log()[-3000:]
    assert seconds < STOP_LIMIT_SECONDS, f"stopped in {seconds:.1f}s"
    assert left_behind(pids, ports) == (set(), set())
    return seconds


def client(platform: RunningDev) -> DagsterGraphQLClient:
    url = urlsplit(platform.ui)
    return DagsterGraphQLClient(url.hostname, port_number=url.port, timeout=60)


def start_a_run(platform: RunningDev) -> str:
    """Materialize a mart (as the UI's button does) and return once its worker runs."""
    graphql = client(platform)
    run_id = graphql.submit_job_execution(
        "__ASSET_JOB",
        repository_location_name="platform_assets",
        repository_name="__repository__",
        asset_selection=[["mart", "mart_daily_sales"]],
    )
    deadline = time.monotonic() + 600
    while graphql.get_run_status(run_id) != DagsterRunStatus.STARTED:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(1)
    return run_id


def test_sigterm_stops_everything_then_a_restart_keeps_the_data_and_ctrl_c_stops_it(
    live_platform,
):
    read_path = live_platform.read_path
    with duckdb.connect(str(read_path), read_only=True) as con:
        sales = con.execute("select sum(orders), count(*) from mart.mart_daily_sales").fetchone()
    with psycopg.connect(live_platform.dsn) as conn:
        users = conn.execute("select count(*) from users").fetchone()[0]
    first_up = float(re.search(r"up in (\d+)s", live_platform.up_line).group(1))
    in_flight = start_a_run(live_platform)

    stopped = assert_stops_cleanly(live_platform, signal.SIGTERM)

    again = start_dev(live_platform.data_dir, live_platform.env, live_platform.output)
    try:
        up = float(re.search(r"up in (\d+)s", again.up_line).group(1))
        assert "first start" not in again.up_line
        assert again.read_path == read_path
        with duckdb.connect(str(read_path), read_only=True) as con:
            kept = con.execute("select sum(orders), count(*) from mart.mart_daily_sales")
            assert kept.fetchone() == sales  # nothing was sent meanwhile: the same marts
        with psycopg.connect(again.dsn) as conn:
            # kept, not backfilled again (that would double it); the shop applies what fell
            # due while it was off (sign-ups and status changes of earlier sessions)
            assert users <= conn.execute("select count(*) from users").fetchone()[0] < users + 50
        # not left in flight: finished during the stop's drain (a quiet machine), ended by
        # its worker on SIGTERM, or marked failed by the restart
        status = client(again).get_run_status(in_flight)
        ended = (DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED)
        assert status in ended, status
        interrupted = assert_stops_cleanly(again, signal.SIGINT)  # Ctrl-C
    finally:
        stop_dev(again)
    print(
        f"first start up in {first_up:.0f}s, stop {stopped:.1f}s; "
        f"restart up in {up:.0f}s, Ctrl-C stop {interrupted:.1f}s"
    )
