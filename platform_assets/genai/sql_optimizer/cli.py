"""`sql-optimizer`: findings, cost and verified rewrites for BigQuery SQL.

    sql-optimizer optimize FILE|- [--json]   one query (a file, or stdin with -)
    sql-optimizer audit [--json] [--select NAME ...] [--no-render]
                                             every dbt model and analysis (compiled for BigQuery)

Exit codes: 0 done (findings are advice, not failures); 1 the query does not resolve
against the warehouse schema or dbt could not compile; 2 refused: not a single read-only
query (DML, DDL, MERGE, scripting, EXPORT, CALL, several statements, unparseable).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from platform_assets.genai.sql_optimizer.audit import audit, summarize
from platform_assets.genai.sql_optimizer.dbt_render import RenderError, load_manifest
from platform_assets.genai.sql_optimizer.optimizer import build_optimizer
from platform_assets.genai.sql_optimizer.report import QueryReport, render_text
from platform_assets.genai.sql_optimizer.safety import Refused, parse_read_only
from platform_core.settings import get_settings

EXIT_OK, EXIT_ERROR, EXIT_REFUSED = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sql-optimizer", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    optimize = commands.add_parser("optimize", help="analyse one query")
    optimize.add_argument("file", help="a .sql file, or - for stdin")
    optimize.add_argument("--json", action="store_true", help="one JSON object")
    audit = commands.add_parser("audit", help="every dbt model and analysis")
    audit.add_argument("--json", action="store_true", help="one JSON object per query")
    audit.add_argument("--select", nargs="*", default=[], help="only these models/analyses")
    audit.add_argument(
        "--no-render", action="store_true", help="reuse the last BigQuery rendering of the project"
    )
    return parser


def _read(source: str) -> str:
    if source == "-":
        return sys.stdin.read()
    with open(source, encoding="utf-8") as handle:
        return handle.read()


def _emit(reports: list[Any], as_json: bool) -> None:
    for report in reports:
        print(json.dumps(report.to_json()) if as_json else render_text(report) + "\n")


def run_optimize(args: argparse.Namespace, settings: Any) -> int:
    sql = _read(args.file)
    name = "stdin" if args.file == "-" else args.file
    try:
        parse_read_only(sql)  # refuse before compiling or opening anything
    except Refused as refused:
        _emit([QueryReport(query=name, refused=True, reason=refused.reason)], args.json)
        return EXIT_REFUSED
    report = build_optimizer(settings).optimize(sql, name)
    _emit([report], args.json)
    return EXIT_ERROR if report.reason else EXIT_OK


def run_audit(args: argparse.Namespace, settings: Any) -> int:
    manifest = load_manifest(settings, refresh=not args.no_render)
    reports = audit(build_optimizer(settings, manifest=manifest), manifest, args.select)
    _emit(reports, args.json)
    if not args.json:
        print(summarize(reports).text())
    return EXIT_ERROR if any(r.reason for r in reports) else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "optimize":
            return run_optimize(args, get_settings())
        return run_audit(args, get_settings())
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
