"""End to end on the real code location: a fault injected into a small shop's raw data shows up
as a failed asset check (with metadata and narrative), a Slack payload with the narrative on a
local webhook, and rows in monitoring.data_quality_checks.
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


def test_injected_fault_fails_a_check_alerts_slack_and_lands_in_history(faulty_platform):
    from devtools.slack_webhook import LocalWebhook
    from platform_assets.definitions import build_definitions, platform_assets
    from platform_assets.quality.alerts import SlackAlerts, deliver_alerts
    from platform_assets.quality.checks import quality_asset_checks
    from platform_assets.quality.definitions import quality_resources

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
        ours = [e for e in evaluations if "rule" in e.metadata]
        failed = {(e.asset_key.to_user_string(), e.check_name): e for e in evaluations}
        failed = {k: e for k, e in failed.items() if not e.passed}
        # the invariant is the dbt test's (checked once); the agent has no rule of its own
        key = (
            "staging/stg_order_items",
            "relationships_stg_order_items_product_id__product_id__ref_stg_products_",
        )
        assert key in failed, sorted(failed)
        assert 0 < failed[key].metadata["dagster_dbt/failed_row_count"].value <= changed
        assert ("staging/stg_order_items", "referential_integrity_product_id") not in failed
        # nothing critical on the clean parts of the shop
        assert not [k for k, e in failed.items() if e.severity == dg.AssetCheckSeverity.ERROR]

        keys = sorted(defs.resolve_asset_graph().asset_check_keys, key=lambda k: k.to_user_string())
        with LocalWebhook() as hook:
            sink = SlackAlerts.from_settings(get_settings(), webhook_url=hook.url)
            _, outcome = deliver_alerts(instance, keys, None, sink)
            texts = [p["text"] for p in hook.payloads]
        alerts = [p for p in hook.payloads if key[1] in p["text"]]
        assert len(alerts) == 1, texts
        alert = alerts[0]
        assert alert["text"].startswith("[WARNING] staging/stg_order_items")
        # the agent explains the dbt test as a referential failure (orphans), not generically
        blocks = str(alert["blocks"])
        assert "Likely causes" in blocks and "parent" in blocks
        assert len(outcome.alerts) == len(hook.payloads)

    with duckdb.connect(str(data_dir / "monitoring.duckdb"), read_only=True) as con:
        total = con.execute("select count(*) from data_quality_checks").fetchone()[0]
    assert total == len(ours)  # every agent evaluation of the run is in the history
