"""Freshness benchmark: `uv run python -m bench.freshness [--duration S] [--rate R]`.

Sustained synthetic shopper traffic through the live local path, everything on 127.0.0.1:

    collector (HTTP 2xx) -> Pub/Sub emulator -> Beam (DirectRunner, streaming) -> raw lake
      -> raw sensor (Dagster daemon) -> refresh run requested by the sensor (or, with
      `--refresh-mode automation`, by declarative automation) -> dbt runs -> mart

It prints p50/p95 latency from the collector's 2xx to the row being readable in raw.events,
and to the row being reflected in mart.mart_conversion_funnel after the sensor-driven refresh
(targets: raw p95 < 5 s, mart p95 < 15 s at 20 events/s: issue 16). Same-run baseline: a
share of the sessions is published straight to Pub/Sub (what the collector does), which
isolates the Beam leg, and the dbt run durations, which bound how fresh a mart can be here.

No event missing: after the traffic, every acknowledged event is looked up in raw.events (the
lake), staging.stg_events and, by its anonymous id, staging.int_sessions (what the marts
count sessions from); the verdict is printed with the load average sampled during the run
(the machine is shared: figures under contention).

Without a collector (`collector/app.py` missing, or `--direct`) every event is published
straight to Pub/Sub, and the output says so. Measurements, not assertions. Everything the
benchmark starts is stopped by process id / group at the end.

Mart latency is measured from Dagster's event log, not by reading the DuckDB file (a reader
holding the file would make dbt's writer fail): an event counts as reflected by the first
mart materialization whose run started after a stg_events (today) materialization whose run
started after the event was readable in raw. That is an upper bound: a run may also pick up
rows that landed just after it started.

One script of ~670 lines on purpose: a benchmark read top to bottom (start the path, send,
wait, measure, account for every event, stop), whose steps share one run's state.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from bisect import bisect_left
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from bench.freshness.cdc import MART as CDC_MART
from bench.freshness.cdc import (
    OrderWriter,
    cdc_path,
    landed_orders,
    mart_latencies,
    staged_orders,
)
from bench.processes import ROOT, start, stop
from bench.stats import percentile
from platform_core.settings import DBT_PROJECT_DIR, get_settings

WRITE_KEY = "bench-freshness-key"
MART = ("mart", "mart_conversion_funnel")
STG = ("staging", "stg_events")
# the local platform's own instance (`make dev` writes the same file): the warm run launcher,
# the run queue, and the warehouse pool that lets one writer at a time in (readers never queue)
DAGSTER_YAML = ROOT / "infra" / "dagster" / "local-dagster.yaml"


def say(message: str = "") -> None:
    print(message, flush=True)


def figures(values: list[float]) -> str:
    if not values:
        return "no data"
    return (
        f"p50 {percentile(values, 0.5):6.2f} s   p95 {percentile(values, 0.95):6.2f} s   "
        f"max {max(values):6.2f} s   (n={len(values)})"
    )


# --- processes -----------------------------------------------------------------------------


def wait_for_text(log: Path, text: str, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        if process.poll() is not None:
            raise RuntimeError(
                f"{log.name}: exited with {process.returncode}:\n"
                + log.read_text(errors="replace")[-3000:]
            )
        time.sleep(0.2)
    raise RuntimeError(f"{log.name}: no {text!r} within {timeout:.0f}s")


# --- raw visibility --------------------------------------------------------------------------


class RawWatcher(threading.Thread):
    """Notes when each message id first becomes readable in the lake (new files, every 100 ms)."""

    def __init__(self, lake: Path) -> None:
        super().__init__(daemon=True)
        self.lake = lake
        self.seen: dict[str, float] = {}
        self.stop_event = threading.Event()
        self.known: set[str] = set()

    def run(self) -> None:
        import pyarrow.parquet as pq

        while not self.stop_event.is_set():
            root = self.lake / "events"
            for directory in sorted(root.glob("event_date=*")) if root.exists() else []:
                for entry in os.scandir(directory):
                    if entry.name.startswith((".", "_")) or entry.path in self.known:
                        continue
                    seen_at = time.time()
                    try:
                        ids = pq.read_table(entry.path, columns=["message_id"]).column(0)
                    except (OSError, ValueError):
                        continue
                    self.known.add(entry.path)
                    for message_id in ids.to_pylist():
                        self.seen.setdefault(message_id, seen_at)
            self.stop_event.wait(0.1)


# --- mart attribution ------------------------------------------------------------------------


def materialization_runs(instance, key: tuple[str, ...], partition: str | None):  # noqa: ANN001
    """[(run start, materialized at, run end, run id)] of an asset (partition), oldest first."""
    import dagster as dg

    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(
            asset_key=dg.AssetKey(list(key)), asset_partitions=[partition] if partition else None
        ),
        limit=1000,
    ).records
    found = []
    for record in records:
        run = instance.get_run_record_by_id(record.run_id) if record.run_id else None
        if run is None or run.start_time is None:
            continue
        found.append(
            (run.start_time, record.timestamp, run.end_time or record.timestamp, record.run_id)
        )
    return sorted(found)


def mart_time(raw_at: float, stg: list, mart: list) -> float | None:
    """When the mart first reflected a row readable in raw at `raw_at`: the first stg_events
    run that started after it, then the first mart materialization after that one, in the
    same run or in a run that started after it."""
    starts = [s for s, _m, _e, _r in stg]
    i = bisect_left(starts, raw_at)
    if i == len(stg):
        return None
    _start, stg_done, _end, stg_run = stg[i]
    after = [m for s, m, _e, r in mart if (r == stg_run and m >= stg_done) or s >= stg_done]
    return min(after) if after else None


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0915 - a script
    parser = argparse.ArgumentParser(
        prog="python -m bench.freshness",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=120, help="seconds of traffic")
    parser.add_argument("--rate", type=float, default=20, help="events per second")
    parser.add_argument("--flush-seconds", type=float, default=2.0, help="Beam micro-batch time")
    parser.add_argument(
        "--sensor-interval",
        type=int,
        default=1,
        help="raw sensor's minimum interval, seconds (Dagster's sensor daemon evaluates "
        "sensors every 5 s at most, and 5 here meant every other loop, ~10 s: 1 is every loop)",
    )
    parser.add_argument(
        "--automation-interval",
        type=int,
        default=15,
        help="automation sensor, seconds (definitions.py uses 15)",
    )
    parser.add_argument(
        "--baseline-share",
        type=float,
        default=0.1,
        help="share of sessions published straight to Pub/Sub",
    )
    parser.add_argument("--direct", action="store_true", help="no collector: publish directly")
    parser.add_argument(
        "--refresh-mode",
        choices=("automation", "sensor"),
        default="sensor",
        help="sensor: the raw sensor requests one run per tick (the platform's wiring); "
        "automation: eager() refreshes the latest day and the whole tables (the "
        "alternative it is measured against)",
    )
    parser.add_argument("--no-mart", action="store_true", help="measure the raw leg only")
    parser.add_argument(
        "--mart-wait",
        type=float,
        default=240,
        help="after the traffic, seconds to wait for the marts to catch up",
    )
    parser.add_argument(
        "--raw-wait",
        type=float,
        default=30,
        help="after the traffic, seconds to wait for every acknowledged event to reach raw",
    )
    parser.add_argument(
        "--cold-dbt",
        action="store_true",
        help="no warm server: every run and dbt invocation starts a new process (as before)",
    )
    parser.add_argument(
        "--cdc-rate",
        type=float,
        default=1.0,
        help="paid orders per second committed in PostgreSQL during the traffic, measured "
        "commit -> raw.cdc_orders -> mart_daily_sales (0: no CDC path)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    command = "uv run python -m bench.freshness " + " ".join(sys.argv[1:] if argv is None else argv)

    work = Path(tempfile.mkdtemp(prefix="bench-freshness-"))
    run_id = uuid.uuid4().hex[:6]
    home = work / "dagster_home"
    home.mkdir()
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    have_collector = (ROOT / "collector" / "app.py").exists() and not args.direct
    say(f"work directory: {work}")

    from devtools.services import free_port, start_pubsub_emulator, wait_for_port

    emulator = start_pubsub_emulator(work)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PLATFORM_ENV": "local",
        "DATA_DIR": str(work),
        "LAKE_DIR": str(work / "lake"),
        "DUCKDB_PATH": str(work / "warehouse.duckdb"),
        "DAGSTER_HOME": str(home),
        "PUBSUB_EMULATOR_HOST": emulator.address,
        "GCP_PROJECT": "local-project",
        "PUBSUB_EVENTS_TOPIC": "events",
        "PUBSUB_DEAD_LETTER_TOPIC": "events-dead-letter",
        "RAW_SENSOR_INTERVAL_SECONDS": str(args.sensor_interval),
        "BENCH_AUTOMATION_INTERVAL_SECONDS": str(args.automation_interval),
        "BENCH_REFRESH_MODE": args.refresh_mode,
        "COLLECTOR_WRITE_KEYS": f"{WRITE_KEY}=web",
        "COLLECTOR_SPOOL_DIR": str(work / "spool"),
        "COLLECTOR_HOST": "127.0.0.1",
    }
    if not args.cold_dbt:
        env["WARM_SOCKET"] = str(work / "run" / "dbt.sock")
    os.environ.update({k: v for k, v in env.items() if k != "PATH"})
    os.environ["PATH"] = env["PATH"]
    processes: dict[str, subprocess.Popen] = {}
    watcher = RawWatcher(work / "lake")
    cdc_stack = contextlib.ExitStack()  # the CDC path's processes, stopped by pid at the end
    orders: OrderWriter | None = None
    try:
        from platform_core.settings import get_settings
        from streaming.beam.pubsub_admin import ensure_subscriptions
        from streaming.raw.writer import ParquetRawWriter

        get_settings.cache_clear()
        ParquetRawWriter(work / "lake").ensure_tables()
        ensure_subscriptions(
            "local-project",
            [
                ("events", "events-raw"),
                ("events-dead-letter", "events-dead-letter-raw"),
                ("cdc", "cdc-raw"),
            ],
        )
        if not args.no_mart:
            say("building the (empty) warehouse once, as `make demo` would have ...")
            started = time.monotonic()
            initial_build()
            say(f"  done in {time.monotonic() - started:.0f} s")

        processes["beam"] = start(
            [
                sys.executable,
                "-m",
                "streaming.beam",
                "--runner",
                "DirectRunner",
                "--create_subscriptions",
                "false",
                f"--flush_seconds={args.flush_seconds}",
                "--status_seconds",
                "10",
            ],
            env,
            work / "beam.log",
        )
        wait_for_text(work / "beam.log", "running on the DirectRunner", processes["beam"], 90)

        senders: dict[str, object] = {}
        from bench.freshness.traffic import CollectorSender, PubSubSender

        if have_collector:
            port = free_port()
            env["COLLECTOR_PORT"] = str(port)
            processes["collector"] = start(
                [sys.executable, "-m", "collector", "--log-level", "warning"],
                env,
                work / "collector.log",
            )
            wait_for_port("127.0.0.1", port, 60, processes["collector"])
            senders["collector"] = CollectorSender(f"http://127.0.0.1:{port}", WRITE_KEY)
        if args.baseline_share > 0 or not have_collector:
            senders["pubsub"] = PubSubSender("local-project", "events")

        if args.cdc_rate > 0 and not args.no_mart:
            say("starting the CDC path (PostgreSQL, capture, mock Kafka, bridge) ...")
            dsn = cdc_stack.enter_context(cdc_path(work, work / "lake"))
            orders = OrderWriter(dsn, args.cdc_rate, args.duration)
        if not args.no_mart and not args.cold_dbt:
            processes["warm"] = start(
                [sys.executable, "-m", "platform_assets.warm.server", "--socket"]
                + [env["WARM_SOCKET"], "--dbt-project", str(DBT_PROJECT_DIR)],
                env,
                work / "warm.log",
            )
            wait_for_text(work / "warm.log", "serving on", processes["warm"], 120)
        if not args.no_mart:
            processes["dagster"] = start(
                [
                    str(Path(sys.executable).parent / "dagster-daemon"),
                    "run",
                    "-m",
                    "bench.freshness.defs",
                    "--log-level",
                    "warning",
                ],
                env,
                work / "dagster-daemon.log",
            )
            wait_for_sensor_tick(home, processes["dagster"], work / "dagster-daemon.log", 120)

        watcher.start()
        loads = LoadSampler()
        loads.start()
        path = (
            "collector (HTTP POST /v1/track, one event per request)"
            if have_collector
            else "NO COLLECTOR: published straight to Pub/Sub "
            f"({'--direct' if args.direct else 'collector/app.py not found'})"
        )
        say(f"traffic: {args.rate:g} events/s for {args.duration:g} s via {path}")
        from bench.freshness.traffic import run_traffic

        if orders is not None:
            say(f"  and {args.cdc_rate:g} paid orders/s committed in PostgreSQL (CDC)")
            orders.start()
        traffic = run_traffic(
            senders,
            args.rate,
            args.duration,
            run_id,
            baseline_share=args.baseline_share if have_collector else 0,
        )
        time.sleep(1)
        acked = [r for r in traffic.records if r.acked]
        failed = [r for r in traffic.records if not r.acked]
        say(
            f"  sent {len(traffic.records)} events in {traffic.ended - traffic.started:.0f} s; "
            f"{len(acked)} acknowledged, {len(failed)} failed"
            + (f" (first: {failed[0].error})" if failed else "")
        )

        deadline = time.time() + args.raw_wait
        while time.time() < deadline and any(r.message_id not in watcher.seen for r in acked):
            time.sleep(0.2)
        raw = {
            r.message_id: watcher.seen[r.message_id] - r.acked
            for r in acked
            if r.message_id in watcher.seen
        }
        missing_raw = len(acked) - len(raw)

        mart_lat: list[float] = []
        breakdown: dict[str, list[float]] = {}
        reflected_sessions = None
        completeness: dict[str, int] = {}
        if not args.no_mart:
            mart_lat, breakdown, pending = wait_for_marts(home, acked, watcher.seen, args.mart_wait)
            cdc_figures = None
            if orders is not None:
                orders.stop_event.set()
                orders.join()
                cdc_figures = wait_for_orders(work / "lake", orders.committed, args.mart_wait)
            stop(processes.pop("dagster"))
            wait_for_runs(120)
            reflected_sessions = mart_sessions(work / "warehouse.duckdb")
            completeness = staged_and_reflected(work / "warehouse.duckdb", acked)
            for label, checks, warm in (
                ("models only, warm dbt", False, True),
                ("models only, a dbt process per step", False, False),
                ("with their checks, a dbt process per step", True, False),
            ):
                if warm and args.cold_dbt:
                    continue
                breakdown[f"baseline: one refresh in-process, {label}"] = [
                    refresh_floor(checks, warm)
                ]

        report(
            args,
            command,
            have_collector,
            traffic,
            acked,
            raw,
            missing_raw,
            mart_lat,
            breakdown,
            reflected_sessions,
            work,
        )
        # raw counted again at the very end: at high rates Beam is still draining a backlog
        # when the raw figures above are taken (late, not lost)
        landed = {r.message_id for r in acked if r.message_id in watcher.seen}
        report_completeness(acked, landed, completeness, reflected_sessions, loads)
        if orders is not None and cdc_figures is not None:
            staged = staged_orders(work / "warehouse.duckdb", orders.committed)
            report_cdc(orders, *cdc_figures, staged)
    finally:
        watcher.stop_event.set()
        if "loads" in locals():
            loads.stop_event.set()
        for name in ("dagster", "collector", "beam", "warm"):
            if name in processes:
                stop(processes[name])
        if orders is not None:
            orders.stop_event.set()
        cdc_stack.close()
        emulator.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def wait_for_orders(
    lake: Path, committed: list[int], wait: float
) -> tuple[list[float], list[float], int]:
    """Until every committed order is reflected in mart_daily_sales (or `wait` is over):
    commit -> raw and commit -> mart latencies, and the orders still pending."""
    import dagster as dg

    deadline = time.time() + wait
    with dg.DagsterInstance.get() as instance:
        while True:
            mart = materialization_runs(instance, CDC_MART, None)
            raw, reflected, pending = mart_latencies(mart, landed_orders(lake), committed)
            if not pending or time.time() > deadline:
                return raw, reflected, pending
            time.sleep(2)


def report_cdc(
    orders: OrderWriter, raw: list[float], mart: list[float], pending: int, staged: int
) -> None:
    committed = len(orders.committed)
    say(f"cdc: {committed} paid orders committed, {len(orders.failed)} failed")
    say(f"raw   (commit -> row readable in raw.cdc_orders):  {figures(raw)}")
    say(f"mart  (commit -> reflected in mart_daily_sales):  {figures(mart)}")
    say(f"  orders not reflected within the wait: {pending}")
    verdict = "NO ORDER MISSING" if staged == committed else "ORDERS MISSING"
    say(f"  staging.stg_orders:   {staged}/{committed}   verdict: {verdict}")
    say("=" * 100)


def initial_build() -> None:
    import dagster as dg

    from platform_assets.definitions import defs, platform_assets

    today = datetime.now(UTC).date().isoformat()
    with dg.DagsterInstance.get() as instance:
        result = dg.materialize(
            platform_assets(),
            instance=instance,
            resources=defs.resources,
            partition_key=today,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
    if not result.success:
        raise RuntimeError("the initial warehouse build failed")


def refresh_floor(checks: bool, warm: bool) -> float:
    """Seconds for one in-process run of what a refresh of today does (stg_events for today
    and the whole-table models downstream of raw.events): the floor under the mart latency
    with no daemon, no sensor interval and no run launch. With `checks`, their dbt tests
    too: what every refresh ran before verification runs (REFRESH_CHECKS_INTERVAL_SECONDS=0);
    `warm`: dbt through the warm dbt server, else a new dbt process per invocation."""
    import dataclasses

    import dagster as dg

    from bench.freshness.defs import defs
    from platform_assets.dbt.assets import dbt_resource
    from platform_core.settings import get_settings

    settings = get_settings()
    if not warm:
        settings = dataclasses.replace(settings, warm_socket=None)

    graph = defs.resolve_asset_graph()
    downstream = dg.AssetSelection.assets(dg.AssetKey(["raw", "events"])).downstream()
    keys = [k for k in downstream.resolve(graph) if k in graph.materializable_asset_keys]
    today = datetime.now(UTC).date().isoformat()
    started = time.monotonic()
    with dg.instance_for_test() as instance:
        dg.materialize(
            list(defs.assets),
            instance=instance,
            resources={**defs.resources, "dbt": dbt_resource(settings)},
            selection=dg.AssetSelection.assets(*keys)
            if checks
            else dg.AssetSelection.assets(*keys).without_checks(),
            partition_key=today,
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}},
        )
    return time.monotonic() - started


def wait_for_sensor_tick(home: Path, daemon: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until the raw sensor's first tick stored its cursor (it takes stock of the lake)."""
    import dagster as dg

    deadline = time.monotonic() + timeout
    with dg.DagsterInstance.get() as instance:
        while time.monotonic() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError("the Dagster daemon exited:\n" + log.read_text()[-3000:])
            for state in instance.all_instigator_state():
                data = state.instigator_data
                if state.name == "raw_tables_sensor" and getattr(data, "cursor", None):
                    return
            time.sleep(0.5)
    raise RuntimeError(f"the raw sensor did not tick within {timeout:.0f}s; see {log}")


