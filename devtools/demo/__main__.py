"""`make demo`: the platform end to end on the local default, on one machine.

The synthetic shop runs for 30 days up to now. Everything before today's midnight is the
shop's past: its events are backfilled into the raw lake, its database changes are applied to
PostgreSQL. Then the live path starts (Pub/Sub emulator, collector, Beam, CDC capture and
bridge): the CDC snapshot and today's changes stream from PostgreSQL, today's events go over
HTTP to the collector, Dagster's raw sensor sees the new raw files and refreshes staging and the
marts, the data-quality checks ride along, and a fault injected at the end shows up as a
failed check, a Slack message with its narrative and a history row.
"""

import argparse
import contextlib
import html
import os
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from decimal import Decimal

import dagster as dg
import duckdb
import psycopg
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from devtools.shop.load import RawLoader
from devtools.shop.replay import send_to_collector
from devtools.shop.simulator import (
    PAID_STATUSES,
    Delivery,
    ShopConfig,
    Snapshot,
    SyntheticShop,
    Transaction,
)
from devtools.stack import LocalStack
from platform_core.raw.schema import CDC_TABLES, RAW_TABLES
from platform_core.settings import Settings, get_settings
from streaming.raw.writer import ParquetRawWriter


def say(message: str) -> None:
    print(message, flush=True)


def raw_counts(lake: ParquetRawWriter) -> dict[str, int]:
    with duckdb.connect() as con:
        return {
            table: con.execute(
                f"select count(*) from read_parquet('{lake.glob(table)}', union_by_name=true)"
            ).fetchone()[0]
            for table in RAW_TABLES
        }


def wait_until(condition: Callable[[], bool], what: str, timeout: float, stack: LocalStack) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1)


