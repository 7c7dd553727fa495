"""The demo's steps, in the order `make demo` runs them; each prints what it does and what
it saw."""

from __future__ import annotations

import html
import os
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dagster as dg
import psycopg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from devtools.demo.console import say
from devtools.demo.marts import expected_sales, verify_marts
from devtools.demo.orchestrator import Orchestrator
from devtools.demo.quality import deliver_alerts_once, failed_history_rows
from devtools.demo.raw_lake import drained, raw_counts, wait_until
from devtools.demo.timeline import ShopTimeline, shop_config, simulate
from devtools.faults import inject_orphaned_order_items
from devtools.shop.load import RawLoader
from devtools.shop.replay import send_to_collector
from devtools.shop.simulator import Transaction
from devtools.sourcedb.driver import ShopDriver
from devtools.stack import LocalStack
from platform_core.raw.schema import CDC_TABLES
from platform_core.settings import Settings, get_settings
from streaming.raw.writer import ParquetRawWriter


def reset_demo_data(settings: Settings) -> None:
    say(f"[1/7] Resetting the local demo data under {settings.data_path}")
    for path in (
        settings.lake_path,
        settings.data_path / "sourcedb",
        settings.data_path / "logs",
        settings.data_path / "spool",
    ):
        shutil.rmtree(path, ignore_errors=True)
    for path in (
        settings.warehouse_path,
        settings.data_path / "monitoring.duckdb",
        settings.data_path / "slack_payloads.jsonl",
    ):
        path.unlink(missing_ok=True)
    settings.data_path.mkdir(parents=True, exist_ok=True)


def simulate_shop(days: int, sessions_per_day: int, seed: int, now: datetime) -> ShopTimeline:
    config = shop_config(days, sessions_per_day, seed, now)
    say(f"[2/7] Simulating the shop from {config.first_day} until now ({now:%H:%M} UTC)")
    timeline = simulate(config, now)
    say(
        f"      past: {len(timeline.past_events):,} events, "
        f"{len(timeline.past_changes):,} transactions; "
        f"today so far: {len(timeline.live_events):,} events, "
        f"{len(timeline.live_changes):,} transactions"
    )
    return timeline


def backfill_past_events(
    settings: Settings, lake: ParquetRawWriter, timeline: ShopTimeline
) -> None:
    say(f"[3/7] Backfilling the past events into the raw lake ({settings.lake_path})")
    loader = RawLoader(lake)
    for delivery in timeline.past_events:
        loader.add(delivery)
    loader.flush()


def start_live_path(stack: LocalStack, lake: ParquetRawWriter, timeline: ShopTimeline) -> str:
    """Start the services, give the shop's database its past, start CDC and wait for its
    snapshot to reach raw; returns the database's DSN."""
    say("[4/7] Starting the live path (logs in data/logs)")
    stack.start_transport()
    assert stack.postgres is not None
    dsn = stack.postgres.dsn()
    # from here on, the settings (and the code location, loaded later) use this stack
    os.environ.update(SOURCE_DB_DSN=dsn, KAFKA_BOOTSTRAP_SERVERS=stack.kafka.address)
    get_settings.cache_clear()
    db_rows = load_source_database(dsn, timeline)
    say(
        "      the shop's database holds its past: "
        + ", ".join(f"{n:,} {t}" for t, n in db_rows.items())
    )
    stack.start_cdc()
    wait_until(
        lambda: all(raw_counts(lake)[f"cdc_{t}"] >= n for t, n in db_rows.items()),
        "the CDC snapshot to reach raw",
        300,
        stack,
    )
    say("      CDC snapshot landed in raw through Kafka, Pub/Sub and Beam")
    return dsn


