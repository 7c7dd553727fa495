"""`make demo`: the platform end to end on the local default, on one machine.

Generates a 30-day synthetic shop, lands it in the raw lake, materializes every staging and
mart asset through Dagster (dbt tests run as asset checks), and prints what the marts say.
"""

import argparse
import shutil
import sys
import time
from collections.abc import Sequence
from datetime import date

import dagster as dg
import duckdb
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from platform_assets.settings import get_settings
from streaming.raw.schema import RAW_TABLES
from streaming.raw.writer import ParquetRawWriter
from streaming.shop.load import load_shop
from streaming.shop.simulator import ShopConfig


def say(message: str) -> None:
    print(message, flush=True)


def report_raw_tables(instance: dg.DagsterInstance, lake: ParquetRawWriter) -> None:
    """Tell Dagster the raw tables changed, as the raw sensors do on the live path."""
    from platform_assets.raw_assets import raw_asset_key

    with duckdb.connect() as con:
        for table in RAW_TABLES:
            rows = con.execute(
                f"select count(*) from read_parquet('{lake.glob(table)}', union_by_name=true)"
            ).fetchone()[0]
            instance.report_runless_asset_event(
                dg.AssetMaterialization(
                    asset_key=raw_asset_key(table),
                    metadata={"dagster/row_count": dg.MetadataValue.int(rows)},
                    description="Landed by the demo loader",
                )
            )


def event_date_range(lake: ParquetRawWriter) -> tuple[date, date]:
    with duckdb.connect() as con:
        first, last = con.execute(
            f"select min(event_date), max(event_date) "
            f"from read_parquet('{lake.glob('events')}', union_by_name=true)"
        ).fetchone()
    return first, last


def materialize_everything(
    instance: dg.DagsterInstance, first: date, last: date
) -> dg.ExecuteInProcessResult:
    """One run: the event days first..last (a single-run backfill) and every whole table."""
    from platform_assets.definitions import defs, platform_assets

    return dg.materialize(
        platform_assets(),
        instance=instance,
        resources=defs.resources,
        tags={
            ASSET_PARTITION_RANGE_START_TAG: first.isoformat(),
            ASSET_PARTITION_RANGE_END_TAG: last.isoformat(),
            "launched_by": "make demo",
        },
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
    )


def _table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    cells = [[str(h) for h in headers]] + [
        [f"{v:,.2f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)
         for v in row]
        for row in rows
    ]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def print_summary(warehouse: str) -> None:
    with duckdb.connect(warehouse, read_only=True) as con:
        def q(sql: str) -> list[tuple]:
            return [tuple(float(v) if hasattr(v, "as_tuple") else v for v in row)
                    for row in con.execute(sql).fetchall()]

        say("\nRevenue by day (last 10 days, mart.mart_daily_sales)")
        say(_table(q("""
            select sales_date, orders, gross_revenue, refunds, net_revenue, average_order_value
            from mart.mart_daily_sales order by sales_date desc limit 10"""),
            ["day", "orders", "gross", "refunds", "net", "AOV"]))
        say("\nConversion funnel by device (mart.mart_conversion_funnel)")
        say(_table(q("""
            select device_type, sum(sessions), sum(product_view_sessions),
                   sum(add_to_cart_sessions), sum(checkout_sessions), sum(order_sessions),
                   round(100.0 * sum(order_sessions) / sum(sessions), 2)
            from mart.mart_conversion_funnel group by 1 order by 2 desc"""),
            ["device", "sessions", "viewed", "added", "checkout", "ordered", "conv %"]))
        say("\nTop products by revenue (mart.mart_product_performance)")
        say(_table(q("""
            select name, category, views, add_to_carts, units_sold, revenue
            from mart.mart_product_performance order by revenue desc nulls last limit 8"""),
            ["product", "category", "views", "adds", "units", "revenue"]))


def print_checks(result: dg.ExecuteInProcessResult) -> int:
    evaluations = result.get_asset_check_evaluations()
    failed = [e for e in evaluations if not e.passed]
    say(f"\nAsset checks: {len(evaluations)} evaluated, {len(evaluations) - len(failed)} passed, "
        f"{len(failed)} failed")
    for evaluation in failed:
        say(f"  FAILED {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
            f"({evaluation.severity.value})")
    return len(failed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m platform_assets.demo", description=__doc__)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--sessions-per-day", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    settings = get_settings()
    started = time.monotonic()

    say(f"[1/4] Resetting the local demo data under {settings.data_path}")
    shutil.rmtree(settings.lake_path, ignore_errors=True)
    settings.warehouse_path.unlink(missing_ok=True)
    settings.warehouse_path.parent.mkdir(parents=True, exist_ok=True)

    config = ShopConfig(seed=args.seed, days=args.days, sessions_per_day=args.sessions_per_day)
    say(f"[2/4] Simulating the shop {config.first_day} .. {config.last_day} and landing it in raw")
    lake = ParquetRawWriter(settings.lake_path)
    tick = time.monotonic()
    _, stats = load_shop(lake, config, progress=lambda m: say(f"      {m}"))
    say(f"      {stats.events:,} events and {stats.changes:,} row changes in "
        f"{time.monotonic() - tick:.0f}s -> {settings.lake_path}")

    say("[3/4] Materializing raw -> staging -> mart through Dagster")
    with dg.DagsterInstance.get() as instance:
        report_raw_tables(instance, lake)
        first, last = event_date_range(lake)
        tick = time.monotonic()
        result = materialize_everything(instance, first, last)
        materialized = len(result.get_asset_materialization_events())
        say(f"      run {result.run_id}: {'succeeded' if result.success else 'FAILED'}, "
            f"{materialized} materializations (event days {first} .. {last}) in "
            f"{time.monotonic() - tick:.0f}s")

    say("[4/4] What the marts say")
    print_summary(str(settings.warehouse_path))
    failed_checks = print_checks(result)
    say(f"\nDone in {time.monotonic() - started:.0f}s.")
    say(f"  Warehouse (DuckDB): {settings.warehouse_path}")
    say(f"  Raw lake (Parquet): {settings.lake_path}")
    say(f"  Dagster UI:         `make ui`, then {settings.dagster_ui_url} (runs stored in "
        f"{instance.root_directory})")
    return 0 if result.success and not failed_checks else 1


if __name__ == "__main__":
    sys.exit(main())
