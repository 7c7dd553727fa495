"""The compaction feature: only where the raw layer is the local Parquet lake. BigQuery
manages its own storage, so on GCP this feature adds nothing."""

from __future__ import annotations

import dagster as dg

from platform_assets.compaction.jobs import compact_raw_lake_job, compact_raw_lake_schedule
from platform_assets.resources import PlatformResource
from platform_core.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    if not settings.is_local:
        return dg.Definitions()
    return dg.Definitions(
        jobs=[compact_raw_lake_job],
        schedules=[compact_raw_lake_schedule],
        resources={"platform": PlatformResource.from_settings(settings)},
    )