def wait_for_marts(home: Path, acked: list, seen: dict[str, float], wait: float):  # noqa: ANN201
    import dagster as dg

    today = datetime.now(UTC).date().isoformat()
    deadline = time.time() + wait
    with dg.DagsterInstance.get() as instance:
        while True:
            stg = materialization_runs(instance, STG, today)
            mart = materialization_runs(instance, MART, None)
            latencies, pending = [], 0
            for record in acked:
                raw_at = seen.get(record.message_id)
                at = mart_time(raw_at, stg, mart) if raw_at is not None else None
                if at is None:
                    pending += 1
                else:
                    latencies.append(at - record.acked)
            if not pending or time.time() > deadline:
                break
            time.sleep(2)
        raw_events = [
            r.timestamp
            for r in instance.fetch_materializations(
                dg.AssetKey(["raw", "events"]), limit=1000
            ).records
        ]
    breakdown = {
        "stg_events run (start -> materialized)": [m - s for s, m, _e, _r in stg],
        "mart run (start -> mart materialized)": [m - s for s, m, _e, _r in mart],
    }
    sensor_lag = []
    for raw_at in sorted(set(seen.values())):
        later = [t for t in raw_events if t >= raw_at]
        if later:
            sensor_lag.append(min(later) - raw_at)
    breakdown["raw file -> raw materialization (sensor)"] = sensor_lag
    gaps = []
    for _s, stg_done, _e, stg_run in stg:
        nxt = [m for s, m, _e2, r in mart if (r == stg_run and m >= stg_done) or s >= stg_done]
        if nxt:
            gaps.append(min(nxt) - stg_done)
    breakdown["stg_events materialized -> mart materialized"] = gaps
    starts = []
    for t in raw_events:
        nxt = [s for s, _m, _e, _r in stg if s >= t]
        if nxt:
            starts.append(min(nxt) - t)
    breakdown["raw materialization -> stg_events run starts"] = starts
    breakdown["verification runs (checks only; start -> end)"] = verification_runs()
    return latencies, breakdown, pending


