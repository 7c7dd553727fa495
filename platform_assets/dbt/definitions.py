"""The dbt feature: staging and mart models as assets, the daily refresh job and schedule,
and the dbt CLI resource pointed at this deployment's target."""

from __future__ import annotations

import dagster as dg

from platform_assets.dbt.assets import dbt_event_models, dbt_models, dbt_resource
from platform_assets.reconciliation.checks import reconciliation_checks
from platform_assets.warehouse_runs import warehouse_tags
from platform_core.settings import Settings

# The reconciliation needs the source database and a drained stream: it runs on its own
# (platform_assets/reconciliation), never along with a refresh.
DBT_ASSETS = dg.AssetSelection.assets(dbt_event_models, dbt_models) - dg.AssetSelection.checks(
    *reconciliation_checks()
)


def build_defs(settings: Settings) -> dg.Definitions:
    daily_refresh = dg.define_asset_job(
        "daily_refresh",
        selection=DBT_ASSETS,
        tags=warehouse_tags(),
        description="Rebuild the day's event partition and every staging and mart table.",
    )
    return dg.Definitions(
        assets=[dbt_event_models, dbt_models],
        jobs=[daily_refresh],
        schedules=[
            dg.build_schedule_from_partitioned_job(
                daily_refresh,
                hour_of_day=1,
                minute_of_hour=15,
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        ],
        resources={"dbt": dbt_resource(settings)},
    )
