"""The code location the benchmark's Dagster daemon loads.

`BENCH_REFRESH_MODE=sensor` (default): the platform's own code location, where the raw sensor
requests the refreshes. `automation`: the alternative it is measured against, declarative
automation (`eager()`) refreshing the latest day and the whole tables, its runs tagged as
the platform's refreshes (their dbt ops are in the warehouse pool that the instance limits to
one run at a time, as every refresh's).

No `from __future__ import annotations`: this module builds Dagster definitions.
"""

import os

import dagster as dg

from platform_assets import definitions as platform
from platform_assets.dbt.assets import dbt_event_models, dbt_models, dbt_resource
from platform_assets.definitions import platform_assets
from platform_assets.raw.sensors import build_raw_sensor
from platform_assets.warehouse_runs import warehouse_tags
from platform_core.settings import get_settings

WHOLE_TABLE_EAGER = dg.AutomationCondition.eager().without(
    ~dg.AutomationCondition.any_deps_missing()
)


def _automation_defs() -> dg.Definitions:
    event_models = dbt_event_models.map_asset_specs(
        lambda s: s.replace_attributes(automation_condition=dg.AutomationCondition.eager())
    )
    whole_tables = dbt_models.map_asset_specs(
        lambda s: s.replace_attributes(automation_condition=WHOLE_TABLE_EAGER)
    )
    specs = [a for a in platform_assets() if isinstance(a, dg.AssetSpec)]
    automation = dg.AutomationConditionSensorDefinition(
        "refresh_on_new_raw_data",
        target=dg.AssetSelection.assets(event_models, whole_tables),
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=int(os.environ.get("BENCH_AUTOMATION_INTERVAL_SECONDS", "15")),
        run_tags=warehouse_tags(),
    )
    return dg.Definitions(
        assets=[*specs, event_models, whole_tables],
        # the sensor still does late days
        sensors=[build_raw_sensor(get_settings()), automation],
        resources={"dbt": dbt_resource(get_settings())},
    )


defs = (
    _automation_defs()
    if os.environ.get("BENCH_REFRESH_MODE", "sensor") == "automation"
    else platform.defs
)