def checks_mode() -> str:
    interval = get_settings().refresh_checks_interval.total_seconds()
    return f"a verification run every {interval:g} s" if interval else "in every refresh"


def verification_runs() -> list[float]:
    """Durations of the raw sensor's checks-only runs (REFRESH_CHECKS_INTERVAL_SECONDS)."""
    import dagster as dg

    from platform_assets.raw.sensors import VERIFICATION_TAG

    with dg.DagsterInstance.get() as instance:
        runs = instance.get_run_records(
            filters=dg.RunsFilter(tags={VERIFICATION_TAG: "refreshes"}), limit=100
        )
    return [r.end_time - r.start_time for r in runs if r.start_time and r.end_time]


class LoadSampler(threading.Thread):
    """The 1-minute load average every 5 s while the benchmark runs (the machine is shared)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.samples.append(os.getloadavg()[0])
            self.stop_event.wait(5)


def staged_and_reflected(warehouse: Path, acked: list) -> dict[str, int]:
    """How many acknowledged events are in staging.stg_events, and how many of their sessions
    (anonymous ids) in int_sessions: the warehouse's own answer, read after the daemon stopped."""
    import duckdb

    ids = sorted({r.message_id for r in acked})
    anons = sorted({r.anonymous_id for r in acked})
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            staged = con.execute(
                "select count(distinct message_id) from staging.stg_events "
                "where message_id in (select unnest(?))",
                [ids],
            ).fetchone()[0]
            sessions = con.execute(
                "select count(distinct anonymous_id) from staging.int_sessions "
                "where anonymous_id in (select unnest(?))",
                [anons],
            ).fetchone()[0]
    except duckdb.Error as error:
        say(f"  (the warehouse could not be read: {error})")
        return {}
    return {"events": len(ids), "staged": staged, "anons": len(anons), "sessions": sessions}


