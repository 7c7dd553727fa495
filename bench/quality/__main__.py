"""`uv run python -m bench.quality`: do the data-quality rules catch known faults, quietly?

A synthetic shop (devtools.shop) is simulated for warm-up + 30 days and replayed into a
private raw lake one day at a time, by ingestion time, the way data arrives. After each day
dbt builds staging and marts (dbt-duckdb, in process) and every rule of every asset runs
on the real tables as of 00:05 the next morning, recording into a private history store
(schema baselines, like production). Two scenarios share the simulation:

- faults: known faults (devtools/faults.py) injected on some days; recall per
  fault type = fault days on which one of the fault's expected checks did not pass;
- clean: the same days with no fault at all.

False alerts: per asset, the clean days (every day of the clean scenario, and the fault-free
days of the faults scenario) on which any of its checks did not pass. Same-run baseline:
the volume faults and clean days judged by a naive volume rule (mean and standard deviation
of the last 14 days, no weekday seasonality, no trend, no minimum change) on the same data.

Target: every injected fault detected, at most one false alert in 30 clean days per asset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = ROOT / "dbt_project"
TABLES = (
    "events",
    "events_dead_letter",
    "cdc_users",
    "cdc_products",
    "cdc_orders",
    "cdc_order_items",
)
PARTITION = {"events": "event_date"}  # the others: ingest_date
# fault day offsets within the evaluated days (two of each type, weekdays vary)
SCHEDULE = (
    (2, "volume_drop"),
    (4, "null_burst"),
    (6, "late_data"),
    (8, "duplicate_burst"),
    (10, "schema_drift"),
    (12, "orphaned_fk"),
    (14, "volume_spike"),
    (16, "duplicate_keys"),
    (18, "late_data"),
    (19, "volume_spike"),
    (21, "null_burst"),
    (23, "orphaned_fk"),
    (25, "duplicate_burst"),
    (26, "duplicate_keys"),
    (28, "volume_drop"),
)


def say(message: str) -> None:
    print(message, flush=True)


@dataclass
class DayResult:
    day: date
    statuses: dict[str, str] = field(default_factory=dict)  # "asset:check" -> status
    findings: dict[str, str] = field(default_factory=dict)  # "asset:check" -> description
    baseline: dict[str, bool] = field(default_factory=dict)  # asset -> naive volume alert


def generate(config: object, lake: Path) -> None:
    from devtools.shop.load import load_shop
    from streaming.raw.writer import ParquetRawWriter

    load_shop(ParquetRawWriter(lake), config)


class Replay:
    """Raw rows held in DuckDB, written to a lake by ingestion day (as they arrive)."""

    def __init__(self, source_lake: Path, lake: Path, faults: list) -> None:
        import duckdb

        from devtools.faults import apply_fault

        self.lake = lake
        self.faults = faults
        self.con = duckdb.connect()
        for table in TABLES:
            glob = source_lake / table / "**" / "*.parquet"
            self.con.execute(
                f"create table {table} as select * from read_parquet('{glob}', "
                f"union_by_name = true, hive_partitioning = false)"
            )
        for fault in faults:
            apply_fault(self.con, fault)
        for table in TABLES:  # zero-row schema files, as the raw writer's ensure_tables
            (lake / table).mkdir(parents=True, exist_ok=True)
            empty = self.con.sql(f"select * from {table} limit 0").to_arrow_table()
            self._write_file(empty, lake / table / "_schema.parquet")

    def _write_file(self, arrow_table: object, path: Path) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(arrow_table, path)

    def land(self, first: date, last: date) -> int:
        """Write the rows ingested on first..last (inclusive), one file per day and partition."""
        import pyarrow.compute as pc

        from devtools.faults import drift_batch

        landed = 0
        for table in TABLES:
            column = PARTITION.get(table, "ingest_date")
            batch = self.con.sql(
                f"select *, cast(ingested_at as date) as _arrival from {table} "
                f"where cast(ingested_at as date) between date '{first}' and date '{last}'"
            ).to_arrow_table()
            if batch.num_rows == 0:
                continue
            for arrival in sorted(set(batch.column("_arrival").to_pylist())):
                day_rows = batch.filter(pc.equal(batch.column("_arrival"), arrival))
                day_rows = day_rows.drop_columns(["_arrival"])
                day_rows = drift_batch(table, arrival, day_rows, self.faults)
                for value in sorted(set(day_rows.column(column).to_pylist())):
                    part = day_rows.filter(pc.equal(day_rows.column(column), value))
                    self._write_file(
                        part,
                        self.lake / table / f"{column}={value}" / f"part-{arrival:%Y%m%d}.parquet",
                    )
                    landed += part.num_rows
        return landed


class Dbt:
    """dbt as a subprocess, as Dagster runs it (in process, dbt-duckdb would keep the
    warehouse file open and the rules could not read it)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.executable = str(Path(sys.executable).parent / "dbt")

    def run(self) -> None:
        completed = subprocess.run(
            [
                self.executable,
                "run",
                "--project-dir",
                str(DBT_DIR),
                "--profiles-dir",
                str(DBT_DIR),
                "--target",
                "local",
                "--target-path",
                str(self.workdir / "target"),
                "--log-path",
                str(self.workdir / "logs"),
                "--quiet",
                "--threads",
                "2",
            ],
            capture_output=True,
            text=True,
            env=os.environ.copy(),
            check=False,
        )
        if completed.returncode != 0:
            raise RuntimeError(
                f"dbt run failed: {completed.stdout[-2000:]}{completed.stderr[-2000:]}"
            )


