"""The raw feature: the raw tables as external assets and the sensor that watches them."""

from __future__ import annotations

import dagster as dg

from platform_assets.raw.assets import raw_asset_specs
from platform_assets.raw.sensors import build_raw_sensor
from platform_core.settings import Settings


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=raw_asset_specs("parquet" if settings.is_local else "bigquery"),
        # the sensor reports new raw data and requests the refreshes itself (one run per
        # tick, none while one is queued or running): see the README on eager()
        sensors=[build_raw_sensor(settings, refresh_latest=True)],
    )
