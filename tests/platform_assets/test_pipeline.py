"""The asset graph materialized by Dagster on a small shop, checked against independent totals.

Expected numbers come straight from the simulator's own records (its deliveries with their
true times, its transactions, its final tables), computed in plain Python by truth_events.py
and truth_orders.py, never from the warehouse or the platform's transformation code.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from platform_core.settings import get_settings
from tests.platform_assets.truth_events import BehaviourTruth
from tests.platform_assets.truth_orders import OrdersTruth, read_rates

pytestmark = [pytest.mark.slow, pytest.mark.long]


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


@pytest.fixture(scope="module")
def items(built):
    """Everything the simulator yielded (the same seed walks the same shop again)."""
    from devtools.shop.simulator import SyntheticShop

    return list(SyntheticShop(built[0].config).run())


@pytest.fixture(scope="module")
def behaviour(items) -> BehaviourTruth:
    return BehaviourTruth(i for i in items if type(i).__name__ == "Delivery")


@pytest.fixture(scope="module")
def orders(items) -> OrdersTruth:
    return OrdersTruth(items, None, read_rates())


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


def test_daily_sales_are_the_shops_sales_and_refunds(wh, orders):
    got = {
        r[0]: r[1:]
        for r in wh.execute(
            "select sales_date, orders, gross_revenue, items_sold, customers, "
            "average_order_value, refunded_orders, refunds, net_revenue, cancelled_orders "
            "from mart.mart_daily_sales"
        ).fetchall()
    }
    expected = orders.daily_sales()
    assert got == expected
    assert sum(v[1] for v in expected.values()) > 0 and sum(v[6] for v in expected.values()) > 0


def test_staging_keeps_one_row_per_message(built, wh, items, behaviour):
    deliveries = [i for i in items if type(i).__name__ == "Delivery"]
    assert len(deliveries) > len(behaviour.events), "the shop should have sent client retries"
    raw = wh.execute(
        f"select count(*) from read_parquet('{built[0].lake}/events/**/*.parquet')"
    ).fetchone()[0]
    assert raw == len(deliveries)
    staged = dict(
        wh.execute(
            "select coalesce(event_name, event_type), count(*) from staging.stg_events group by 1"
        ).fetchall()
    )
    expected = Counter(e.name or e.type for e in behaviour.events)
    assert staged == dict(expected)


def test_event_time_is_the_true_time_plus_transit(wh, behaviour):
    """Segment's skew rule on the true clocks: when it happened, plus the network transit."""
    sample = [e for e in behaviour.events if e.message_id][:: max(1, len(behaviour.events) // 300)]
    ids = ",".join(f"'{e.message_id}'" for e in sample)
    got = {
        (source, message_id): ts
        for source, message_id, ts in wh.execute(
            "select source, message_id, event_timestamp from staging.stg_events "
            f"where message_id in ({ids})"
        ).fetchall()
    }
    assert got == {(e.source, e.message_id): e.time for e in sample}


def test_product_performance_matches_the_shops_sales(built, wh, behaviour, orders):
    sales, events = orders.product_sales(), behaviour.product_events()
    rows = wh.execute(
        "select product_id, views, add_to_carts, units_sold, units_refunded, revenue, orders "
        "from mart.mart_product_performance"
    ).fetchall()
    assert len(rows) == len(built[0].shop.rows("products"))
    for product_id, views, adds, units, units_back, revenue, n in rows:
        units_sold, refunded, usd, _, count, _ = sales.get(product_id, (0, 0, 0, 0, 0, 0))
        assert (views, adds) == tuple(events.get(product_id, (0, 0))), product_id
        assert (units, units_back, revenue, n) == (units_sold, refunded, usd, count), product_id


def test_user_lifetime_revenue_and_deleted_users(built, wh, orders):
    users = {u["user_id"] for u in built[0].shop.rows("users")}
    got = {
        user_id: (n, revenue)
        for user_id, n, revenue in wh.execute(
            "select user_id, orders, lifetime_revenue from mart.mart_user_behavior"
        ).fetchall()
    }
    assert set(got) == users  # deleted accounts are gone from current state
    for user_id in users:
        kept = orders.kept(user_id)
        assert got[user_id] == (len(kept), sum(o.usd for o in kept)), user_id


def test_funnel_matches_the_sessions_of_the_shops_events(wh, behaviour):
    expected = behaviour.funnel()
    got = {
        (r[0], r[1], r[2]): list(r[3:])
        for r in wh.execute(
            "select session_date, device_type, traffic_source, sessions, product_view_sessions, "
            "add_to_cart_sessions, checkout_sessions, payment_sessions, order_sessions, "
            "converting_sessions from mart.mart_conversion_funnel"
        ).fetchall()
    }
    assert got == expected
    assert sum(v[5] for v in expected.values()) > 0


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
    """PlatformDbtCliResource overrides private dagster-dbt members (the dbt version, the
    in-process adapter nobody here uses): fail loudly on an upgrade that renames them."""
    import importlib.metadata

    from dagster_dbt import DbtCliResource

    from platform_assets.dbt.assets import dbt_resource

    assert "_cli_version" in DbtCliResource.__dict__
    assert "_initialize_dbt_core_adapter" in DbtCliResource.__dict__
    resource = dbt_resource(get_settings())
    assert str(resource._cli_version) == importlib.metadata.version("dbt-core")
    assert resource._initialize_dbt_core_adapter(["build"]) is None


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


def test_each_profile_keeps_its_own_partial_parse(tmp_path, monkeypatch):
    """A `make dev` and the tests (or two test processes) on one checkout point dbt's profile
    at other warehouses: a partial parse one of them left is one the other's dbt would throw
    away and reparse whole, so each profile starts from its own; the newest few are kept."""
    from platform_assets.dbt.assets import (
        PARTIAL_PARSES_KEPT,
        partial_parse_cache,
        save_partial_parse,
    )

    monkeypatch.setenv("DUCKDB_PATH", "/data/dev/warehouse.duckdb")
    dev = partial_parse_cache(tmp_path, "dbt_models", with_vars=False)
    assert partial_parse_cache(tmp_path, "dbt_models", with_vars=False) == dev
    assert partial_parse_cache(tmp_path, "dbt_models", with_vars=True) != dev
    monkeypatch.setenv("DUCKDB_PATH", "/tmp/a-test/warehouse.duckdb")
    assert partial_parse_cache(tmp_path, "dbt_models", with_vars=False) != dev

    parsed = tmp_path / "run" / "partial_parse.msgpack"
    parsed.parent.mkdir()
    parsed.write_bytes(b"parsed")
    saved = []
    for index in range(PARTIAL_PARSES_KEPT + 3):
        monkeypatch.setenv("DUCKDB_PATH", f"/tmp/test-{index}/warehouse.duckdb")
        saved.append(partial_parse_cache(tmp_path, "dbt_models", with_vars=False))
        save_partial_parse(parsed, saved[-1])
        os.utime(saved[-1], (1_000_000 + index, 1_000_000 + index))
    assert sorted((tmp_path / "partial_parse").iterdir()) == sorted(saved[-PARTIAL_PARSES_KEPT:])
    assert saved[-1].read_bytes() == b"parsed"


def test_a_verification_run_checks_the_refreshed_assets_without_rebuilding_them(built):
    """What the raw sensor's verification run executes (asset_selection=[] + check keys, no
    partition): every selected check is evaluated, a dbt test, a singular test over several
    models and a quality rule among them, and no model is rebuilt."""
    from platform_assets.definitions import defs, platform_assets
    from platform_assets.quality.checks import quality_asset_checks

    refreshed = {
        dg.AssetKey(["staging", "stg_events"]),
        dg.AssetKey(["staging", "int_sessions"]),
        dg.AssetKey(["mart", "mart_daily_sales"]),
    }
    checks = [
        k
        for k in defs.resolve_asset_graph().asset_check_keys
        if k.asset_key in refreshed and k.name != "reconciles_with_source"
    ]
    expected = {
        dg.AssetCheckKey(dg.AssetKey(["staging", "stg_events"]), "unique_stg_events_message_id"),
        dg.AssetCheckKey(dg.AssetKey(["staging", "stg_events"]), "volume_anomaly"),
        dg.AssetCheckKey(
            dg.AssetKey(["mart", "mart_daily_sales"]), "assert_daily_sales_match_fct_orders"
        ),
    }
    assert expected <= set(checks)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*platform_assets(), *quality_asset_checks()],
            instance=instance,
            resources=defs.resources,
            selection=dg.AssetSelection.checks(*checks),
            raise_on_error=False,
        )
    assert result.success
    assert result.get_asset_materialization_events() == []
    evaluated = {e.asset_check_key for e in result.get_asset_check_evaluations()}
    assert evaluated == set(checks)