def naive_volume_assets() -> list:
    """The same volume rules, judged the naive way (same-run baseline)."""
    from platform_assets.quality.config import ASSETS, AssetQuality

    return [
        AssetQuality(
            asset=a.asset,
            schema=None,
            volume=replace(a.volume, seasonality=None, training_days=14, min_relative_change=0.0),
        )
        for a in ASSETS.values()
        if a.volume is not None
    ]


def run_scenario(
    name: str,
    source_lake: Path,
    workdir: Path,
    days: list[date],
    faults: list,
    warmup_last: date,
    verbose: bool = False,
) -> list[DayResult]:
    from platform_assets.quality.config import ASSETS
    from platform_assets.quality.engine import QualityEngine
    from platform_assets.quality.history import DuckDBHistoryStore
    from platform_assets.quality.warehouse import DuckDBWarehouse

    lake, warehouse = workdir / "lake", workdir / "warehouse.duckdb"
    os.environ.update(DUCKDB_PATH=str(warehouse), LAKE_DIR=str(lake))
    replay = Replay(source_lake, lake, faults)
    dbt = Dbt(workdir)
    engine = QualityEngine(
        DuckDBWarehouse(warehouse, lake, lock_timeout=5),
        DuckDBHistoryStore(workdir / "monitoring.duckdb"),
        source="bench",
    )
    naive = QualityEngine(
        DuckDBWarehouse(warehouse, lake, lock_timeout=5), None, record=False, source="bench"
    )
    naive_assets = naive_volume_assets()

    started = time.monotonic()
    replay.land(date(1970, 1, 1), warmup_last)
    dbt.run()
    for asset in ASSETS.values():  # first schemas seen: the baselines
        engine.evaluate(asset, as_of=_as_of(warmup_last))
    say(
        f"  [{name}] warm-up to {warmup_last} landed and built in {time.monotonic() - started:.0f}s"
    )
    results = []
    for number, day in enumerate(days, 1):
        tick = time.monotonic()
        replay.land(day, day)
        dbt.run()
        outcome = DayResult(day)
        for asset in ASSETS.values():
            for result in engine.evaluate(asset, as_of=_as_of(day)):
                outcome.statuses[f"{result.asset}:{result.check_name}"] = result.status
                if not result.passed:
                    outcome.findings[f"{result.asset}:{result.check_name}"] = result.description
        for asset in naive_assets:
            for result in naive.evaluate(asset, as_of=_as_of(day)):
                outcome.baseline[asset.asset] = not result.passed
        results.append(outcome)
        fault_names = [f.type for f in faults if f.day == day]
        fired = sorted(k for k, s in outcome.statuses.items() if s != "pass")
        say(
            f"  [{name}] day {number:2}/{len(days)} {day} {day:%a} "
            f"{'FAULT ' + ','.join(fault_names) if fault_names else 'clean':24} "
            f"not passed: {', '.join(fired) or '-'}  ({time.monotonic() - tick:.1f}s)"
        )
        if verbose:
            for check, finding in sorted(outcome.findings.items()):
                say(f"      {check}: {finding}")
    return results


def _as_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), dtime(0, 5))


def asset_of(check: str) -> str:
    return check.split(":", 1)[0]


def false_alerts(results: Iterable[DayResult], fault_days: set[date]) -> tuple[dict, int]:
    per_asset: dict[str, list[str]] = defaultdict(list)
    clean = 0
    for outcome in results:
        if outcome.day in fault_days:
            continue
        clean += 1
        for asset in sorted({asset_of(k) for k, s in outcome.statuses.items() if s != "pass"}):
            checks = [
                k.split(":", 1)[1]
                for k, s in outcome.statuses.items()
                if s != "pass" and asset_of(k) == asset
            ]
            per_asset[asset].append(f"{outcome.day} ({', '.join(checks)})")
    return per_asset, clean


