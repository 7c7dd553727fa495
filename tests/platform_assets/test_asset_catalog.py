"""What the Dagster UI shows of each asset: the asset graph is the catalog people browse, so
every raw, staging and mart table carries a group, a kind, an owner and a description; marts
show their freshness; the warehouse's writers share one concurrency pool."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


def asset_graph():
    """The code location's features merged (not platform_assets.definitions: importing it
    builds `defs` from this moment's settings, which later tests would then share)."""
    from platform_assets.dbt import definitions as dbt
    from platform_assets.quality import definitions as quality
    from platform_assets.raw import definitions as raw
    from platform_assets.reconciliation import definitions as reconciliation
    from platform_core.settings import Settings

    settings = Settings.from_env({})
    features = (raw, dbt, reconciliation, quality)
    return dg.Definitions.merge(*(f.build_defs(settings) for f in features)).resolve_asset_graph()


def test_every_asset_has_group_kind_owner_and_description(dbt_manifest: Path) -> None:
    graph = asset_graph()
    keys = list(graph.get_all_asset_keys())
    layers = {key.path[0] for key in keys}
    assert layers == {"raw", "staging", "mart"}
    for key in keys:
        node = graph.get(key)
        layer = key.path[0]
        assert node.group_name == layer, key
        assert node.kinds, key
        assert node.owners and all(o.startswith("team:") for o in node.owners), key
        assert node.description and len(node.description) > 20, key
        if layer == "mart":
            assert node.freshness_policy is not None, key
    assert graph.get(dg.AssetKey(["mart", "mart_daily_sales"])).owners == [
        "team:analytics-engineering"
    ]
    assert graph.get(dg.AssetKey(["raw", "events"])).owners == ["team:data-platform"]


def test_the_warehouse_writers_share_one_pool(dbt_manifest: Path) -> None:
    from platform_assets.compaction.jobs import compact_raw_lake_job
    from platform_assets.dbt.assets import dbt_event_models, dbt_models
    from platform_assets.warehouse_runs import WAREHOUSE_POOL

    assert dbt_event_models.op.pool == dbt_models.op.pool == WAREHOUSE_POOL
    assert {node.definition.pool for node in compact_raw_lake_job.graph.node_dict.values()} == {
        WAREHOUSE_POOL
    }
