"""`uv run python -m bench.cdc`: sustained changes PostgreSQL → capture → Kafka → bridge → raw.

Everything runs on this machine as in the local deployment: a PostgreSQL (wal_level=logical),
the mock Kafka cluster in its own process, the capture and the bridge (raw sink: the Parquet
lake) as separate processes. A load generator writes a shop-like mix (new orders with their
lines, orders moving to paid, cancelled orders purged) at a fixed rate for a fixed time.

Printed figures:
* baseline (same run, before the pipeline starts): how fast PostgreSQL takes the same workload
  unthrottled, with no capture running;
* sustained: changes/s landed in raw while the load ran, and the lag from each change's commit
  (source_ts) to the moment its row became readable in raw (the Parquet file's rename time,
  which is its mtime), p50/p95/p99/max;
* CPU seconds per process, to show what limits it on this machine.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb
import psycopg

from bench.cdc.shop import raw_rows, seed
from devtools.cdc.processes import ChildProcess, start_bridge, start_capture, start_mock_kafka
from devtools.sourcedb.migrate import migrate
from devtools.sourcedb.server import temporary_postgres

PRODUCTS = 1000
USERS = 20000
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(message, flush=True)


def machine_cpu_seconds() -> float:
    """Busy CPU time of the whole machine (all cores) from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / CLK_TCK


