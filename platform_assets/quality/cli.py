"""`python -m platform_assets.quality`: the data-quality rules for on-call, from a shell.

    check    run the rules of one asset, several or all (table or --json); exit 1 when a
             blocking check fails (--fail-on error|warn widens that)
    list     the monitored assets and their checks
    history  recent rows of monitoring.data_quality_checks
    trends   the quality_trends view (per asset and day)
    constraints  the source database's constraints the validity rules use (the snapshot);
             --refresh reads them from the database (SOURCE_DB_DSN) after a migration

`check` reads the warehouse of the current settings (DuckDB + lake locally, BigQuery with
PLATFORM_ENV=gcp). It does not write history and does not move the stored schema baseline
unless `--record` is given, so running it never hides a change from the scheduled checks.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from platform_assets.genai.quality_agent import QualityNarrator
from platform_assets.quality.engine import QualityEngine, parse_as_of
from platform_assets.quality.history import history_for
from platform_assets.quality.monitors import select_assets
from platform_assets.quality.results import CheckResult, fmt, jsonable
from platform_assets.quality.source_constraints import (
    SNAPSHOT,
    load_snapshot,
    read_catalog,
    save_snapshot,
)
from platform_assets.quality.warehouse import warehouse_for
from platform_core.settings import get_settings, resolve_source_db_dsn

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STATUS_MARK = {"pass": "ok", "warn": "WARN", "fail": "FAIL", "error": "ERROR"}


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    cells = [list(headers)] + [list(r) for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _plain(value: Any) -> str:
    return fmt(value) if isinstance(value, float) else str(value)  # ids without separators


def render_results(results: Sequence[CheckResult]) -> str:
    rows = [
        (
            STATUS_MARK[r.status],
            r.asset,
            r.check_name,
            r.metric,
            "n/a" if r.value is None else fmt(r.value),
            r.expected,
            "" if r.passed else r.severity_label,
            "yes" if r.blocking else "",
        )
        for r in results
    ]
    out = [
        _table(
            rows,
            ("status", "asset", "check", "metric", "value", "expected", "severity", "blocking"),
        )
    ]
    problems = [r for r in results if not r.passed]
    if problems:
        out.append("")
        for r in problems:
            out.append(f"{STATUS_MARK[r.status]} {r.asset} {r.check_name}: {r.description}")
            for row in r.sample[:3]:
                out.append("    " + ", ".join(f"{k}={_plain(v)}" for k, v in row.items()))
            if r.narrative:
                out.append(f"    narrative ({r.narrator}): {r.narrative.get('summary', '')}")
                for i, cause in enumerate(r.narrative.get("likely_causes", [])[:3], 1):
                    out.append(f"      {i}. {cause.get('cause', '')}")
    passed = sum(r.passed for r in results)
    out.append(
        f"\n{len(results)} checks: {passed} passed, {len(results) - passed} not passed "
        f"({sum(r.status == 'fail' for r in results)} critical, "
        f"{sum(r.status == 'warn' for r in results)} warnings, "
        f"{sum(r.status == 'error' for r in results)} not evaluated)"
    )
    return "\n".join(out)


def exit_code(results: Sequence[CheckResult], fail_on: str) -> int:
    def counts(r: CheckResult) -> bool:
        if r.passed:
            return False
        if fail_on == "warn":
            return True
        if fail_on == "error":
            return r.status == "fail"
        return r.status == "fail" and r.blocking

    return EXIT_FAILED if any(counts(r) for r in results) else EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        assets = select_assets(args.asset)
    except KeyError as error:
        print(error.args[0], file=sys.stderr)
        return EXIT_USAGE
    engine = QualityEngine(
        warehouse_for(settings, lock_timeout=args.lock_timeout),
        history_for(settings),
        narrator=QualityNarrator.from_settings(settings) if args.explain else None,
        record=args.record,
        source="cli",
    )
    as_of = parse_as_of(args.as_of)
    if args.check:
        results = [r for a in assets for r in engine.evaluate(a, checks=args.check, as_of=as_of)]
    else:
        results = engine.evaluate_many(assets, as_of=as_of)
    if args.json:
        print(json.dumps([r.to_dict() for r in results], indent=2))
    else:
        print(render_results(results))
    return exit_code(results, args.fail_on)


def cmd_list(args: argparse.Namespace) -> int:
    rows = []
    for asset in select_assets(args.asset):
        for rule in asset.rules:
            rows.append(
                (
                    asset.asset,
                    rule.check_name,
                    type(rule).__name__,
                    getattr(rule, "severity", "error/warn"),
                    "yes" if rule.blocking else "",
                )
            )
    print(_table(rows, ("asset", "check", "rule", "severity", "blocking")))
    return EXIT_OK


def _print_rows(rows: list[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    if as_json:
        print(json.dumps(jsonable(rows), indent=2))
        return
    print(
        _table(
            [
                [fmt(r.get(c)) if not isinstance(r.get(c), str) else r.get(c, "") for c in columns]
                for r in rows
            ],
            columns,
        )
    )


def cmd_history(args: argparse.Namespace) -> int:
    rows = history_for(get_settings()).rows(
        asset=args.asset, limit=args.limit, failed_only=args.failed
    )
    _print_rows(
        rows,
        args.json,
        ("evaluated_at", "asset", "check_name", "status", "metric", "value", "narrator"),
    )
    return EXIT_OK


def cmd_constraints(args: argparse.Namespace) -> int:
    if args.refresh:
        dsn = resolve_source_db_dsn(get_settings(), args.dsn)
        save_snapshot(read_catalog(dsn))
        print(f"{SNAPSHOT} refreshed from the database's catalog", file=sys.stderr)
    rows = [
        (table, c["name"], c["kind"], c.get("definition") or c["expression"])
        for table, entry in load_snapshot()["tables"].items()
        for c in entry["constraints"]
    ]
    print(_table(rows, ("table", "constraint", "kind", "definition")))
    return EXIT_OK


def cmd_trends(args: argparse.Namespace) -> int:
    store = history_for(get_settings())
    if not hasattr(store, "trends"):
        print("trends: query the monitoring.quality_trends view in BigQuery", file=sys.stderr)
        return EXIT_USAGE
    _print_rows(
        store.trends(args.asset),
        args.json,
        ("asset", "day", "evaluations", "failures", "critical_failures", "warnings", "pass_rate"),
    )
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m platform_assets.quality",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="run the rules against the configured warehouse")
    check.add_argument(
        "--asset",
        action="append",
        metavar="KEY",
        help="asset key (raw/events, staging/stg_orders, mart/*); repeatable; default: every asset",
    )
    check.add_argument(
        "--check",
        action="append",
        metavar="NAME",
        help="only these checks (e.g. volume_anomaly); repeatable",
    )
    check.add_argument("--json", action="store_true", help="print the results as JSON")
    check.add_argument(
        "--as-of", metavar="TIMESTAMP", help="judge the data as of this UTC time (default: now)"
    )
    check.add_argument(
        "--record",
        action="store_true",
        help="store the results in the history (and move the schema baseline)",
    )
    check.add_argument(
        "--explain",
        action="store_true",
        help="narrate failures (LLM_PROVIDER; deterministic locally)",
    )
    check.add_argument(
        "--fail-on",
        choices=("blocking", "error", "warn"),
        default="blocking",
        help="which failures give exit code 1 (default: failed blocking checks)",
    )
    check.add_argument(
        "--lock-timeout",
        type=float,
        default=60.0,
        help="seconds to wait while dbt holds the DuckDB warehouse",
    )
    check.set_defaults(func=cmd_check)
    lst = sub.add_parser("list", help="the configured assets and checks")
    lst.add_argument("--asset", action="append", metavar="KEY")
    lst.set_defaults(func=cmd_list)
    history = sub.add_parser("history", help="recent rows of monitoring.data_quality_checks")
    history.add_argument("--asset", metavar="KEY")
    history.add_argument("--limit", type=int, default=30)
    history.add_argument("--failed", action="store_true", help="only rows that did not pass")
    history.add_argument("--json", action="store_true")
    history.set_defaults(func=cmd_history)
    trends = sub.add_parser("trends", help="the monitoring.quality_trends view")
    trends.add_argument("--asset", metavar="KEY")
    trends.add_argument("--json", action="store_true")
    trends.set_defaults(func=cmd_trends)
    constraints = sub.add_parser("constraints", help="the source database's constraints")
    constraints.add_argument(
        "--refresh", action="store_true", help="read them from the database's catalog"
    )
    constraints.add_argument("--dsn", help="the database (default: SOURCE_DB_DSN)")
    constraints.set_defaults(func=cmd_constraints)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.func(args)
