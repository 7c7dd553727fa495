"""Partitions shared by the event assets, their schedule and their sensors."""

from __future__ import annotations

from functools import cache

import dagster as dg

from platform_core.settings import get_settings


@cache
def daily_partitions() -> dg.DailyPartitionsDefinition:
    # end_offset=1: today's partition exists, because events stream in all day
    return dg.DailyPartitionsDefinition(
        start_date=get_settings().partition_start_date.isoformat(), timezone="UTC", end_offset=1
    )