def wait_for_runs(timeout: float) -> int:
    """Until no run executes any more (or `timeout`); returns how many still do. With the
    daemon stopped, queued runs stay queued, but the runs it launched go on in forks of the
    warm server, and one that writes holds the warehouse until it ends."""
    import dagster as dg

    executing = [
        dg.DagsterRunStatus.STARTING,
        dg.DagsterRunStatus.STARTED,
        dg.DagsterRunStatus.CANCELING,
    ]
    deadline = time.time() + timeout
    with dg.DagsterInstance.get() as instance:
        while True:
            left = len(instance.get_run_ids(filters=dg.RunsFilter(statuses=executing)))
            if not left or time.time() > deadline:
                return left
            time.sleep(1)


def report_completeness(
    acked: list, raw: set[str], completeness: dict[str, int], reflected: int | None, loads: object
) -> None:
    """No event missing: every acknowledged event in raw and in staging, every session in the
    marts' session table."""
    say("no event missing (acknowledged events found downstream, counted after the mart wait):")
    say(f"  raw.events:           {len(raw)}/{len(acked)}")
    if completeness:
        say(f"  staging.stg_events:   {completeness['staged']}/{completeness['events']}")
        say(f"  int_sessions (anons): {completeness['sessions']}/{completeness['anons']}")
        ok = (
            len(raw) == len(acked)
            and completeness["staged"] == completeness["events"]
            and completeness["sessions"] == completeness["anons"]
        )
        verdict = "NO EVENT MISSING" if ok else "EVENTS MISSING"
    else:
        verdict = "UNKNOWN: staging could not be read" + (
            "" if len(raw) == len(acked) else "; EVENTS MISSING in raw"
        )
    say(f"  verdict: {verdict}")
    samples = getattr(loads, "samples", [])
    if samples:
        say(
            f"load average (1 min) during the run: median {median(samples):.1f}, "
            f"max {max(samples):.1f} on {os.cpu_count()} cores"
        )
    say("=" * 100)