class Orchestrator:
    """Dagster, driven in-process: the raw sensor's ticks and the runs they request, stored in
    the instance under DAGSTER_HOME so `make ui` shows them."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        from platform_assets.definitions import defs, platform_assets
        from platform_assets.quality.checks import quality_asset_checks
        from platform_assets.raw.sensors import SENSOR_NAME

        self.instance = instance
        self.defs = defs
        from platform_assets.reconciliation.checks import reconciliation_checks

        self.assets = [*platform_assets(), *quality_asset_checks(), *reconciliation_checks()]
        self.sensor = defs.resolve_sensor_def(SENSOR_NAME)
        self.cursor: str | None = None
        self.results: list[dg.ExecuteInProcessResult] = []

    def run(self, *, selection=None, partition_key=None, tags=None, quiet=True):
        # dbt's own progress goes to a log file; the demo prints one line per run
        log_path = get_settings().data_path / "logs" / "dagster-runs.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log, contextlib.redirect_stdout(log):
            return self._run(selection, partition_key, tags, quiet)

    def _run(self, selection, partition_key, tags, quiet) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            self.assets,
            instance=self.instance,
            resources=self.defs.resources,
            selection=selection,
            partition_key=partition_key,
            tags={"launched_by": "make demo", **(tags or {})},
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
            if quiet
            else None,
        )
        self.results.append(result)
        return result

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs
        )
        result = self.sensor(context)
        self.cursor = result.cursor or self.cursor
        for event in result.asset_events or []:
            self.instance.report_runless_asset_event(event)
        return result

    def refresh_until_quiet(self, max_ticks: int = 6) -> int:
        """Tick the sensor and run what it asks for until it asks for nothing more."""
        runs = 0
        for _ in range(max_ticks):
            result = self.tick()
            requests = list(result.run_requests or [])
            reported = [e.asset_key.to_user_string() for e in result.asset_events or []]
            if not requests and not reported:
                return runs
            if reported:
                say(f"      sensor: new data in {', '.join(reported)}")
            for request in requests:
                keys = sorted(k.to_user_string() for k in request.asset_selection or [])
                what = request.partition_key or "whole tables"
                say(f"      sensor -> run: {len(keys)} assets ({what})")
                selection = dg.AssetSelection.assets(*request.asset_selection).without_checks()
                if request.asset_check_keys:
                    selection |= dg.AssetSelection.checks(*request.asset_check_keys)
                result = self.run(
                    selection=selection, partition_key=request.partition_key, tags=request.tags
                )
                runs += 1
                say(
                    f"      run {result.run_id[:8]}: "
                    f"{'succeeded' if result.success else 'FAILED'}, "
                    f"{len(result.get_asset_materialization_events())} materializations, "
                    f"{len(result.get_asset_check_evaluations())} checks"
                )
        return runs


def expected_sales(shop: SyntheticShop) -> dict[date, tuple[int, Decimal, Decimal]]:
    """Daily orders, gross revenue and refunds straight from the simulated database."""
    count: Counter[date] = Counter()
    gross: dict[date, Decimal] = defaultdict(Decimal)
    refunds: dict[date, Decimal] = defaultdict(Decimal)
    for order in shop.rows("orders"):
        if order["status"] in PAID_STATUSES:
            count[order["created_at"].date()] += 1
            gross[order["created_at"].date()] += order["total_amount"]
        if order["refunded_at"] is not None:
            refunds[order["refunded_at"].date()] += order["total_amount"]
    days = set(count) | set(refunds)
    return {d: (count[d], gross[d], refunds[d]) for d in days}


def verify_marts(warehouse: str, shop: SyntheticShop) -> list[str]:
    """Compare mart_daily_sales with the simulated database; returns the differing days."""
    expected = expected_sales(shop)
    with duckdb.connect(warehouse, read_only=True) as con:
        got = {
            r[0]: (r[1], Decimal(r[2] or 0), Decimal(r[3] or 0))
            for r in con.execute(
                "select sales_date, orders, gross_revenue, refunds from mart.mart_daily_sales"
            ).fetchall()
        }
    return [
        f"{d}: mart {got.get(d)} != database {v}"
        for d, v in sorted(expected.items())
        if got.get(d) != v
    ]


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [
        [
            f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
            for v in row
        ]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join("      " + line for line in lines)


def print_summary(warehouse: str) -> None:
    with duckdb.connect(warehouse, read_only=True) as con:

        def q(sql: str) -> list[tuple]:
            return [
                tuple(float(v) if isinstance(v, Decimal) else v for v in row)
                for row in con.execute(sql).fetchall()
            ]

        say("\n  Revenue by day (last 10 days, mart.mart_daily_sales)")
        say(
            _table(
                q("""
            select sales_date, orders, gross_revenue, refunds, net_revenue, average_order_value
            from mart.mart_daily_sales order by sales_date desc limit 10"""),
                ["day", "orders", "gross", "refunds", "net", "AOV"],
            )
        )
        say("\n  Conversion funnel by device (mart.mart_conversion_funnel)")
        say(
            _table(
                q("""
            select device_type, sum(sessions), sum(product_view_sessions),
                   sum(add_to_cart_sessions), sum(checkout_sessions), sum(order_sessions),
                   round(100.0 * sum(order_sessions) / sum(sessions), 2)
            from mart.mart_conversion_funnel group by 1 order by 2 desc"""),
                ["device", "sessions", "viewed", "added", "checkout", "ordered", "conv %"],
            )
        )
        say("\n  Top products by revenue (mart.mart_product_performance)")
        say(
            _table(
                q("""
            select name, category, views, add_to_carts, units_sold, revenue
            from mart.mart_product_performance order by revenue desc nulls last limit 8"""),
                ["product", "category", "views", "adds", "units", "revenue"],
            )
        )


def reset(settings: Settings) -> None:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.demo", description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions-per-day", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    settings = get_settings()
    started = time.monotonic()
    lake = ParquetRawWriter(settings.lake_path)

    say(f"[1/7] Resetting the local demo data under {settings.data_path}")
    reset(settings)

    now = datetime.now(UTC)
    midnight = datetime.combine(now.date(), clock(), tzinfo=UTC)
    config = ShopConfig(
        seed=args.seed,
        days=args.days + 1,
        end_date=now.date(),
        sessions_per_day=args.sessions_per_day,
        stop_at=now,
    )
    say(f"[2/7] Simulating the shop from {config.first_day} until now ({now:%H:%M} UTC)")
    shop = SyntheticShop(
        config,
        progress=lambda m: (
            say(f"      {m}")
            if "/" in m and m.split("/")[0].endswith(("0", f"{config.days}"))
            else None
        ),
    )
    items = list(shop.run())
    snapshot = next(i for i in items if isinstance(i, Snapshot))
    past_events = [i for i in items if isinstance(i, Delivery) and i.at < midnight]
    past_changes = [i for i in items if isinstance(i, Transaction) and i.at < midnight]
    live_events = [i for i in items if isinstance(i, Delivery) and i.at >= midnight]
    live_changes = [i for i in items if isinstance(i, Transaction) and i.at >= midnight]
    say(
        f"      past: {len(past_events):,} events, {len(past_changes):,} transactions; "
        f"today so far: {len(live_events):,} events, {len(live_changes):,} transactions"
    )

    say(f"[3/7] Backfilling the past events into the raw lake ({settings.lake_path})")
    loader = RawLoader(lake)
    for delivery in past_events:
        loader.add(delivery)
    loader.flush()

    stack = LocalStack(settings, settings.data_path / "logs", say=say)
    with stack, dg.DagsterInstance.get() as instance:
        say("[4/7] Starting the live path (logs in data/logs)")
        stack.start_transport()
        assert stack.postgres is not None
        dsn = stack.postgres.dsn()
        os.environ.update(SOURCE_DB_DSN=dsn, KAFKA_BOOTSTRAP_SERVERS=stack.kafka.address)
        get_settings.cache_clear()
        from devtools.sourcedb.driver import ShopDriver

        with psycopg.connect(dsn, autocommit=True) as conn:
            driver = ShopDriver(conn)
            driver.load_snapshot(snapshot)
            for tx in past_changes:
                driver.apply(tx)
            with conn.cursor() as cur:
                db_rows = {
                    t: cur.execute(f"select count(*) from {t}").fetchone()[0] for t in CDC_TABLES
                }
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

        dagster = Orchestrator(instance)
        first_day = config.first_day - timedelta(days=1)
        last_day = now.date() - timedelta(days=1)
        say(f"      Dagster: initial build of every asset, event days {first_day} .. {last_day}")
        for table, rows in raw_counts(lake).items():
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=dg.AssetKey(["raw", table]),
                    metadata={"dagster/row_count": dg.MetadataValue.int(rows)},
                    description="backfill and CDC snapshot",
                )
            )
        build = dagster.run(
            selection=_dbt_selection(),
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

        say(
            f"[5/7] Live traffic: {len(live_changes):,} transactions into PostgreSQL, "
            f"{len(live_events):,} events over HTTP to the collector"
        )
        before = raw_counts(lake)
        with psycopg.connect(dsn, autocommit=True) as conn:
            driver = ShopDriver(conn)
            for tx in live_changes:
                driver.apply(tx)
        sent = send_to_collector(
            live_events, stack.collector_url, progress=lambda m: say(f"      {m}")
        )
        say(
            f"      collector answered 200 for {sent.accepted:,} events "
            f"({sent.rejected} rejected) in {sent.requests} requests"
        )
        live_cdc = Counter(f"cdc_{c.table}" for tx in live_changes for c in tx.changes)
        wait_until(
            lambda: _drained(lake, before, len(live_events), live_cdc),
            "the live events and changes to reach raw",
            300,
            stack,
        )
        say("      every event and change is readable in raw")
        runs = dagster.refresh_until_quiet()
        say(f"      the raw sensor requested {runs} refresh run(s)")

        say("[6/7] Checking the marts against the shop's database")
        differences = verify_marts(str(settings.warehouse_path), shop)
        if differences:
            say("      MISMATCH in mart_daily_sales:\n        " + "\n        ".join(differences))
        else:
            say(
                f"      mart_daily_sales equals the database on every day "
                f"({len(expected_sales(shop))} days of orders and refunds)"
            )
        reconciliation = dagster.run(selection=_reconciliation())
        rec = reconciliation.get_asset_check_evaluations()
        say(
            f"      CDC reconciliation: {sum(e.passed for e in rec)}/{len(rec)} tables equal "
            f"PostgreSQL (row counts and checksums)"
        )

        before_fault = len(dagster.results)
        say(
            "[7/7] Data quality: injecting a fault (order lines pointing at a product that "
            "does not exist)"
        )
        from devtools.demo.quality import deliver_alerts_once, failed_history_rows
        from devtools.faults import inject_orphaned_order_items

        changed = inject_orphaned_order_items(
            settings.lake_path, now.date(), share=0.1, ops=("c", "r")
        )
        say(f"      {changed} order lines rewritten in raw.cdc_order_items")
        dagster.refresh_until_quiet()
        payloads, where = deliver_alerts_once(instance, dagster.defs)
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
    say("      live path stopped")

    say("\nWhat the marts say")
    print_summary(str(settings.warehouse_path))
    unexpected = failing_checks(dagster.results[:before_fault])
    injected = failing_checks(dagster.results[before_fault:])
    evaluations = sum(len(r.get_asset_check_evaluations()) for r in dagster.results)
    say(
        f"\nAsset checks: {evaluations} evaluations. Before the fault: "
        + (", ".join(unexpected) if unexpected else "all passed")
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
        and not differences
        and not unexpected
        and all(e.passed for e in rec)
        and bool(injected)
    )
    return 0 if ok else 1


def failing_checks(results: Sequence[dg.ExecuteInProcessResult]) -> list[str]:
    """Checks whose latest evaluation in these runs failed."""
    latest: dict[str, bool] = {}
    for result in results:
        for e in result.get_asset_check_evaluations():
            latest[f"{e.asset_key.to_user_string()}:{e.check_name}"] = e.passed
    return sorted(key for key, passed in latest.items() if not passed)


def _narrative(payload: dict) -> str:
    """The first line of the narrative section of a Slack Block Kit payload."""
    for block in payload.get("blocks", []):
        text = (block.get("text") or {}).get("text", "")
        if text.startswith("*Narrative*"):
            return text.split("\n")[1]
    return ""


def _dbt_selection() -> dg.AssetSelection:
    from platform_assets.definitions import DBT_ASSETS

    return DBT_ASSETS


def _reconciliation() -> dg.AssetSelection:
    from platform_assets.definitions import RECONCILIATION

    return RECONCILIATION


def _drained(
    lake: ParquetRawWriter, before: dict[str, int], events: int, cdc: Counter[str]
) -> bool:
    now = raw_counts(lake)
    return now["events"] - before["events"] >= events and all(
        now[t] - before[t] >= n for t, n in cdc.items()
    )


if __name__ == "__main__":
    sys.exit(main())
