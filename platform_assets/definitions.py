"""The Dagster code location: raw -> staging -> mart, with schedules, sensors and checks.

Each feature folder exposes its definitions the same way, `build_defs(settings)`, with the
environment decided here, when the code location loads; this module only merges them.
"""

from __future__ import annotations

import dagster as dg

from platform_assets.compaction import definitions as compaction
from platform_assets.dbt import definitions as dbt
from platform_assets.genai.sql_optimizer import definitions as sql_optimizer
from platform_assets.quality import definitions as quality
from platform_assets.raw import definitions as raw
from platform_assets.reconciliation import definitions as reconciliation
from platform_core.settings import Settings, get_settings

FEATURES = (raw, dbt, reconciliation, compaction, quality, sql_optimizer)


def build_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions.merge(
        *(feature.build_defs(settings) for feature in FEATURES),
        dg.Definitions(
            # one process per run, not per step: a refresh is two dbt steps and a few dozen
            # quick check steps, and a process per step costs seconds each on a small machine
            executor=dg.in_process_executor,
        ),
    )


def platform_assets(settings: Settings | None = None) -> list[dg.AssetSpec | dg.AssetsDefinition]:
    """The raw specs and the dbt assets (for tools that build their own `Definitions`)."""
    settings = settings or get_settings()
    return [*raw.build_defs(settings).assets, *dbt.build_defs(settings).assets]


defs = build_definitions(get_settings())