def mart_sessions(warehouse: Path) -> int | None:
    import duckdb

    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(
                "select coalesce(sum(sessions), 0) from mart.mart_conversion_funnel "
                "where traffic_source = 'bench'"
            ).fetchone()[0]
    except duckdb.Error:
        return None


def report(
    args,
    command,
    have_collector,
    traffic,
    acked,
    raw,
    missing_raw,
    mart_lat,  # noqa: ANN001
    breakdown,
    reflected_sessions,
    work,
) -> None:
    by_path: dict[str, list[float]] = {}
    for record in acked:
        if record.message_id in raw:
            by_path.setdefault(record.path, []).append(raw[record.message_id])
    cores = os.cpu_count()
    say("")
    say("=" * 100)
    refresher = "sensor run request" if args.refresh_mode == "sensor" else "eager() automation"
    say(
        "Freshness: collector -> Pub/Sub emulator -> Beam DirectRunner -> raw lake -> raw sensor "
        f"-> {refresher} -> dbt -> mart"
    )
    say(f"command: {command.strip()}")
    say(
        f"machine: {cores} cores, load average {os.getloadavg()[0]:.1f} at the end; Beam flush "
        f"{args.flush_seconds:g} s; raw sensor every {args.sensor_interval} s"
        + (
            f"; automation every {args.automation_interval} s"
            if args.refresh_mode == "automation"
            else ""
        )
        + f"; refresh mode: {args.refresh_mode}"
        + f"; dbt: {'a new process per invocation' if args.cold_dbt else 'warm server'}"
        + f"; checks: {checks_mode()}"
    )
    say(
        f"traffic: {len(traffic.records)} events ({args.rate:g}/s for {args.duration:g} s), "
        f"{len(acked)} acknowledged"
    )
    if not have_collector:
        say(
            "NOTE: no collector was used; events were published straight to Pub/Sub in the "
            "collector's format, so 'ack' below is the Pub/Sub publish acknowledgement."
        )
    label = "collector 2xx" if have_collector else "publish ack"
    main_path = "collector" if have_collector else "pubsub"
    say("")
    say(
        f"raw   ({label} -> row readable in raw.events):        "
        f"{figures(by_path.get(main_path, []))}   target p95 < 5 s"
    )
    if have_collector and by_path.get("pubsub"):
        say(f"  baseline, same run (Pub/Sub publish ack -> raw):    {figures(by_path['pubsub'])}")
    if missing_raw:
        say(
            f"  {missing_raw} acknowledged events not readable in raw within {args.raw_wait:g} s "
            "after the traffic (still queued; the no-event-missing check counts them at the end)"
        )
    if not args.no_mart:
        say(
            f"mart  ({label} -> reflected in mart_conversion_funnel): {figures(mart_lat)}"
            "   target p95 < 15 s"
        )
        say(
            f"  events not reflected within the wait: {len(acked) - len(mart_lat)}; bench "
            f"sessions in the mart after the run: {reflected_sessions}"
        )
        say("  where the mart time goes (medians, seconds):")
        for name, values in breakdown.items():
            if values:
                say(
                    f"    {name:<48} {median(values):6.1f}   (n={len(values)}, "
                    f"max {max(values):.1f})"
                )
    say(f"logs: {work}" + ("" if args.keep else " (removed; --keep keeps them)"))
    say("=" * 100)


if __name__ == "__main__":
    sys.exit(main())
