"""Scale benchmark: `uv run python -m bench.scale [--days 30 90 365] [--sessions 1000 10000]`.

What a refresh and a quality run cost as the warehouse grows. For each history (days x
sessions/day; bench/scale/grow.py grows it from a simulated base window) it builds the
warehouse once (`dbt build`, not timed as a refresh), lands new deliveries of the last day,
then times:

- refresh: the two dbt invocations a refresh of today makes, with the arguments the Dagster
  assets give them (platform_assets/dbt/assets.py): `build --select tag:partitioned --vars
  {min_date, max_date}` (stg_events for today) and `build --exclude tag:partitioned` (every
  whole-table model and the tests, i.e. the dbt asset checks, of both). Each invocation has
  its own target directory, parsed once before (as each Dagster op keeps its partial parse);
- sessions: int_sessions in the refresh (incremental on DuckDB: the visitors with new
  events), and, as the same-run baseline, the same model rebuilt from the whole history
  (`run --select int_sessions --full-refresh`, what every refresh cost before);
- quality run: the data-quality rules of every asset (`python -m platform_assets.quality
  check`, what the `data_quality_checks` job's asset checks run), and the dbt data tests on
  their own (`dbt test`).

Printed per row: raw events, the warehouse file's size, wall and CPU seconds (the children's
user+sys, less sensitive than wall time to the other engineers sharing the machine), dbt's
own split (start-up + parse = wall - dbt's elapsed time; stg_events for today; whole-table
models; tests), and the 1-minute load average when the row finished. What grows with the
whole table rather than with what changed is the whole-table models and tests column.

Sizes run smallest first within `--budget-minutes`; a size whose estimated time (the last
size's, scaled by rows) would overrun the budget is skipped and reported as such. No
assertions: figures only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from bench.scale.grow import BASE_SESSIONS, grow_events, land_today, simulate_base

ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = ROOT / "dbt_project"
END = date(2026, 11, 20)
BIN = Path(sys.executable).parent
SESSIONS = "model.ecommerce.int_sessions"


COLUMNS = (
    "columns: events = raw.events rows; today = rows landed for the refresh;",
    "  build = the first dbt build, without tests (wall s);",
    "  refresh = both dbt steps of a refresh (wall s); cpu = the children's CPU s;",
    "  start+ = start-up + parse (wall - dbt's elapsed); stg = stg_events for today (node s);",
    "  models = whole-table models + seed (node s); tests = the refresh's dbt tests (node s);",
    "  sess = int_sessions in the refresh (node s); full = int_sessions rebuilt from the",
    "    whole history, the same-run baseline (node s);",
    "  rules = `python -m platform_assets.quality check`, every asset's rules (wall s);",
    "  dbt test = every dbt data test (wall s); load = 1-min load average at the row's end",
)


def say(message: str = "") -> None:
    print(message, flush=True)


@dataclass
class Timed:
    wall: float
    cpu: float
    dbt_elapsed: float = 0.0  # dbt's own elapsed time (run_results.json), without start-up
    nodes: dict[str, float] = field(default_factory=dict)  # unique_id -> execution seconds

    def node_sum(self, prefix: str, exclude: str = "") -> float:
        return sum(
            s
            for n, s in self.nodes.items()
            if n.startswith(prefix) and (not exclude or exclude not in n)
        )


def timed(command: list[str], env: dict[str, str], results: Path | None = None) -> Timed:
    """Run a command to completion; wall time, the children's CPU, dbt's run results."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(command, env=env, cwd=DBT_DIR, capture_output=True, text=True)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):  # 1: a failed test or check is a result, not a crash
        raise RuntimeError(
            f"{' '.join(command[:3])} exited {done.returncode}:\n{done.stdout[-3000:]}"
        )
    out = Timed(wall, cpu)
    if results is not None and (results / "run_results.json").is_file():
        doc = json.loads((results / "run_results.json").read_text())
        out.dbt_elapsed = doc.get("elapsed_time", 0.0)
        out.nodes = {r["unique_id"]: r["execution_time"] for r in doc["results"]}
    return out


def dbt(*args: str, target: Path) -> list[str]:
    return [
        str(BIN / "dbt"), *args, "--target", "local", "--quiet",
        "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
        "--target-path", str(target), "--log-path", str(target / "logs"),
    ]  # fmt: skip


@dataclass
class Row:
    days: int
    sessions: int
    events: int = 0
    today_rows: int = 0
    warehouse_mb: float = 0.0
    build: float = 0.0
    refresh: list[Timed] = field(default_factory=list)  # partitioned step, whole-table step
    sessions_full: Timed | None = None  # int_sessions from the whole history
    dbt_test: Timed | None = None
    rules: Timed | None = None
    load: float = 0.0
    skipped: str = ""