def load_source_database(dsn: str, timeline: ShopTimeline) -> dict[str, int]:
    """The snapshot and the past changes, applied; returns the rows per table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        driver = ShopDriver(conn)
        driver.load_snapshot(timeline.snapshot)
        for tx in timeline.past_changes:
            driver.apply(tx)
        with conn.cursor() as cur:
            return {t: cur.execute(f"select count(*) from {t}").fetchone()[0] for t in CDC_TABLES}


def build_everything(
    dagster: Orchestrator, lake: ParquetRawWriter, timeline: ShopTimeline, now: datetime
) -> None:
    """Report what raw holds, build every asset over the past days, and let the raw sensor
    take stock of what is already there."""
    first_day = timeline.config.first_day - timedelta(days=1)
    last_day = now.date() - timedelta(days=1)
    say(f"      Dagster: initial build of every asset, event days {first_day} .. {last_day}")
    for table, rows in raw_counts(lake).items():
        dagster.instance.report_runless_asset_event(
            dg.AssetMaterialization(
                asset_key=dg.AssetKey(["raw", table]),
                metadata={"dagster/row_count": dg.MetadataValue.int(rows)},
                description="backfill and CDC snapshot",
            )
        )
    build = dagster.run(
        selection=dagster.location.dbt_assets,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: first_day.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: last_day.isoformat(),
        },
    )
    say(
        f"      run {build.run_id[:8]}: {'succeeded' if build.success else 'FAILED'}, "
        f"{len(build.get_asset_materialization_events())} materializations"
    )
    dagster.tick()  # the raw sensor takes stock of what is already there


def send_live_traffic(
    stack: LocalStack,
    dagster: Orchestrator,
    lake: ParquetRawWriter,
    dsn: str,
    timeline: ShopTimeline,
) -> None:
    """Today's changes into PostgreSQL and today's events to the collector; wait until raw
    has them all, and let the raw sensor refresh what is downstream."""
    live_events, live_changes = timeline.live_events, timeline.live_changes
    say(
        f"[5/7] Live traffic: {len(live_changes):,} transactions into PostgreSQL, "
        f"{len(live_events):,} events over HTTP to the collector"
    )
    before = raw_counts(lake)
    apply_changes(dsn, live_changes)
    sent = send_to_collector(live_events, stack.collector_url, progress=lambda m: say(f"      {m}"))
    say(
        f"      collector answered 200 for {sent.accepted:,} events "
        f"({sent.rejected} rejected) in {sent.requests} requests"
    )
    live_cdc = Counter(f"cdc_{c.table}" for tx in live_changes for c in tx.changes)
    wait_until(
        lambda: drained(lake, before, len(live_events), live_cdc),
        "the live events and changes to reach raw",
        300,
        stack,
    )
    say("      every event and change is readable in raw")
    runs = dagster.refresh_until_quiet()
    say(f"      the raw sensor requested {runs} refresh run(s)")


def apply_changes(dsn: str, changes: list[Transaction]) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        driver = ShopDriver(conn)
        for tx in changes:
            driver.apply(tx)


@dataclass(frozen=True)
class MartCheck:
    differences: list[str]  # days where mart_daily_sales and the database disagree
    reconciliation: list[dg.AssetCheckEvaluation]  # per CDC table


def check_marts(settings: Settings, dagster: Orchestrator, timeline: ShopTimeline) -> MartCheck:
    say("[6/7] Checking the marts against the shop's database")
    shop = timeline.shop
    differences = verify_marts(str(settings.warehouse_path), shop)
    if differences:
        say("      MISMATCH in mart_daily_sales:\n        " + "\n        ".join(differences))
    else:
        say(
            f"      mart_daily_sales equals the database on every day "
            f"({len(expected_sales(shop))} days of orders and refunds)"
        )
    reconciliation = dagster.run(selection=dagster.location.reconciliation)
    rec = reconciliation.get_asset_check_evaluations()
    say(
        f"      CDC reconciliation: {sum(e.passed for e in rec)}/{len(rec)} tables equal "
        f"PostgreSQL (row counts and checksums)"
    )
    return MartCheck(differences, rec)


def inject_fault(settings: Settings, dagster: Orchestrator, now: datetime) -> None:
    """Order lines pointing at a product that does not exist: the checks fail, Slack hears
    of it with a narrative, and the history keeps the failure."""
    say(
        "[7/7] Data quality: injecting a fault (order lines pointing at a product that "
        "does not exist)"
    )
    changed = inject_orphaned_order_items(settings.lake_path, now.date(), share=0.1, ops=("c", "r"))
    say(f"      {changed} order lines rewritten in raw.cdc_order_items")
    dagster.refresh_until_quiet()
    payloads, where = deliver_alerts_once(dagster.instance, dagster.defs)
    say(f"      Slack: {len(payloads)} message(s) to {where}")
    for payload in payloads:
        # Slack escapes &, < and > in mrkdwn; the console shows the text as Slack would
        say(f"        {html.unescape(payload.get('text', ''))[:150]}")
        say(f"          {html.unescape(_narrative(payload))[:160]}")
    for row in failed_history_rows(limit=5):
        say(
            f"      history: {row['asset']} {row['check_name']} {row['status']} "
            f"(narrator: {row['narrator']})"
        )


def _narrative(payload: dict[str, Any]) -> str:
    """The first line of the narrative section of a Slack Block Kit payload."""
    for block in payload.get("blocks", []):
        text = (block.get("text") or {}).get("text", "")
        if text.startswith("*Narrative*"):
            return text.split("\n")[1]
    return ""
