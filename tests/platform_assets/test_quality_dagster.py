"""End to end on the real code location: a fault injected into a small shop's raw data (order
lines pointing at a product that does not exist) fails the dbt `relationships` test that owns
that invariant, shows up as one incident (one Slack message on a local webhook, with its
narrative) and leaves the agent's evaluations in monitoring.data_quality_checks.
"""

from __future__ import annotations

import shutil
from datetime import datetime, time, timedelta

import dagster as dg
import duckdb
import pytest
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)

from platform_core.settings import get_settings

pytestmark = pytest.mark.slow


@pytest.fixture
def faulty_platform(small_platform, tmp_path, monkeypatch):
    """A copy of the small shop whose last day has order lines pointing at no product."""
    from devtools.faults import inject_orphaned_order_items

    lake = tmp_path / "lake"
    shutil.copytree(small_platform.lake, lake)
    changed = inject_orphaned_order_items(lake, small_platform.last_day)
    assert changed > 0
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LAKE_DIR", str(lake))
    monkeypatch.setenv("DUCKDB_PATH", str(tmp_path / "warehouse.duckdb"))
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "LLM_PROVIDER", "PLATFORM_ENV"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield small_platform, tmp_path, changed
    get_settings.cache_clear()


RELATIONSHIPS = "relationships_stg_order_items_product_id__product_id__ref_stg_products_"


def test_injected_fault_is_one_incident_in_slack_and_lands_in_history(faulty_platform):
    from devtools.slack_webhook import LocalWebhook
    from platform_assets.definitions import build_definitions, platform_assets
    from platform_assets.quality.alerts import deliver_alerts
    from platform_assets.quality.checks import quality_asset_checks
    from platform_assets.quality.definitions import quality_resources
    from platform_assets.quality.slack import SlackAlerts

    platform, data_dir, changed = faulty_platform
    as_of = datetime.combine(platform.last_day + timedelta(days=1), time(0, 5))
    defs = build_definitions(get_settings())
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*platform_assets(), *quality_asset_checks()],
            instance=instance,
            resources={
                **defs.resources,
                **quality_resources(get_settings(), as_of=as_of.isoformat()),
            },
            tags={
                ASSET_PARTITION_RANGE_START_TAG: (
                    platform.first_day - timedelta(days=1)
                ).isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: platform.last_day.isoformat(),
            },
            raise_on_error=False,
        )
        assert result.success  # the failing check is not blocking: the run completes
        evaluations = result.get_asset_check_evaluations()
        failed = {
            (e.asset_key.to_user_string(), e.check_name): e for e in evaluations if not e.passed
        }
        # the invariant is the dbt test's (checked once); the agent has no rule of its own
        key = ("staging/stg_order_items", RELATIONSHIPS)
        assert key in failed, sorted(failed)
        assert 0 < failed[key].metadata["dagster_dbt/failed_row_count"].value <= changed
        assert ("staging/stg_order_items", "referential_integrity_product_id") not in failed
        # nothing critical on the clean parts of the shop
        assert not [k for k, e in failed.items() if e.severity == dg.AssetCheckSeverity.ERROR]

        with LocalWebhook() as hook:
            sink = SlackAlerts.from_settings(get_settings(), webhook_url=hook.url)
            _, outcome = deliver_alerts(instance, defs.resolve_asset_graph(), None, sink)
            payloads = list(hook.payloads)
        # one root cause, one message: every failing check of the run is in it
        assert len(payloads) == 1 and len(outcome.alerts) == 1, [p["text"] for p in payloads]
        alert = payloads[0]
        assert alert["text"].startswith(
            "[WARNING] data-quality incident at staging/stg_order_items"
        ), alert["text"]
        # the agent explains the dbt test as a referential failure (orphans), not generically
        blocks = str(alert["blocks"])
        assert RELATIONSHIPS in blocks and "Likely causes" in blocks and "parent" in blocks
        for asset, check in failed:
            assert check in blocks and asset in blocks
        assert "most likely starts at staging/stg_order_items" in blocks

    with duckdb.connect(str(data_dir / "monitoring.duckdb"), read_only=True) as con:
        total, runs = con.execute(
            "select count(*), count(distinct run_id) from data_quality_checks"
        ).fetchone()
    ours = [e for e in evaluations if "rule" in e.metadata]
    assert total == len(ours) and runs == 1  # every agent evaluation of the run is in the history
