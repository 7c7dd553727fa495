"""The Dagster code location: raw → staging → mart, with schedules, sensors and checks."""

import dagster as dg

from platform_assets.compaction_assets import compact_raw_lake_job, compact_raw_lake_schedule
from platform_assets.dbt import dbt_event_models, dbt_models, dbt_resource
from platform_assets.genai.sql_optimizer.definitions import build_defs as sql_optimizer_defs
from platform_assets.quality.definitions import quality_definitions
from platform_assets.raw_assets import raw_asset_specs
from platform_assets.raw_sensors import raw_sensor_definitions
from platform_assets.reconciliation import reconciliation_checks, reconciliation_definitions
from platform_assets.settings import get_settings
from platform_assets.warehouse_runs import warehouse_tags

RECONCILIATION = dg.AssetSelection.checks(*reconciliation_checks())
# The reconciliation needs the source database and a drained stream: it runs on its own.
DBT_ASSETS = dg.AssetSelection.assets(dbt_event_models, dbt_models) - RECONCILIATION

daily_refresh_job = dg.define_asset_job(
    "daily_refresh",
    selection=DBT_ASSETS,
    tags=warehouse_tags(),
    description="Rebuild the day's event partition and every staging and mart table.",
)
daily_refresh_schedule = dg.build_schedule_from_partitioned_job(
    daily_refresh_job,
    hour_of_day=1,
    minute_of_hour=15,
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
reconcile_cdc_job = dg.define_asset_job(
    "reconcile_cdc",
    selection=RECONCILIATION,
    tags=warehouse_tags(),
    description="Compare the staging current state with the shop's PostgreSQL.",
)
reconcile_cdc_schedule = dg.ScheduleDefinition(
    job=reconcile_cdc_job,
    cron_schedule="*/30 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


def platform_assets() -> list[dg.AssetSpec | dg.AssetsDefinition]:
    storage_kind = "parquet" if get_settings().is_local else "bigquery"
    return [*raw_asset_specs(storage_kind), dbt_event_models, dbt_models]


def build_definitions() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.Definitions(
            assets=platform_assets(),
            jobs=[daily_refresh_job, reconcile_cdc_job, compact_raw_lake_job],
            schedules=[daily_refresh_schedule, reconcile_cdc_schedule, compact_raw_lake_schedule],
            # the raw sensor reports new raw data and requests the refreshes itself (one run
            # per tick, none while one is queued or running): see the README on eager()
            sensors=raw_sensor_definitions(refresh_latest=True),
            resources={"dbt": dbt_resource()},
            # one process per run, not per step: a refresh is two dbt steps and a few dozen
            # quick check steps, and a process per step costs seconds each on a small machine
            executor=dg.in_process_executor,
        ),
        reconciliation_definitions(),
        quality_definitions(),
        sql_optimizer_defs(get_settings()),
    )


defs = build_definitions()
