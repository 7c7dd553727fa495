"""`make demo`: the platform end to end on the local default, on one machine.

The synthetic shop runs for 30 days up to now. Everything before today's midnight is the
shop's past: its events are backfilled into the raw lake, its database changes are applied to
PostgreSQL. Then the live path starts (Pub/Sub emulator, collector, Beam, CDC capture and
bridge): the CDC snapshot and today's changes stream from PostgreSQL, today's events go over
HTTP to the collector, Dagster's raw sensor sees the new raw files and refreshes staging and the
marts, the data-quality checks ride along, and a fault injected at the end shows up as a
failed check, a Slack message with its narrative and a history row.
"""

# The demo's parts, each in a module of its own next to this one: steps (the seven steps,
# each printing what it does), timeline (the simulated shop split into past and today),
# orchestrator (Dagster in-process), raw_lake (row counts, waiting for the live path), marts
# (checking and summarizing them), console (printing), quality (alerts and history).

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime

import dagster as dg

from devtools.demo.console import say
from devtools.demo.marts import print_summary
from devtools.demo.orchestrator import Orchestrator, failing_checks
from devtools.demo.steps import (
    MartCheck,
    backfill_past_events,
    build_everything,
    check_marts,
    inject_fault,
    reset_demo_data,
    send_live_traffic,
    simulate_shop,
    start_live_path,
)
from devtools.stack import LocalStack
from platform_core.settings import Settings, get_settings
from streaming.raw.writer import ParquetRawWriter


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions-per-day", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    # the demo checks every refresh it shows (deployments verify refreshes every few minutes,
    # REFRESH_CHECKS_INTERVAL_SECONDS): the injected fault fails a check in the next refresh
    os.environ.setdefault("REFRESH_CHECKS_INTERVAL_SECONDS", "0")
    get_settings.cache_clear()
    settings = get_settings()
    started = time.monotonic()
    lake = ParquetRawWriter(settings.lake_path)

    reset_demo_data(settings)
    now = datetime.now(UTC)
    timeline = simulate_shop(args.days, args.sessions_per_day, args.seed, now)
    backfill_past_events(settings, lake, timeline)
    stack = LocalStack(settings, settings.data_path / "logs", say=say)
    with stack, dg.DagsterInstance.get() as instance:
        dsn = start_live_path(stack, lake, timeline)
        dagster = Orchestrator(instance, get_settings())  # now pointing at the live stack
        build_everything(dagster, lake, timeline, now)
        send_live_traffic(stack, dagster, lake, dsn, timeline)
        marts = check_marts(settings, dagster, timeline)
        before_fault = len(dagster.results)
        inject_fault(settings, dagster, now)
    say("      live path stopped")
    return report(settings, dagster, before_fault, marts, started)


def report(
    settings: Settings,
    dagster: Orchestrator,
    before_fault: int,
    marts: MartCheck,
    started: float,
) -> int:
    """What the marts say, how the checks went before and after the fault, where to look
    next; 0 when every run succeeded, the marts and CDC agree with the database, nothing
    failed critically before the fault and something did after it. Warnings before the fault
    are printed, not fatal: they are "worth a look", and synthetic data has its days."""
    say("\nWhat the marts say")
    print_summary(str(settings.warehouse_path))
    unexpected = failing_checks(dagster.results[:before_fault])
    critical = failing_checks(dagster.results[:before_fault], dg.AssetCheckSeverity.ERROR)
    injected = failing_checks(dagster.results[before_fault:])
    evaluations = sum(len(r.get_asset_check_evaluations()) for r in dagster.results)
    say(
        f"\nAsset checks: {evaluations} evaluations. Before the fault: "
        + (", ".join(unexpected) if unexpected else "all passed")
        + (f" ({len(critical)} critical)" if critical else " (none critical)" if unexpected else "")
        + ". After it: "
        + (", ".join(injected) if injected else "nothing failed (unexpected)")
    )
    say(f"\nDone in {time.monotonic() - started:.0f}s.")
    say(f"  Warehouse (DuckDB): {settings.warehouse_path}")
    say(f"  Raw lake (Parquet): {settings.lake_path}")
    say(
        f"  Quality history:    {settings.data_path / 'monitoring.duckdb'} "
        f"(uv run python -m platform_assets.quality history --failed)"
    )
    say(
        f"  Dagster UI:         `make ui`, then {settings.dagster_ui_url} "
        f"(runs stored in {os.environ.get('DAGSTER_HOME')})"
    )
    ok = (
        all(r.success for r in dagster.results)
        and not marts.differences
        and not critical
        and all(e.passed for e in marts.reconciliation)
        and bool(injected)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