def cpu_seconds_of_group(pgid: int) -> float:
    """utime + stime of every live process in a process group (from /proc)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # field 5 (pgrp), after pid and comm
            # utime + stime, and cutime + cstime: children that exited (backends of
            # connections that closed) are counted in their parent's
            total += sum(int(v) for v in fields[11:15])
    return total / CLK_TCK


@dataclass
class Workload:
    """Transactions of `orders` new orders (2 lines each), as many orders paid, and every
    fourth transaction a purge of cancelled orders: 3*orders (+ some) changes each."""

    orders: int = 20
    next_order: int = 1
    paid_upto: int = 0
    purged_upto: int = 0
    transactions: int = 0
    changes: int = 0

    def run_one(self, conn: psycopg.Connection) -> None:
        first, last = self.next_order, self.next_order + self.orders - 1
        with conn.transaction():
            conn.execute(
                "insert into orders select g, 1 + g %% %s, 'pending', 'USD', 20.00, 4.99, 24.99,"
                " now(), now(), null, null from generate_series(%s::bigint, %s::bigint) g",
                (USERS, first, last),
                prepare=True,
            )
            conn.execute(
                "insert into order_items select o, l, 1 + (o * 7 + l) %% %s, 1 + l %% 2, 10.00"
                " from generate_series(%s::bigint, %s::bigint) o, generate_series(1, 2) l",
                (PRODUCTS, first, last),
                prepare=True,
            )
            changes = 3 * self.orders
            if self.paid_upto < first - 1:
                upto = min(first - 1, self.paid_upto + self.orders)
                result = conn.execute(
                    "update orders set status = 'paid', paid_at = now(), updated_at = now()"
                    " where order_id > %s and order_id <= %s and status = 'pending'"
                    " and order_id %% 10 <> 0",
                    (self.paid_upto, upto),
                    prepare=True,
                )
                changes += result.rowcount
                self.paid_upto = upto
            if self.transactions % 4 == 3 and self.purged_upto + 40 * self.orders < first:
                upto = self.purged_upto + 4 * self.orders
                items = conn.execute(
                    "delete from order_items where order_id > %s and order_id <= %s"
                    " and order_id %% 10 = 0",
                    (self.purged_upto, upto),
                    prepare=True,
                )
                purged = conn.execute(
                    "delete from orders where order_id > %s and order_id <= %s"
                    " and order_id %% 10 = 0",
                    (self.purged_upto, upto),
                    prepare=True,
                )
                changes += items.rowcount + purged.rowcount
                self.purged_upto = upto
        self.next_order = last + 1
        self.transactions += 1
        self.changes += changes


def run_load(
    dsn: str,
    workload: Workload,
    rate: float | None,
    duration: float,
    stop: threading.Event | None = None,
) -> tuple[int, float]:
    """Run the workload at `rate` changes/s (None: flat out); returns (changes, seconds)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        start_changes = workload.changes
        started = time.monotonic()
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= duration or (stop is not None and stop.is_set()):
                break
            if rate:
                due = (workload.changes - start_changes) / rate
                if due > elapsed:
                    time.sleep(min(due - elapsed, 0.05))
                    continue
            workload.run_one(conn)
        return workload.changes - start_changes, time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cdc",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=12000, help="changes/s to write")
    parser.add_argument("--duration", type=float, default=30, help="seconds of sustained load")
    parser.add_argument("--orders-per-tx", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=20000, help="bridge batch size")
    parser.add_argument("--max-delay", type=float, default=0.5, help="bridge max buffering (s)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the work directory and leave Kafka up (prints its pid)",
    )
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-cdc-"))
    lake, logs = work / "lake", work / "logs"
    env = {"LAKE_DIR": str(lake), "DATA_DIR": str(work), "PLATFORM_ENV": "local"}
    say(f"bench.cdc: {args.rate:,.0f} changes/s for {args.duration:.0f}s; work dir {work}")
    children: list[ChildProcess] = []
    try:
        with temporary_postgres() as pg:
            migrate(pg.dsn())
            seed(pg.dsn(), PRODUCTS, USERS)
            say(
                f"PostgreSQL {pg.bin_dir} on {pg.address}; "
                f"seeded {PRODUCTS} products, {USERS} users"
            )

            # Baseline: the same workload, unthrottled, before any capture exists.
            workload = Workload(orders=args.orders_per_tx)
            base_changes, base_seconds = run_load(pg.dsn(), workload, None, 5)
            baseline = base_changes / base_seconds
            say(
                f"baseline: PostgreSQL takes {baseline:,.0f} changes/s of this workload "
                f"(no CDC running, 5 s)"
            )
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                conn.execute("truncate order_items, orders")  # keep the snapshot small
                snapshot_rows = sum(
                    conn.execute(f"select count(*) from {t}").fetchone()[0]
                    for t in ("users", "products", "orders", "order_items")
                )

            kafka = start_mock_kafka(logs)
            children.append(kafka.child)
            capture = start_capture(
                logs, pg.dsn(), kafka.bootstrap, extra=["--heartbeat-interval", "1"], env=env
            )
            bridge = start_bridge(
                logs,
                kafka.bootstrap,
                env=env,
                extra=[
                    "--batch-size",
                    str(args.batch_size),
                    "--max-delay",
                    str(args.max_delay),
                    "--session-timeout-ms",
                    "6000",
                    *(["--log-level", "DEBUG"] if args.keep else []),
                ],
            )
            children += [capture, bridge]
            deadline = time.monotonic() + 180
            while raw_rows(lake) < snapshot_rows and time.monotonic() < deadline:
                for child in (capture, bridge):
                    if not child.alive():
                        raise SystemExit(f"{child.name} exited:\n{child.log_tail()}")
                time.sleep(0.5)
            time.sleep(2)  # let the pipeline settle (heartbeats, idle confirmations)
            snapshot_landed = raw_rows(lake)
            say(f"initial snapshot landed in raw: {snapshot_landed:,} rows")

            groups = {
                "postgres": pg.process.pid,
                "mock-kafka": kafka.child.pid,
                "capture": capture.pid,
                "bridge": bridge.pid,
            }
            cpu_before = {name: cpu_seconds_of_group(pid) for name, pid in groups.items()}
            own_before = time.process_time()
            machine_before = machine_cpu_seconds()
            load_started = time.time()
            changes, seconds = run_load(pg.dsn(), workload, args.rate, args.duration)
            load_ended = time.time()
            generator_cpu = time.process_time() - own_before
            say(
                f"load: wrote {changes:,} changes in {workload.transactions:,} transactions "
                f"over {seconds:.1f}s = {changes / seconds:,.0f} changes/s"
            )

            expected = snapshot_landed + changes
            deadline = time.monotonic() + 300
            landed = raw_rows(lake)
            while landed < expected and time.monotonic() < deadline:
                time.sleep(0.5)
                landed = raw_rows(lake)
            drained_at = time.time()
            cpu = {
                name: cpu_seconds_of_group(pid) - cpu_before[name] for name, pid in groups.items()
            }
            machine = machine_cpu_seconds() - machine_before
            if landed < expected:
                say(f"WARNING: only {landed - snapshot_landed:,} of {changes:,} changes landed")

            with duckdb.connect() as con:
                rows = con.execute(
                    f"select source_ts, filename from read_parquet("
                    f"'{lake}/cdc_*/ingest_date=*/*.parquet', union_by_name = true,"
                    " filename = true)"
                    " where snapshot = 'false'"
                ).fetchall()
            mtimes: dict[str, float] = {}
            lags = []
            readable_in_window = 0
            first_commit = min((r[0] for r in rows), default=None)
            for source_ts, filename in rows:
                if filename not in mtimes:
                    mtimes[filename] = os.stat(filename).st_mtime
                readable = mtimes[filename]
                committed = (
                    source_ts.timestamp()
                    if source_ts.tzinfo
                    else source_ts.replace(tzinfo=__import__("datetime").UTC).timestamp()
                )
                lags.append(readable - committed)
                if readable <= load_ended:
                    readable_in_window += 1
            last_readable = max(mtimes.values(), default=load_ended)
            say("")
            say("results")
            say(f"  streamed changes in raw       {len(rows):,} (written {changes:,})")
            say(
                "  throughput, load window       "
                f"{readable_in_window / (load_ended - load_started):,.0f}"
                " changes/s readable in raw while the load ran"
            )
            if first_commit is not None:
                span = last_readable - load_started
                say(
                    f"  throughput, first commit→last {len(rows) / span:,.0f} changes/s "
                    f"({span:.1f}s from load start until the last row was readable)"
                )
            say(
                f"  lag commit→readable in raw    p50 {percentile(lags, 0.5):.2f}s  "
                f"p95 {percentile(lags, 0.95):.2f}s  p99 {percentile(lags, 0.99):.2f}s  "
                f"max {max(lags, default=float('nan')):.2f}s"
            )
            say(f"  drained {drained_at - load_ended:.1f}s after the load stopped")
            say(f"  raw files written             {len(mtimes):,}")
            busy = drained_at - load_started
            say(f"  CPU seconds over {busy:.0f}s (2 cores = {2 * busy:.0f} core-s):")
            ours = {**cpu, "load generator": generator_cpu}
            for name, value in ours.items():
                say(f"    {name:<16} {value:6.1f}  ({value / busy:.0%} of one core)")
            others = max(0.0, machine - sum(ours.values()))
            say(
                f"    {'other processes':<16} {others:6.1f}  ({others / busy:.0%} of one core)"
                + (
                    "  <- the machine was shared: figures are pessimistic"
                    if others > 0.2 * busy
                    else ""
                )
            )
            say(f"  baseline (same run)           PostgreSQL alone: {baseline:,.0f} changes/s")
            say(
                f"  command: uv run python -m bench.cdc --rate {args.rate:.0f} "
                f"--duration {args.duration:.0f}"
            )
    finally:
        for child in reversed(children):
            if args.keep and child.name == "mock-kafka":
                say(
                    f"mock Kafka left running: pid {child.pid}, bootstrap in {logs}/kafka.bootstrap"
                )
                continue
            child.stop(30)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
