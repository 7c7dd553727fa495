"""Run the SQL optimizer benchmark (see `bench/sql_optimizer/__init__.py`)."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import sqlglot

from bench.sql_optimizer.queries import QUERIES

ROOT = Path(__file__).resolve().parents[2]
DBT_DIR = ROOT / "dbt_project"
END = date(2026, 11, 20)


def build_shop(data_dir: Path, *, seed: int, days: int, sessions: int) -> Path:
    """Land a synthetic shop in `data_dir/lake` and build its warehouse with dbt."""
    from devtools.shop.load import load_shop
    from devtools.shop.simulator import ShopConfig
    from streaming.raw.writer import ParquetRawWriter

    config = ShopConfig(
        days=days,
        sessions_per_day=sessions,
        products=80,
        initial_users=400,
        end_date=END,
        seed=seed,
    )
    load_shop(ParquetRawWriter(data_dir / "lake"), config)
    env = {
        **os.environ,
        "DUCKDB_PATH": str(data_dir / "warehouse.duckdb"),
        "LAKE_DIR": str(data_dir / "lake"),
    }
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"), "run", "--target", "local", "--quiet",
            "--project-dir", str(DBT_DIR), "--profiles-dir", str(DBT_DIR),
            "--target-path", str(data_dir / "target"), "--log-path", str(data_dir / "logs"),
        ],
        check=True,
        env=env,
    )  # fmt: skip
    return data_dir


class IndependentRunner:
    """Runs BigQuery SQL on a shop without the optimizer's code: views named like BigQuery's
    datasets over the warehouse file and the lake, sqlglot's plain transpilation, and a
    multiset comparison in SQL (EXCEPT ALL both ways)."""

    def __init__(self, data_dir: Path) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute(f"ATTACH '{data_dir / 'warehouse.duckdb'}' AS shop (READ_ONLY)")
        self.con.execute("SET TimeZone = 'UTC'")
        tables = self.con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_catalog = 'shop'"
        ).fetchall()
        for schema in sorted({s for s, _ in tables} | {"raw"}):
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS memory.{schema}")
        for schema, name in tables:
            self.con.execute(f"CREATE VIEW memory.{schema}.{name} AS FROM shop.{schema}.{name}")
        for folder in sorted((data_dir / "lake").iterdir()):
            if any(folder.glob("**/*.parquet")):
                self.con.execute(
                    f"CREATE VIEW memory.raw.{folder.name} AS FROM read_parquet("
                    f"'{folder}/**/*.parquet', union_by_name = true, hive_partitioning = false)"
                )
        self.con.execute("USE memory")

    def rows_differ(self, original: str, rewrite: str) -> int:
        a, b = (
            sqlglot.transpile(q, read="bigquery", write="duckdb")[0] for q in (original, rewrite)
        )
        [(count,)] = self.con.execute(
            f"select (select count(*) from (({a}) except all ({b}))) "
            f"+ (select count(*) from (({b}) except all ({a})))"
        ).fetchall()
        return int(count)

    def close(self) -> None:
        self.con.close()


def human(value: int | None) -> str:
    from platform_assets.genai.sql_optimizer.report import human_bytes

    return human_bytes(value)


def optimize_all(data_dir: Path, work: Path) -> tuple[list[Any], list[float]]:
    from platform_assets.genai.sql_optimizer.dbt_render import render_bigquery
    from platform_assets.genai.sql_optimizer.optimizer import build_optimizer
    from platform_core.settings import get_settings

    os.environ.update(
        DATA_DIR=str(data_dir),
        LAKE_DIR=str(data_dir / "lake"),
        DUCKDB_PATH=str(data_dir / "warehouse.duckdb"),
    )
    get_settings.cache_clear()
    settings = get_settings()
    import json

    manifest = json.loads(render_bigquery(settings, work / "bigquery").read_text())
    optimizer = build_optimizer(settings, manifest=manifest)
    reports, seconds = [], []
    for name, sql in QUERIES:
        started = time.perf_counter()
        reports.append(optimizer.optimize(sql, name))
        seconds.append(time.perf_counter() - started)
    return reports, seconds


def print_reports(reports: list[Any], seconds: list[float]) -> None:
    print(f"\n{'query':36} {'findings':44} {'bytes before -> after':26} rewrite")
    for report, took in zip(reports, seconds, strict=True):
        rules = ",".join(sorted({f.rule for f in report.findings})) or "-"
        rewrite = "-"
        if report.rewrite:
            rewrite = (
                "verified " if report.rewrite.verified else "unverified "
            ) + report.rewrite.source
        after = human(report.bytes_after) if report.bytes_after is not None else "-"
        cost = f"{human(report.bytes_before)} -> {after}"
        print(f"{report.query:36} {rules[:44]:44} {cost:26} {rewrite} ({took * 1000:.0f} ms)")


def print_summary(reports: list[Any]) -> None:
    per_rule = Counter(f.rule for r in reports for f in r.findings)
    queries_per_rule = Counter(rule for r in reports for rule in {f.rule for f in r.findings})
    print("\nfindings per rule (findings / queries):")
    from platform_assets.genai.sql_optimizer.rules import RULE_IDS

    for rule in RULE_IDS:
        print(f"  {rule:32} {per_rule[rule]:3} / {queries_per_rule[rule]}")
    before = sum(r.bytes_before or 0 for r in reports)
    saved = sum(r.saved_bytes for r in reports)
    rewrites = [r for r in reports if r.rewrite]
    verified = [r for r in rewrites if r.rewrite.verified]
    touched = sum(r.bytes_before or 0 for r in verified)
    print(
        f"\nqueries: {len(reports)}, with findings: {sum(1 for r in reports if r.findings)}, "
        f"refused: {sum(1 for r in reports if r.refused)}, not analysed: "
        f"{sum(1 for r in reports if r.reason and not r.refused)}"
    )
    sources = Counter(r.rewrite.source for r in rewrites)
    print(
        f"rewrites proposed: {len(rewrites)} (rule {sources['rule']}, llm {sources['llm']}); "
        f"verified: {len(verified)} "
        f"({(len(verified) / len(rewrites) * 100) if rewrites else 0:.0f}% of proposed)"
    )
    print(
        f"estimated bytes, baseline (queries as written): {human(before)}; after verified "
        f"rewrites: {human(before - saved)} (saved {human(saved)}, "
        f"{saved / before * 100 if before else 0:.1f}% overall, "
        f"{saved / touched * 100 if touched else 0:.1f}% on the {len(verified)} rewritten queries)"
    )


def recheck(reports: list[Any], shops: list[tuple[str, Path]]) -> int:
    verified = [
        (r.query, dict(QUERIES)[r.query], r.rewrite.sql)
        for r in reports
        if r.rewrite and r.rewrite.verified
    ]
    differing = 0
    print(f"\nindependent re-execution of the {len(verified)} verified rewrites:")
    for label, data_dir in shops:
        runner = IndependentRunner(data_dir)
        try:
            bad = [
                name
                for name, original, rewrite in verified
                if runner.rows_differ(original, rewrite)
            ]
        finally:
            runner.close()
        differing += len(bad)
        print(f"  {label}: {len(verified) - len(bad)} same rows, {len(bad)} differ {bad or ''}")
    return differing


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.sql_optimizer")
    parser.add_argument("--days", type=int, default=21)
    parser.add_argument("--sessions", type=int, default=300, help="sessions per day")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--recheck-seed", type=int, default=12, help="the second shop's seed")
    parser.add_argument("--keep", action="store_true", help="keep the shops' directories")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sql-optimizer-"))
    try:
        started = time.perf_counter()
        primary = build_shop(
            work / "primary", seed=args.seed, days=args.days, sessions=args.sessions
        )
        second = build_shop(
            work / "second", seed=args.recheck_seed, days=args.days, sessions=args.sessions
        )
        print(
            f"SQL optimizer benchmark: {len(QUERIES)} analyst queries; shops of {args.days} days "
            f"to {END}, {args.sessions} sessions/day, seeds {args.seed} and {args.recheck_seed} "
            f"(built in {time.perf_counter() - started:.0f} s)"
        )
        reports, seconds = optimize_all(primary, work)
        print_reports(reports, seconds)
        print_summary(reports)
        differing = recheck(
            reports,
            [
                (f"same shop (seed {args.seed})", primary),
                (f"other shop (seed {args.recheck_seed})", second),
            ],
        )
        print(f"\nverified rewrites returning different rows: {differing} (target 0)")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
