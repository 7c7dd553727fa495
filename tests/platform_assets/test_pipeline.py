"""The asset graph materialized by Dagster on a small shop, checked against independent totals.

Expected numbers come straight from the simulator's own records (its final database state and
the events it sent), computed here in plain Python, never from the warehouse.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from datetime import date, timedelta
from decimal import Decimal

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from devtools.shop.simulator import PAID_STATUSES
from platform_core.contract import corrected_timestamp, parse_message
from platform_core.settings import get_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(small_platform):
    from platform_assets.definitions import defs, platform_assets

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            platform_assets(),
            instance=instance,
            resources=defs.resources,
            tags={
                ASSET_PARTITION_RANGE_START_TAG: (
                    small_platform.first_day - timedelta(days=1)
                ).isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: small_platform.last_day.isoformat(),
            },
        )
        yield small_platform, result


@pytest.fixture
def wh(built):  # per test: an open connection would hold the lock dbt needs in later tests
    platform, _ = built
    con = duckdb.connect(str(platform.warehouse), read_only=True)
    yield con
    con.close()


def unique_deliveries(shop_items):
    seen: dict[str, object] = {}
    for item in shop_items:
        seen.setdefault(item.payload["messageId"], item)
    return list(seen.values())


@pytest.fixture(scope="module")
def sent(built):
    """Every event the simulator sent, first delivery per messageId (what staging must keep)."""
    from devtools.shop.simulator import Delivery, SyntheticShop

    items = [i for i in SyntheticShop(built[0].config).run() if isinstance(i, Delivery)]
    return items, unique_deliveries(items)


def test_every_asset_materialized_and_every_check_passed(built):
    _, result = built
    assert result.success
    keys = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {
        "staging/stg_events",
        "staging/stg_orders",
        "mart/mart_daily_sales",
        "mart/mart_conversion_funnel",
        "mart/mart_product_performance",
        "mart/mart_user_behavior",
        "mart/mart_retention_cohorts",
    } <= keys
    checks = result.get_asset_check_evaluations()
    assert len(checks) > 50
    assert [c.check_name for c in checks if not c.passed] == []


def test_daily_sales_equal_completed_orders_minus_refunds(built, wh):
    platform, _ = built
    gross: dict[date, Decimal] = defaultdict(Decimal)
    count: Counter[date] = Counter()
    refunds: dict[date, Decimal] = defaultdict(Decimal)
    for order in platform.shop.rows("orders"):
        if order["status"] in PAID_STATUSES:
            day = order["created_at"].date()
            gross[day] += order["total_amount"]
            count[day] += 1
        if order["refunded_at"] is not None:
            refunds[order["refunded_at"].date()] += order["total_amount"]
    rows = wh.execute(
        "select sales_date, orders, gross_revenue, refunds, net_revenue from mart.mart_daily_sales"
    ).fetchall()
    got = {r[0]: r[1:] for r in rows}
    days = set(gross) | set(refunds)
    assert days <= set(got)
    for day in days:
        orders, g, r, net = got[day]
        assert orders == count[day], day
        assert Decimal(g or 0) == gross[day], day
        assert Decimal(r or 0) == refunds[day], day
        assert Decimal(net) == gross[day] - refunds[day], day
    assert sum(gross.values()) > 0 and sum(refunds.values()) > 0


def test_staging_keeps_one_row_per_message(built, wh, sent):
    items, unique = sent
    assert len(items) > len(unique), "the shop should have sent client retries"
    raw = wh.execute(
        f"select count(*) from read_parquet('{built[0].lake}/events/**/*.parquet')"
    ).fetchone()[0]
    assert raw == len(items)
    staged = dict(
        wh.execute(
            "select coalesce(event_name, event_type), count(*) from staging.stg_events group by 1"
        ).fetchall()
    )
    expected = Counter(
        d.payload.get("event")
        if d.payload["type"] == "track"
        else d.payload.get("name") or d.payload["type"]
        for d in unique
    )
    for name in ("Product Viewed", "Product Added", "Checkout Started", "Order Completed"):
        assert staged[name] == expected[name], name
    assert sum(staged.values()) == len(unique)


def test_event_time_is_skew_corrected(built, wh, sent):
    _, unique = sent
    sample = unique[:: max(1, len(unique) // 200)]
    expected = {}
    for d in sample:
        m = parse_message(d.payload)
        ts = corrected_timestamp(m.event_time_as_sent, m.sentAt, d.received_at)
        expected[d.payload["messageId"]] = ts.replace(tzinfo=None)
    ids = ",".join(f"'{i}'" for i in expected)
    got = dict(
        wh.execute(
            "select message_id, event_timestamp from staging.stg_events "
            f"where message_id in ({ids})"
        ).fetchall()
    )
    assert got == expected


def test_product_performance_matches_paid_order_items(built, wh, sent):
    platform, _ = built
    _, unique = sent
    paid = {o["order_id"] for o in platform.shop.rows("orders") if o["status"] in PAID_STATUSES}
    units: Counter[int] = Counter()
    revenue: dict[int, Decimal] = defaultdict(Decimal)
    for line in platform.shop.rows("order_items"):
        if line["order_id"] in paid:
            units[line["product_id"]] += line["quantity"]
            revenue[line["product_id"]] += line["quantity"] * line["unit_price"]
    views = Counter(
        int(d.payload["properties"]["product_id"])
        for d in unique
        if d.payload.get("event") == "Product Viewed"
    )
    rows = wh.execute(
        "select product_id, views, units_sold, revenue from mart.mart_product_performance"
    ).fetchall()
    assert len(rows) == len(platform.shop.rows("products"))
    for product_id, v, u, rev in rows:
        assert (v or 0) == views[product_id], product_id
        assert (u or 0) == units[product_id], product_id
        assert Decimal(rev or 0) == revenue[product_id], product_id


def test_user_lifetime_revenue_and_deleted_users(built, wh):
    platform, _ = built
    lifetime: dict[int, Decimal] = defaultdict(Decimal)
    for order in platform.shop.rows("orders"):
        if order["status"] in PAID_STATUSES:
            lifetime[order["user_id"]] += order["total_amount"]
    users = {u["user_id"] for u in platform.shop.rows("users")}
    got = dict(
        wh.execute("select user_id, lifetime_revenue from mart.mart_user_behavior").fetchall()
    )
    assert set(got) == users  # deleted accounts are gone from current state
    for user_id in users:
        assert Decimal(got[user_id] or 0) == lifetime.get(user_id, Decimal(0)), user_id


def test_funnel_order_sessions_match_sessionized_events(built, wh, sent):
    _, unique = sent
    by_visitor: dict[str, list] = defaultdict(list)
    for d in unique:
        if not d.payload.get("anonymousId"):
            continue  # server-side events belong to no browsing session
        m = parse_message(d.payload)
        ts = corrected_timestamp(m.event_time_as_sent, m.sentAt, d.received_at)
        by_visitor[d.payload["anonymousId"]].append((ts, d.payload.get("event")))
    expected: Counter[date] = Counter()
    for events in by_visitor.values():
        events.sort(key=lambda e: e[0])
        session_start, ordered, last = None, False, None
        for ts, name in events:
            if last is None or ts - last > timedelta(minutes=30):
                if ordered:
                    expected[session_start.date()] += 1
                session_start, ordered = ts, False
            ordered = ordered or name == "Order Completed"
            last = ts
        if ordered:
            expected[session_start.date()] += 1
    got = dict(
        wh.execute(
            "select session_date, sum(order_sessions) from mart.mart_conversion_funnel group by 1"
        ).fetchall()
    )
    assert {d: n for d, n in got.items() if n} == dict(expected)


def test_definitions_lineage_groups_and_refresh_wiring(dbt_manifest):
    from platform_assets.definitions import defs

    graph = defs.resolve_asset_graph()
    node = graph.get(dg.AssetKey(["mart", "mart_daily_sales"]))
    assert node.group_name == "mart"
    upstream = graph.get(dg.AssetKey(["staging", "stg_orders"]))
    assert [k.to_user_string() for k in upstream.parent_keys] == ["raw/cdc_orders"]
    stg_events = graph.get(dg.AssetKey(["staging", "stg_events"]))
    assert stg_events.partitions_def is not None
    assert graph.get(dg.AssetKey(["raw", "events"])).group_name == "raw"
    assert not graph.get(dg.AssetKey(["raw", "events"])).is_materializable
    # refreshes come from the raw sensor's run requests, not from automation conditions
    assert node.automation_condition is None
    assert {s.name for s in defs.sensors} >= {"raw_tables_sensor", "data_quality_slack_alerts"}
    assert graph.get(dg.AssetKey(["raw", "events"])).freshness_policy is not None
    assert node.freshness_policy is not None
    assert node.freshness_policy.fail_window.to_timedelta() == timedelta(minutes=30)
    assert upstream.freshness_policy is None
    assert defs.resolve_job_def("daily_refresh") is not None
    assert {"daily_refresh_schedule", "reconcile_cdc_schedule"} <= {s.name for s in defs.schedules}
    # every job that opens the DuckDB warehouse queues behind the others (one at a time)
    for name in ("daily_refresh", "reconcile_cdc", "data_quality_checks", "compact_raw_lake"):
        assert defs.resolve_job_def(name).tags.get("platform/warehouse") == "refresh", name


def test_dbt_resource_knows_the_dbt_version_without_running_dbt(dbt_manifest):
    """PlatformDbtCliResource overrides a private dagster-dbt property: fail loudly on upgrade."""
    import importlib.metadata

    from dagster_dbt import DbtCliResource

    from platform_assets.dbt.assets import dbt_resource

    assert "_cli_version" in DbtCliResource.__dict__
    resource = dbt_resource(get_settings())
    assert str(resource._cli_version) == importlib.metadata.version("dbt-core")


def test_dbt_steps_parse_incrementally_and_leave_bounded_target_dirs(built):
    """A refresh step starts from its own previous partial parse (no full reparse when the
    other step's vars differ) and old per-invocation target directories are removed."""
    from platform_assets.dbt.assets import INVOCATION_DIR, INVOCATIONS_KEPT, dbt_models, target_root
    from platform_assets.definitions import defs

    root = target_root()
    for index in range(INVOCATIONS_KEPT + 2):  # more directories than are kept
        stale = root / f"dbt_models-{index:07x}-{index:07x}"
        stale.mkdir(parents=True, exist_ok=True)
        os.utime(stale, (1_000_000 + index, 1_000_000 + index))
    run_ids = []
    with dg.instance_for_test() as instance:
        for _ in range(2):
            result = dg.materialize([dbt_models], instance=instance, resources=defs.resources)
            assert result.success
            run_ids.append(result.run_id)
    (second,) = root.glob(f"dbt_models-{run_ids[1][:7]}-*")
    log = (second / "dbt.log").read_text()
    assert "Found " in log  # the invocation's log is where it is expected
    assert "UnableToPartialParse" not in log and "full parse" not in log
    kept = [p for p in root.iterdir() if p.is_dir() and INVOCATION_DIR.match(p.name)]
    assert len(kept) <= INVOCATIONS_KEPT
    assert not (root / "dbt_models-0000000-0000000").exists()  # the oldest went first