def measure(base: Path, work: Path, days: int, sessions: int, base_days: int) -> Row:
    row = Row(days, sessions)
    copies = sessions // BASE_SESSIONS
    lake = work / "lake"
    row.events = grow_events(base, lake, days=days, copies=copies, base_days=base_days, end=END)
    env = {
        **os.environ,
        "PLATFORM_ENV": "local",
        "DBT_TARGET": "local",
        "DATA_DIR": str(work),
        "LAKE_DIR": str(lake),
        "DUCKDB_PATH": str(work / "warehouse.duckdb"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    # dbt reparses when the vars change: the whole-table step and `dbt test` share a target
    # directory (and its partial parse) with the first build, the partitioned step has its own
    main, part = work / "t_main", work / "t_partitioned"
    row.build = timed(dbt("build", "--exclude-resource-type", "test", target=main), env).wall
    at = datetime.combine(END, datetime.min.time()) + timedelta(hours=23)
    row.today_rows = land_today(base, lake, copies=copies, day=END, at=at)
    window = json.dumps({"min_date": END.isoformat(), "max_date": END.isoformat()})
    timed(dbt("parse", "--vars", window, target=part), env)
    row.refresh = [
        timed(
            dbt("build", "--select", "tag:partitioned", "--vars", window, target=part), env, part
        ),
        timed(dbt("build", "--exclude", "tag:partitioned", target=main), env, main),
    ]
    full = ["run", "--select", "int_sessions", "--full-refresh"]
    row.sessions_full = timed(dbt(*full, target=main), env, main)
    row.dbt_test = timed(dbt("test", target=main), env, main)
    as_of = f"{END + timedelta(days=1)}T00:05:00+00:00"
    rules = [str(BIN / "python"), "-m", "platform_assets.quality", "check", "--as-of", as_of]
    row.rules = timed(rules, env)
    row.warehouse_mb = (work / "warehouse.duckdb").stat().st_size / 1e6
    row.load = os.getloadavg()[0]
    return row


def print_table(rows: list[Row]) -> None:
    say(
        f"{'days':>5} {'sess/d':>6} {'events':>10} {'today':>7} {'wh MB':>6} {'build':>6} | "
        f"{'refresh':>7} {'cpu':>6} {'start+':>6} {'stg':>5} {'models':>6} {'tests':>6} | "
        f"{'sess':>5} {'full':>5} | "
        f"{'rules':>6} {'cpu':>5} {'dbt test':>8} {'cpu':>5} | {'load':>4}"
    )
    for r in rows:
        if r.skipped:
            say(f"{r.days:>5} {r.sessions:>6}  {r.skipped}")
            continue
        wall = sum(t.wall for t in r.refresh)
        cpu = sum(t.cpu for t in r.refresh)
        startup = sum(t.wall - t.dbt_elapsed for t in r.refresh)
        part, whole = r.refresh
        stg = part.nodes.get("model.ecommerce.stg_events", 0.0)
        models = whole.node_sum("model.") + whole.node_sum("seed.")
        tests = part.node_sum("test.") + whole.node_sum("test.")
        sessions = whole.nodes.get(SESSIONS, 0.0)
        full = r.sessions_full.nodes.get(SESSIONS, 0.0)
        say(
            f"{r.days:>5} {r.sessions:>6} {r.events:>10,} {r.today_rows:>7,} "
            f"{r.warehouse_mb:>6.0f} {r.build:>6.0f} | {wall:>7.1f} {cpu:>6.1f} {startup:>6.1f} "
            f"{stg:>5.1f} {models:>6.1f} {tests:>6.1f} | {sessions:>5.1f} {full:>5.1f} | "
            f"{r.rules.wall:>6.1f} {r.rules.cpu:>5.1f} "
            f"{r.dbt_test.wall:>8.1f} {r.dbt_test.cpu:>5.1f} | {r.load:>4.1f}"
        )


def slowest_models(row: Row, n: int = 5) -> str:
    nodes = {**row.refresh[0].nodes, **row.refresh[1].nodes}
    models = sorted(
        ((s, k.split(".")[-1]) for k, s in nodes.items() if k.startswith("model.")), reverse=True
    )
    return ", ".join(f"{name} {s:.1f}s" for s, name in models[:n])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--days", type=int, nargs="+", default=[30, 90, 365])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--base-days", type=int, default=7, help="simulated base window")
    parser.add_argument("--budget-minutes", type=float, default=20)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    command = "uv run python -m bench.scale " + " ".join(sys.argv[1:] if argv is None else argv)
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    deadline = time.monotonic() + args.budget_minutes * 60
    say(f"work directory: {work}")
    rows: list[Row] = []
    try:
        started = time.monotonic()
        simulate_base(work / "base" / "lake", days=args.base_days, end=END, seed=args.seed)
        say(
            f"simulated the base window ({args.base_days} days x {BASE_SESSIONS} sessions) in "
            f"{time.monotonic() - started:.0f} s"
        )
        sizes = sorted(
            ((d, s) for d in args.days for s in args.sessions), key=lambda x: (x[0] * x[1], x[1])
        )
        # a size costs a fixed part (processes, parsing, per-node overhead) and a part in
        # its rows: estimated as the last size's time x sqrt(the growth in rows)
        last: tuple[float, int] | None = None  # seconds, day x sessions of the last size
        for days, sessions in sizes:
            estimate = last[0] * (days * sessions / last[1]) ** 0.5 if last else 0.0
            if time.monotonic() + estimate > deadline:
                rows.append(
                    Row(
                        days,
                        sessions,
                        skipped=f"skipped: ~{estimate:.0f} s estimated, over the budget",
                    )
                )
                say(rows[-1].skipped + f" ({days} days x {sessions})")
                continue
            size_dir = work / f"d{days}_s{sessions}"
            t0 = time.monotonic()
            rows.append(measure(work / "base" / "lake", size_dir, days, sessions, args.base_days))
            spent = time.monotonic() - t0
            last = (spent, days * sessions)
            say(
                f"  {days} days x {sessions} sessions/day measured in {spent:.0f} s; "
                f"slowest models: {slowest_models(rows[-1])}"
            )
            shutil.rmtree(size_dir, ignore_errors=True)
        report(rows, command)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def report(rows: list[Row], command: str) -> None:
    say("")
    say("=" * 132)
    say(
        "Scale: the cost of a refresh of today and of a quality run as the warehouse grows (DuckDB)"
    )
    say(f"command: {command.strip()}")
    say(f"machine: {os.cpu_count()} cores, shared; finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    for line in COLUMNS:
        say(line)
    print_table(rows)
    say("=" * 132)


if __name__ == "__main__":
    sys.exit(main())
