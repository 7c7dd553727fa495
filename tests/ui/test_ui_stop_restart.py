"""`make dev` stops within 30 s on SIGTERM or Ctrl-C and leaves no process and no listening
port, even with a run in flight; started again, it keeps its data, comes up without a
backfill, and the run the stop cut short is marked failed (it would hold the warehouse pool).

Runs after the other tests of this folder (file order): it stops the session's platform.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import duckdb
import psycopg
import pytest
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from devtools.dev.launch import RunningDev, start_dev, stop_dev

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

STOP_LIMIT_SECONDS = 30


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (by parent links in /proc), whatever its session."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports the given processes listen on (from their sockets' inodes)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def alive(pids: set[int]) -> set[int]:
    still = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            still.add(pid)
    return still


def refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


def assert_stops_cleanly(platform: RunningDev, sig: int) -> float:
    pids = descendants(platform.process.pid)
    ports = listening_ports(pids | {platform.process.pid})
    assert len(pids) >= 8 and ports, (pids, ports)  # the whole platform was running
    seconds = stop_dev(platform, sig)
    assert platform.process.returncode == 0, platform.log()[-3000:]
    assert seconds < STOP_LIMIT_SECONDS, f"stopped in {seconds:.1f}s"
    assert alive(pids) == set(), "processes left behind"
    assert [port for port in ports if not refused(port)] == []
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
            assert conn.execute("select count(*) from users").fetchone()[0] == users
        # ended by its worker on SIGTERM, or marked failed by the restart: not in flight
        status = client(again).get_run_status(in_flight)
        assert status in (DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED), status
        interrupted = assert_stops_cleanly(again, signal.SIGINT)  # Ctrl-C
    finally:
        stop_dev(again)
    print(
        f"first start up in {first_up:.0f}s, stop {stopped:.1f}s; "
        f"restart up in {up:.0f}s, Ctrl-C stop {interrupted:.1f}s"
    )
