"""`make dev`: the whole platform on one machine, live, until Ctrl-C.

In dependency order, each step waiting until what it started is ready: PostgreSQL (the
shop's database, logical replication) and the synthetic shop catching up with now (on the
first start: DEV_BACKFILL_DAYS past days), while the Pub/Sub emulator, Kafka, the Beam job
and the collector start; then the CDC capture and bridge, and Dagster (webserver, daemon,
code server) with its sensors and schedules running; on the first start, one build of every
staging and mart table. Then it prints one line per endpoint, the time it took, and
supervises: the shop sends live traffic, a service process that dies is restarted, and each
child's log lines are printed with its name.

Ctrl-C or SIGTERM stops everything within 30 s (the edge first, so what is in flight drains
into raw) and leaves no process behind. A restart keeps everything under DEV_DATA_DIR;
`make dev-reset` starts over.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

import duckdb
import psycopg

from devtools.cdc.processes import ChildProcess
from devtools.dev.logs import LogFollower, PrefixedHandler
from devtools.dev.orchestrator import DagsterUI, prepare_instance, start_dagster, start_warm_server
from devtools.dev.preflight import problems
from devtools.dev.settings import DevSettings
from devtools.dev.shop import ShopFeeder
from devtools.services import ServiceError, stop_process_group
from devtools.shop.replay import DEMO_WRITE_KEYS
from devtools.stack import LocalStack
from platform_core.raw.schema import CDC_TABLES
from platform_core.settings import Settings, get_settings
from streaming.raw.writer import ParquetRawWriter

RESTARTABLE = ("collector", "beam", "capture", "bridge", "dagster")
MAX_RESTARTS = 5
STOP_BUDGET_SECONDS = 25  # of the 30 s promised, with a margin
STATUS_EVERY_SECONDS = 60


class Interrupted(Exception):
    """Ctrl-C or SIGTERM while starting or running."""


class Supervisor:
    def __init__(self, dev: DevSettings, out: TextIO = sys.stdout) -> None:
        self.dev = dev
        self.out = out
        dev.log_dir.mkdir(parents=True, exist_ok=True)
        self.logs = LogFollower(dev.log_dir, out)
        logging.getLogger("devtools").addHandler(PrefixedHandler(self.logs))
        logging.getLogger("devtools").setLevel(logging.INFO)
        self.settings: Settings = get_settings()  # the caller pointed it at DEV_DATA_DIR
        self.stack = LocalStack(
            self.settings,
            dev.log_dir,
            say=lambda text: self.say(text.strip()),
            collector_port=dev.collector_port,
            postgres_port=dev.postgres_port,
            metrics=True,
            # a development database: a commit need not wait for the disk (the backfill
            # commits thousands); a crash of the machine may lose its last moments, no more
            postgres_settings={"synchronous_commit": "off"},
        )
        self.ui = DagsterUI(dev.ui_host, dev.ui_port)
        self.dagster: ChildProcess | None = None
        self.warm_server: ChildProcess | None = None
        self.warm_socket: Path | None = None
        self.feeder: ShopFeeder | None = None
        self.restarts: Counter[str] = Counter()
        self._stopping = False
        self._reported_feeder_error = False

    @property
    def pid_file(self) -> Path:
        return self.dev.data_dir / "supervisor.pid"

    def say(self, text: str) -> None:
        self.logs.say("dev", f"{datetime.now():%H:%M:%S} {text}")

    # --- the whole life ------------------------------------------------------------------

    def run(self) -> int:
        started = time.monotonic()
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        code = 0
        try:
            found = problems(self.dev)
            running = running_supervisor(self.dev.data_dir)
            if running:
                found.append(
                    f"make dev already runs on {self.dev.data_dir} (pid {running}): "
                    "stop it, or set DEV_DATA_DIR for a second one"
                )
            if found:
                for problem in found:
                    print(f"make dev cannot start: {problem}", file=sys.stderr)
                return 2
            self.pid_file.write_text(f"{os.getpid()}\n")
            self.logs.start()
            self.start(started)
            self.supervise()
        except Interrupted:
            pass
        except ServiceError as error:
            self.say(f"FAILED: {error}")
            code = 1
        finally:
            if self.pid_file.exists() and running_supervisor(self.dev.data_dir) == os.getpid():
                self._stopping = True
                self.stop()
                self.pid_file.unlink(missing_ok=True)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stopping:
            return  # already stopping: it ends within its budget
        self._stopping = True
        raise Interrupted(signal.Signals(signum).name)

    # --- starting ------------------------------------------------------------------------

    def start(self, started: float) -> None:
        dev, stack = self.dev, self.stack
        first = not _first_build_done(dev.data_dir)
        self.say(
            f"starting the platform in {dev.data_dir}"
            + (f" (first start: backfilling {dev.backfill_days} days)" if first else "")
        )
        stack.start_postgres()
        stack.start_kafka()
        assert stack.postgres is not None and stack.kafka is not None
        # the code location and the reconciliation find the database and Kafka here
        os.environ["SOURCE_DB_DSN"] = stack.postgres.dsn()
        os.environ["KAFKA_BOOTSTRAP_SERVERS"] = stack.kafka.address
        go_live = threading.Event()
        self.feeder = self._start_shop(go_live)
        # runs and their dbt steps fork from one warm process (seconds saved per refresh)
        self.warm_server, self.warm_socket = start_warm_server(dev.log_dir)
        os.environ["WARM_SOCKET"] = str(self.warm_socket)
        stale = prepare_instance(dev.dagster_home)
        if stale:
            self.say(f"{stale} run(s) left in flight by the last stop marked failed")
        if not first:  # the sensors pick up where they were
            self.dagster = start_dagster(dev.ui_host, dev.ui_port, dev.log_dir, {})
        stack.start_emulator()
        stack.start_beam()
        stack.start_collector()
        if first:
            # the raw sensor's first tick takes stock of what raw holds: the backfill and the
            # database's snapshot (else its first runs would go before the first build and
            # redo most of it); the shop goes live once the first build is queued
            self._wait(self.feeder.caught_up, "the shop's backfill", 900)
            stack.start_cdc()
            self._wait_for(self._cdc_snapshot_landed, "the CDC snapshot to reach raw", 300)
            self.dagster = start_dagster(dev.ui_host, dev.ui_port, dev.log_dir, {})
        else:
            go_live.set()
            stack.start_cdc()
        assert self.dagster is not None
        self.ui.wait_until_loaded(300, self.dagster.alive, self.dagster.log_tail)
        self.say(f"Dagster is up at {self.ui.url}")
        if first:
            self.first_build(go_live)
        self.print_endpoints(time.monotonic() - started, first)

    def _start_shop(self, go_live: threading.Event) -> ShopFeeder:
        assert self.stack.postgres is not None
        return ShopFeeder(
            state_path=self.dev.data_dir / "shop.json",
            lake=self.settings.lake_path,
            dsn=self.stack.postgres.dsn(),
            collector_url=f"http://127.0.0.1:{self.dev.collector_port}",
            sessions_per_day=self.dev.sessions_per_day,
            backfill_days=self.dev.backfill_days,
            live=self.dev.events_per_second > 0,
            say=lambda text: self.logs.say("shop", text),
            go_live=go_live,
        ).start()

    def first_build(self, go_live: threading.Event) -> None:
        """Every staging and mart table over every day, in one run, the first in the queue;
        then the shop goes live."""
        assert self.feeder is not None
        first_day = self.feeder.state.first_day - timedelta(days=1)  # clock skew lands there
        today = datetime.now(UTC).date()
        built = time.monotonic()
        run_id = self.ui.launch_build(first_day, today)
        go_live.set()
        self.say(f"first build of every table, {first_day} .. {today}: {self.ui.url}/runs/{run_id}")
        status = self.ui.wait_for_run(run_id, 1800, lambda: self._stopping)
        if status != "SUCCESS":
            raise ServiceError(f"the first build ended {status}: see {self.ui.url}/runs/{run_id}")
        self.say(f"first build succeeded in {time.monotonic() - built:.0f}s")
        _save_first_build(self.dev.data_dir, run_id)

    def _cdc_snapshot_landed(self) -> bool:
        """Every row of the shop's tables is in raw (at least as many rows per table)."""
        assert self.stack.postgres is not None
        with psycopg.connect(self.stack.postgres.dsn()) as conn:
            source = {
                t: conn.execute(f"select count(*) from {t}").fetchone()[0] for t in CDC_TABLES
            }
        lake = ParquetRawWriter(self.settings.lake_path)
        with duckdb.connect() as con:
            for table, rows in source.items():
                if not any(lake.table_path(f"cdc_{table}").glob("**/*.parquet")):
                    if rows:
                        return False
                    continue
                landed = con.execute(
                    f"select count(*) from read_parquet('{lake.glob(f'cdc_{table}')}', "
                    "union_by_name = true)"
                ).fetchone()[0]
                if landed < rows:
                    return False
        return True

    def _wait(self, event: threading.Event, what: str, timeout: float) -> None:
        self._wait_for(event.is_set, what, timeout)
        if self.feeder is not None and self.feeder.stats.errors:
            raise ServiceError(f"the shop failed: {self.feeder.stats.errors[-1]}")

    def _wait_for(self, condition: Any, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            self._check_services()
            if time.monotonic() > deadline:
                raise ServiceError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(1)

    def print_endpoints(self, seconds: float, first: bool) -> None:
        dev, stack = self.dev, self.stack
        assert stack.postgres is not None
        read_path = _shown(self.settings.warehouse_read_path)
        metrics = f"{stack.collector_url}/metrics (collector)" + "".join(
            f", {url} ({name})" for name, url in stack.metrics_urls.items()
        )
        lines = [
            f"Dagster UI: {self.ui.url}",
            f"collector: {stack.collector_url} (write key {DEMO_WRITE_KEYS['web']})",
            f"PostgreSQL: {stack.postgres.dsn()}",
            f"warehouse: {read_path} (read-only copy of the last completed refresh): "
            f'uv run python -m devtools.dev query "select * from mart.mart_daily_sales '
            f'order by 1 desc limit 7"',
            f"metrics: {metrics}",
            f"make dev is up in {seconds:.0f}s"
            + (" (first start, with the backfill and the first build)" if first else "")
            + f"; the shop sends about {dev.events_per_second:g} events/s; Ctrl-C stops it",
        ]
        with self.logs.lock:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()

    # --- running -------------------------------------------------------------------------

    def supervise(self) -> None:
        last_status = time.monotonic()
        while True:
            time.sleep(1)
            self._check_services()
            if time.monotonic() - last_status > STATUS_EVERY_SECONDS and self.feeder:
                stats = self.feeder.stats
                self.logs.say(
                    "shop",
                    f"live: {stats.live_events:,} events sent, "
                    f"{stats.live_transactions:,} database transactions",
                )
                last_status = time.monotonic()

    def _check_services(self) -> None:
        """Restart a service process that died (a few times); anything else is fatal."""
        dead = self.stack.exited()
        if self.dagster is not None and not self.dagster.alive():
            dead.append(self.dagster)
        for child in dead:
            if child.name not in RESTARTABLE:
                raise ServiceError(f"{child.name} exited:\n{child.log_tail()}")
            self.restarts[child.name] += 1
            if self.restarts[child.name] > MAX_RESTARTS:
                raise ServiceError(f"{child.name} keeps exiting:\n{child.log_tail()}")
            self.say(f"{child.name} exited ({child.process.returncode}); restarting it")
            if child.name == "dagster":
                self.dagster = start_dagster(
                    self.dev.ui_host, self.dev.ui_port, self.dev.log_dir, {}
                )
            else:
                self.stack.restart(child.name)
        feeder = self.feeder
        if feeder is not None and feeder.stats.errors and not self._reported_feeder_error:
            self._reported_feeder_error = True
            self.logs.say("shop", f"stopped sending traffic: {feeder.stats.errors[-1]}")

    # --- stopping ------------------------------------------------------------------------

    def stop(self) -> None:
        """The shop, Dagster and the live path stop side by side, within the budget."""
        started = time.monotonic()
        self.say("stopping")
        if self.feeder is not None:
            self.feeder.stopping.set()
        workers = [threading.Thread(target=self.stack.stop, args=(STOP_BUDGET_SECONDS - 2,))]
        if self.dagster is not None:
            dagster = self.dagster.process
            workers.append(
                threading.Thread(target=stop_process_group, args=(dagster, 15, 5), daemon=True)
            )
        if self.warm_server is not None:  # after Dagster: a run's dbt step ends with it
            warm = self.warm_server.process
            workers.append(
                threading.Thread(target=stop_process_group, args=(warm, 15, 5), daemon=True)
            )
        for worker in workers:
            worker.start()
        if self.feeder is not None:
            self.feeder.stop(timeout=5)
        for worker in workers:
            worker.join(STOP_BUDGET_SECONDS)
        if self.warm_socket is not None:  # its private directory (the socket is gone)
            shutil.rmtree(self.warm_socket.parent, ignore_errors=True)
        left = _kill_our_children()
        self.say(
            f"stopped in {time.monotonic() - started:.1f}s"
            + (f" ({left} process group(s) killed)" if left else "")
        )
        self.logs.stop()


def running_supervisor(data_dir: Path) -> int | None:
    """The pid of the `make dev` running on this data directory, if one is."""
    try:
        pid = int((data_dir / "supervisor.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"devtools.dev" in command else None  # not a reused pid


def _kill_our_children() -> int:
    """SIGKILL the process group of any child still running (one started just as a signal
    came in, before it was recorded): nothing outlives `make dev`."""
    killed = 0
    for pid in _children(os.getpid()):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
            killed += 1
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return killed


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry))
    return found


def _shown(path: Path) -> str:
    """A path relative to the working directory when it is under it (shorter to paste)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _first_build_done(data_dir: Path) -> bool:
    path = data_dir / "dev.json"
    if not path.exists() or not (data_dir / "shop.json").exists():
        return False
    return bool(json.loads(path.read_text()).get("first_build_run"))


def _save_first_build(data_dir: Path, run_id: str) -> None:
    (data_dir / "dev.json").write_text(json.dumps({"first_build_run": run_id}) + "\n")
