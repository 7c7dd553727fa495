"""Events sent with the official Segment SDK to the collector `make dev` printed are counted in
the marts, read through the read path (the published snapshot), within the freshness target.

The platform sends no traffic of its own here, so the mart moves by exactly what was sent.
"""

from __future__ import annotations

import time
import uuid
from datetime import timedelta

import duckdb
import pytest
from segment.analytics.client import Client

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

VIEWS = 5


def product_views(read_path, product_id: int) -> int:
    with duckdb.connect(str(read_path), read_only=True) as con:
        return con.execute(
            "select views from mart.mart_product_performance where product_id = ?", [product_id]
        ).fetchone()[0]


def test_segment_sdk_events_are_counted_in_the_marts_within_the_freshness_target(
    live_platform, dbt_manifest
):
    from platform_assets.dbt.assets import MART_FRESHNESS  # reads the manifest at import

    read_path = live_platform.read_path
    with duckdb.connect(str(read_path), read_only=True) as con:
        product_id = con.execute("select min(product_id) from mart.mart_product_performance")
        product_id = product_id.fetchone()[0]
    before = product_views(read_path, product_id)

    client = Client("demo-web-key", host=live_platform.collector, sync_mode=True, max_retries=3)
    visitor = f"sdk-{uuid.uuid4().hex[:8]}"
    sent_at = time.monotonic()
    for position in range(VIEWS):
        ok, _ = client.track(
            anonymous_id=visitor,
            event="Product Viewed",
            properties={"product_id": str(product_id), "position": position},
        )
        assert ok

    target = MART_FRESHNESS.warn_window.to_timedelta()  # the shop's SLA: warn at 15 minutes
    assert target == timedelta(minutes=15)
    seen = before
    while time.monotonic() - sent_at < target.total_seconds():
        seen = product_views(read_path, product_id)  # a fresh connection: the last refresh
        if seen >= before + VIEWS:
            break
        time.sleep(5)
    latency = time.monotonic() - sent_at
    assert seen == before + VIEWS, f"{seen - before} of {VIEWS} views after {latency:.0f}s"
    print(f"Segment SDK -> collector -> Beam -> raw -> dbt -> read path: {latency:.0f}s")
