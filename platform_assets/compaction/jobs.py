"""Compaction of the local raw lake as a Dagster job, on a schedule.

A job, not an asset: compaction produces no new dataset, it rewrites the layout of the raw
tables with the same rows. It records an AssetObservation per raw table it touched (files
before/after, rows, bytes), which never triggers downstream refreshes. Its op is in the
warehouse pool shared with the dbt assets (platform_assets.warehouse_runs), so the local
instance's limit of one run per pool keeps compaction from deleting files a dbt query is
about to open.
On BigQuery there is nothing to do (BigQuery manages its storage); the op says so.

No `from __future__ import annotations`: Dagster inspects the op's context annotation.
"""

import dagster as dg

from platform_assets.raw.assets import raw_asset_key
from platform_assets.resources import PlatformResource
from platform_assets.warehouse_runs import WAREHOUSE_POOL, warehouse_tags
from platform_core.raw.schema import RAW_TABLES
from streaming.raw.compaction import DEFAULT_TARGET_BYTES, compact_lake


class CompactionConfig(dg.Config):
    tables: list[str] = []  # empty: every raw table
    min_age_seconds: float = -1  # < 0: COMPACTION_MIN_AGE_SECONDS (default 600)
    target_mb: int = DEFAULT_TARGET_BYTES // (1024 * 1024)


@dg.op(
    description="Merge each raw partition's small Parquet files older than the grace period.",
    pool=WAREHOUSE_POOL,  # never while dbt reads the files it rewrites
)
def compact_lake_files(
    context: dg.OpExecutionContext, config: CompactionConfig, platform: PlatformResource
) -> dict:
    settings = platform.settings()
    if not settings.is_local:
        context.log.info("BigQuery raw tables need no compaction; nothing to do.")
        return {}
    unknown = set(config.tables) - set(RAW_TABLES)
    if unknown:
        raise dg.Failure(f"unknown raw tables: {sorted(unknown)}")
    min_age = (
        config.min_age_seconds
        if config.min_age_seconds >= 0
        else settings.compaction_min_age.total_seconds()
    )
    report = compact_lake(
        settings.lake_path,
        config.tables or None,
        min_age_seconds=min_age,
        target_bytes=config.target_mb * 1024 * 1024,
    )
    summary = report.summary()
    for table, stats in summary.items():
        if not stats["partitions_compacted"]:
            continue
        parts = [r.partition for r in report.for_table(table) if r.outputs]
        context.log_event(
            dg.AssetObservation(
                asset_key=raw_asset_key(table),
                description="compacted small files (same rows)",
                metadata={
                    "partitions_compacted": dg.MetadataValue.json(parts),
                    "files_in": stats["files_in"],
                    "files_out": stats["files_out"],
                    "rows_rewritten": stats["rows"],
                    "bytes_before": stats["bytes_before"],
                    "bytes_after": stats["bytes_after"],
                },
            )
        )
    skipped = [r for r in report.results if r.skipped and "another compaction" in r.skipped]
    for r in skipped:
        context.log.warning(f"{r.table}/{r.partition}: {r.skipped}")
    context.log.info(f"compaction: {summary or 'nothing to compact'}")
    return summary


@dg.job(
    name="compact_raw_lake",
    tags=warehouse_tags(),
    description="Compact the local raw lake (row-preserving; safe while writers append).",
)
def compact_raw_lake_job():
    compact_lake_files()


compact_raw_lake_schedule = dg.ScheduleDefinition(
    name="compact_raw_lake_every_30_minutes",
    job=compact_raw_lake_job,
    cron_schedule="7,37 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)
