"""The code location the benchmark's Dagster daemon loads: the platform's assets, the raw
sensor and the compaction job, plus the automation sensor wired as recommended (its runs
carry the warehouse tag that dagster.yaml limits to one at a time).

No `from __future__ import annotations`: this module builds Dagster definitions.
"""

import importlib.metadata
import os

import dagster as dg
from dagster_dbt import DbtCliResource
from packaging import version

from platform_assets.compaction_assets import compaction_definitions
from platform_assets.dbt import dbt_event_models, dbt_models, dbt_resource
from platform_assets.dbt_project import dbt_project
from platform_assets.definitions import platform_assets
from platform_assets.raw_sensors import (
    WAREHOUSE_TAG_KEY,
    WAREHOUSE_TAG_VALUE,
    raw_sensor_definitions,
)
from platform_assets.settings import get_settings

DBT_ASSETS = dg.AssetSelection.assets(dbt_event_models, dbt_models)


class NoVersionCheckDbtCliResource(DbtCliResource):
    """dagster-dbt runs `dbt --version` once per run to tell dbt-core from dbt Fusion; that
    command imports every adapter and asks PyPI for the latest releases (10-20 s per run on
    this machine). The installed dbt-core package gives the same answer at once."""

    @property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))


def bench_dbt_resource() -> DbtCliResource:
    if os.environ.get("BENCH_SKIP_DBT_VERSION_CHECK") == "1":
        return NoVersionCheckDbtCliResource(
            project_dir=dbt_project, target=get_settings().resolved_dbt_target
        )
    return dbt_resource()


automation_sensor = dg.AutomationConditionSensorDefinition(
    "refresh_on_new_raw_data",
    target=DBT_ASSETS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=int(os.environ.get("BENCH_AUTOMATION_INTERVAL_SECONDS", "15")),
    run_tags={WAREHOUSE_TAG_KEY: WAREHOUSE_TAG_VALUE},
)

_compaction = compaction_definitions()


def _without_automation(spec: dg.AssetSpec) -> dg.AssetSpec:
    return spec.replace_attributes(automation_condition=None)


if os.environ.get("BENCH_REFRESH_MODE", "automation") == "sensor":
    # the raw sensor refreshes the latest day and the whole tables itself, one run per tick
    _assets = [
        *(a for a in platform_assets() if isinstance(a, dg.AssetSpec)),
        dbt_event_models.map_asset_specs(_without_automation),
        dbt_models.map_asset_specs(_without_automation),
    ]
    _sensors = raw_sensor_definitions(refresh_latest=True)
else:
    _assets = platform_assets()
    _sensors = [*raw_sensor_definitions(), automation_sensor]

defs = dg.Definitions(
    assets=_assets,
    sensors=_sensors,
    jobs=[d for d in _compaction if isinstance(d, dg.JobDefinition)],
    resources={"dbt": bench_dbt_resource()},
)