def report(
    faulty: list[DayResult] | None,
    clean: list[DayResult] | None,
    faults: list,
    all_assets: list[str],
) -> bool:
    from devtools.faults import FAULT_TYPES

    ok = True
    if faulty is not None:
        by_day = {r.day: r for r in faulty}
        say(
            "\nRecall per fault type (a fault counts as detected when one of its expected "
            "checks did not pass on the fault day)"
        )
        say(
            f"{'fault':16} {'injected':>8} {'detected':>8} {'recall':>7}  "
            f"{'naive volume':>12}  caught by"
        )
        for fault_type in FAULT_TYPES:
            instances = [f for f in faults if f.type == fault_type]
            if not instances:
                continue
            caught, checks, naive = 0, set(), 0
            for fault in instances:
                statuses = by_day[fault.day].statuses
                hit = [c for c in fault.detected_by if statuses.get(c, "pass") != "pass"]
                caught += bool(hit)
                checks |= set(hit)
                naive += any(
                    by_day[fault.day].baseline.get(asset_of(c), False) for c in fault.detected_by
                )
            recall = caught / len(instances)
            ok &= caught == len(instances)
            naive_text = f"{naive}/{len(instances)}" if fault_type.startswith("volume") else ""
            say(
                f"{fault_type:16} {len(instances):8} {caught:8} {recall:7.0%}  "
                f"{naive_text:>12}  {', '.join(sorted(checks)) or '-'}"
            )
    for label, results, fault_days in (
        ("clean scenario", clean, set()),
        ("fault-free days of the faults scenario", faulty, {f.day for f in faults}),
    ):
        if results is None:
            continue
        per_asset, clean_days = false_alerts(results, fault_days)
        naive = defaultdict(int)
        for outcome in results:
            if outcome.day not in fault_days:
                for asset, alerted in outcome.baseline.items():
                    naive[asset] += alerted
        say(
            f"\nFalse alerts on clean days: {label} ({clean_days} days; an asset counts once "
            f"per day)"
        )
        say(f"{'asset':34} {'false alerts':>12} {'naive volume':>12}  days")
        for asset in all_assets:
            count = len(per_asset.get(asset, []))
            if label == "clean scenario":
                ok &= count <= max(1, round(clean_days / 30))
            naive_text = str(naive[asset]) if asset in naive else ""
            say(f"{asset:34} {count:12} {naive_text:>12}  {'; '.join(per_asset.get(asset, []))}")
        total = sum(len(v) for v in per_asset.values())
        say(f"{'total':34} {total:12} {sum(naive.values()):12}")
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--days", type=int, default=30, help="evaluated days")
    parser.add_argument(
        "--warmup-days",
        type=int,
        default=28,
        help="days before, for baselines (28: four of each weekday)",
    )
    parser.add_argument("--sessions-per-day", type=int, default=400)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--scenario", choices=("both", "faults", "clean"), default="both")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--verbose", action="store_true", help="print every finding")
    args = parser.parse_args(argv)

    from devtools.faults import Fault
    from devtools.shop.simulator import ShopConfig
    from platform_assets.quality.config import ASSETS

    started = time.monotonic()
    config = ShopConfig(
        seed=args.seed,
        days=args.warmup_days + args.days,
        sessions_per_day=args.sessions_per_day,
        end_date=date(2026, 3, 31),
    )
    days = [config.first_day + timedelta(days=args.warmup_days + n) for n in range(args.days)]
    warmup_last = days[0] - timedelta(days=1)
    faults = [Fault(kind, days[offset]) for offset, kind in SCHEDULE if offset < len(days)]
    workdir = Path(tempfile.mkdtemp(prefix="bench-quality-"))
    say(
        f"bench.quality: shop seed {args.seed}, {args.sessions_per_day} sessions/day, "
        f"warm-up {config.first_day} .. {warmup_last}, evaluated {days[0]} .. {days[-1]}; "
        f"{len(faults)} faults; work dir {workdir}"
    )
    try:
        tick = time.monotonic()
        generate(config, workdir / "source")
        say(f"  simulated {config.days} days in {time.monotonic() - tick:.0f}s")
        faulty = clean = None
        if args.scenario in ("both", "faults"):
            faulty = run_scenario(
                "faults",
                workdir / "source",
                workdir / "faults",
                days,
                faults,
                warmup_last,
                args.verbose,
            )
        if args.scenario in ("both", "clean"):
            clean = run_scenario(
                "clean", workdir / "source", workdir / "clean", days, [], warmup_last, args.verbose
            )
        ok = report(faulty, clean, faults, list(ASSETS))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    say(
        f"\n{'Target met' if ok else 'Target NOT met'}: every injected fault detected, at most "
        f"one false alert per asset in 30 clean days. Total {time.monotonic() - started:.0f}s."
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
