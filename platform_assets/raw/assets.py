"""The raw layer as external assets: written by the collector/Beam/CDC path, not by Dagster.

Each raw table is an AssetSpec with its description, columns, kind (parquet locally, bigquery
on GCP) and owner, so the asset graph shows raw -> staging -> mart with who answers for each.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from platform_core.raw.schema import RAW_TABLES, RawTable

RAW_GROUP = "raw"
RAW_OWNERS = ["team:data-platform"]  # the collector, Beam and CDC path that writes raw


def raw_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["raw", table])


# Lateness starts here: events more than 30 minutes behind break the marts' SLA too.
RAW_EVENTS_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=30))


def _spec(table: RawTable, storage_kind: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=raw_asset_key(table.name),
        description=table.description,
        group_name=RAW_GROUP,
        kinds={storage_kind},
        owners=RAW_OWNERS,
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(c.name, c.bq_type.lower(), description=c.description)
                    for c in table.columns
                ]
            ),
            "partitioned_by": table.partition_column,
        },
        tags={"layer": "raw"},
        freshness_policy=RAW_EVENTS_FRESHNESS if table.name == "events" else None,
    )


def raw_asset_specs(storage_kind: str = "parquet") -> list[dg.AssetSpec]:
    return [_spec(table, storage_kind) for table in RAW_TABLES.values()]
