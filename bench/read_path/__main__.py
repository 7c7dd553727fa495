"""Soak of the read path: a reader queries `mart_daily_sales` from another process every second
while `make dev` refreshes the warehouse under live traffic; no read fails, no refresh fails.

    uv run python -m bench.read_path                 # its own make dev (10 minutes of reads)
    uv run python -m bench.read_path --attach        # the `make dev` already running here
    uv run python -m bench.read_path --minutes 2 --events-per-second 4
    uv run python -m bench.read_path --restart       # then: stop, restart, Ctrl-C, timed

Prints: reads (failed, latency p50/p99, how old the snapshot was), the refreshes that ran
meanwhile (failed, duration), and the cost of publishing the read snapshot after each dbt
invocation (its time from every materialization's `read_snapshot_publish_ms`) next to a
same-run baseline: one plain copy of the warehouse file on the same disk (the floor of any
publish by copy). With --restart, then the lifecycle: SIGTERM stop, restart (no backfill),
Ctrl-C stop, each timed, with the processes and listening ports left behind (none expected).
Exit code 1 if a read or a refresh failed, or a stop left anything. An opt-in soak, not a
test.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.stats import percentile
from devtools.dev.launch import (
    RunningDev,
    isolated_env,
    left_behind,
    platform_processes,
    start_dev,
    stop_dev,
)
from devtools.dev.settings import DevSettings
from platform_core.settings import Settings

READER = textwrap.dedent(
    """
    # the analyst: a new read-only connection every second (a connection keeps the snapshot
    # it opened), one JSON line per read, until stdin closes
    import duckdb, json, os, sys, threading, time
    path, interval = sys.argv[1], float(sys.argv[2])
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        started = time.time()
        row = {"at": started}
        try:
            age = started - os.stat(path).st_mtime
            with duckdb.connect(path, read_only=True) as con:
                days, orders = con.execute(
                    "select count(*), sum(orders) from mart.mart_daily_sales").fetchone()
            row.update(ok=True, days=days, orders=int(orders or 0), snapshot_age=age)
        except Exception as error:
            row.update(ok=False, error=f"{type(error).__name__}: {error}")
        row["ms"] = (time.time() - started) * 1000
        print(json.dumps(row), flush=True)
        stop.wait(max(0.0, interval - (time.time() - started)))
    """
)
RUNS = """query ($after: Float) { runsOrError(filter: {createdAfter: $after}, limit: 500) {
  ... on Runs { results { runId status jobName startTime endTime
    assetMaterializations { assetKey { path } metadataEntries {
      label ... on FloatMetadataEntry { floatValue } } } } } } }"""


@dataclass
class Target:
    ui: str
    read_path: Path
    warehouse: Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.read_path", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--attach", action="store_true", help="use the running make dev")
    parser.add_argument("--events-per-second", type=float, default=2)
    parser.add_argument("--backfill-days", type=int, default=14)
    parser.add_argument(
        "--restart", action="store_true", help="then stop, restart and stop make dev, timed"
    )
    args = parser.parse_args(argv)
    if args.attach:
        return soak(attached(), args.minutes)
    root = Path(tempfile.mkdtemp(prefix="bench-read-path-"))
    os.chmod(root, 0o755)  # PostgreSQL runs as another user
    env = isolated_env(
        root / "data",
        events_per_second=args.events_per_second,
        backfill_days=args.backfill_days,
    )
    print(f"starting make dev in {root} ({args.events_per_second:g} events/s) ...", flush=True)
    dev = start_dev(root / "data", env, root / "make-dev.log")
    try:
        print(dev.up_line, flush=True)
        failed = soak(started(dev), args.minutes)
        if args.restart:
            failed |= stop_and_check(dev, signal.SIGTERM)
            dev = start_dev(root / "data", env, root / "make-dev.log")
            print(f"restart: {dev.up_line}", flush=True)
            failed |= stop_and_check(dev, signal.SIGINT)
        return failed
    finally:
        if dev.process.poll() is None:
            print(f"make dev stopped in {stop_dev(dev):.1f}s", flush=True)
        shutil.rmtree(root, ignore_errors=True)


def stop_and_check(dev: RunningDev, sig: int) -> int:
    """Stop make dev as SIGTERM or Ctrl-C would: its time, and what it left behind."""
    pids, ports = platform_processes(dev)
    seconds = stop_dev(dev, sig)
    processes, listening = left_behind(pids, ports)
    print(
        f"make dev stopped by {signal.Signals(sig).name} in {seconds:.1f}s (exit code "
        f"{dev.process.returncode}): {len(processes)} of {len(pids)} processes and "
        f"{len(listening)} of {len(ports)} listening ports left",
        flush=True,
    )
    return int(bool(processes or listening or dev.process.returncode))


def attached() -> Target:
    dev = DevSettings.from_env()
    settings = Settings.from_env({**os.environ, **dev.platform_env()})
    return Target(dev.ui_url, settings.warehouse_read_path, settings.warehouse_path)


def started(dev: RunningDev) -> Target:
    return Target(dev.ui, dev.read_path, dev.read_path.parent.parent / dev.read_path.name)


def soak(target: Target, minutes: float) -> int:
    since = time.time()
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(target.read_path), "1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    print(f"reading {target.read_path} every second for {minutes:g} minutes ...", flush=True)
    time.sleep(minutes * 60)
    out, _ = reader.communicate("", timeout=120)
    reads = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    runs = refresh_runs(target.ui, since)
    floor = copy_floor(target.warehouse)
    return report(reads, runs, floor, target.warehouse)


def refresh_runs(ui: str, since: float) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{ui}/graphql", json={"query": RUNS, "variables": {"after": since}}, timeout=60
    ).json()
    runs = answer["data"]["runsOrError"]["results"]
    return [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]


def copy_floor(warehouse: Path) -> float:
    """Seconds for one plain copy of the warehouse file, beside it (page cache warm)."""
    copy = warehouse.with_name(f".bench-{os.getpid()}.copy")
    try:
        started = time.perf_counter()
        shutil.copyfile(warehouse, copy)
        return time.perf_counter() - started
    finally:
        copy.unlink(missing_ok=True)


def report(reads: list[dict], runs: list[dict], floor: float, warehouse: Path) -> int:
    ok = [r for r in reads if r["ok"]]
    failed_reads = [r for r in reads if not r["ok"]]
    refreshes = [
        r for r in runs if any(m["assetKey"]["path"][0] for m in r["assetMaterializations"])
    ]
    failed_runs = [r for r in runs if r["status"] != "SUCCESS"]
    publish_ms = sorted(
        {
            (r["runId"], entry["floatValue"])
            for r in runs
            for m in r["assetMaterializations"]
            for entry in m["metadataEntries"]
            if entry["label"] == "read_snapshot_publish_ms" and "floatValue" in entry
        }
    )
    publish = sorted(ms for _run, ms in publish_ms)
    durations = sorted(r["endTime"] - r["startTime"] for r in refreshes if r["endTime"])
    latency = sorted(r["ms"] for r in ok)
    ages = sorted(r["snapshot_age"] for r in ok)
    orders = sorted({r["orders"] for r in ok})
    print(f"\nreads: {len(reads)}, failed {len(failed_reads)}")
    if ok:
        print(
            f"  latency p50 {percentile(latency, 0.5):.0f} ms, p99 {percentile(latency, 0.99):.0f} "
            f"ms; snapshot age p50 {percentile(ages, 0.5):.0f} s, max {ages[-1]:.0f} s; "
            f"{len(orders)} different states seen (orders {orders[0]:,} -> {orders[-1]:,})"
        )
    for r in failed_reads[:5]:
        print(f"  FAILED read: {r['error'][:200]}")
    print(f"runs meanwhile: {len(runs)} ({len(refreshes)} refreshes), failed {len(failed_runs)}")
    if durations:
        print(
            f"  refresh duration p50 {percentile(durations, 0.5):.1f} s, max {durations[-1]:.1f} s"
        )
    for r in failed_runs[:5]:
        print(f"  FAILED run {r['runId'][:8]} {r['jobName']} ({r['status']})")
    size = warehouse.stat().st_size / 1e6
    if publish:
        print(
            f"publish of the read snapshot ({size:.0f} MB): p50 {percentile(publish, 0.5):.0f} "
            f"ms, p95 {percentile(publish, 0.95):.0f} ms, max {publish[-1]:.0f} ms over "
            f"{len(publish)} dbt invocations"
        )
    print(f"  baseline, one plain copy of the same file now: {floor * 1000:.0f} ms")
    return 1 if failed_reads or failed_runs else 0


if __name__ == "__main__":
    sys.exit(main())
