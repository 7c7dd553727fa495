"""The reconciliation feature: staging's CDC current state compared with the shop's
PostgreSQL every 30 minutes, as asset checks on the staging tables."""

from __future__ import annotations

import dagster as dg

from platform_assets.reconciliation.checks import (
    RESOURCE_KEY,
    CdcSourceResource,
    reconciliation_checks,
)
from platform_assets.warehouse_runs import warehouse_tags
from platform_core.settings import Settings

RECONCILIATION = dg.AssetSelection.checks(*reconciliation_checks())


def build_defs(settings: Settings) -> dg.Definitions:
    job = dg.define_asset_job(
        "reconcile_cdc",
        selection=RECONCILIATION,
        tags=warehouse_tags(),
        description="Compare the staging current state with the shop's PostgreSQL.",
    )
    return dg.Definitions(
        asset_checks=reconciliation_checks(),
        jobs=[job],
        schedules=[
            dg.ScheduleDefinition(
                job=job,
                cron_schedule="*/30 * * * *",
                default_status=dg.DefaultScheduleStatus.RUNNING,
            )
        ],
        resources={RESOURCE_KEY: CdcSourceResource.from_settings(settings)},
    )
