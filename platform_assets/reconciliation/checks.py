"""CDC reconciliation as a Dagster asset check on the staging current-state tables.

One multi-asset check evaluates stg_users, stg_products, stg_orders and stg_order_items
against the shop's source database (streaming/cdc/reconcile.py): row counts and a checksum of
every compared column, with the differing keys listed when they disagree. It first makes
sure the stream has drained (capture confirmed the database's WAL position, bridge caught up
with Kafka, staging built after the last raw CDC row); until then it reports "not drained" as
a warning, never as a difference.

No `from __future__ import annotations` here: Dagster inspects the context annotation.
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
import psycopg

from platform_assets.resources import PlatformResource, reveal, secret
from platform_core.raw.schema import CDC_KEY_COLUMNS
from platform_core.settings import ServiceUnavailable, Settings, resolve_source_db_dsn
from streaming.cdc.kafka import KafkaUnavailable, resolve_bootstrap
from streaming.cdc.reconcile import (
    BigQueryWarehouse,
    DrainStatus,
    DuckDBWarehouse,
    Reconciliation,
    Warehouse,
    reconcile,
)

CDC_TABLES = tuple(CDC_KEY_COLUMNS)
RESOURCE_KEY = "cdc_source"


def staging_asset_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", f"stg_{table}"])


class CdcSourceResource(dg.ConfigurableResource):
    """The shop's source database and the CDC path that feeds the warehouse from it.

    `dsn` is SOURCE_DB_DSN by name (a secret: the UI shows the variable, not the value);
    empty means the local source database of the dev stack, found through its DSN file under
    DATA_DIR, like `kafka_bootstrap` and the local Kafka's address file.
    """

    platform: PlatformResource
    dsn: str = ""
    slot_name: str = "shop_cdc"
    kafka_bootstrap: str = ""
    bridge_group: str = "cdc-bridge"
    topic_prefix: str = "shop"
    check_kafka: bool = True
    drain_timeout_seconds: float = 30.0
    max_listed_keys: int = 20

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> "CdcSourceResource":
        values: dict[str, Any] = {
            "platform": PlatformResource.from_settings(settings),
            "dsn": secret(settings.source_db_dsn, "SOURCE_DB_DSN"),
            "kafka_bootstrap": settings.kafka_bootstrap_servers,
            "topic_prefix": settings.cdc_topic_prefix,
        }
        return cls(**(values | overrides))

    def resolved_dsn(self) -> str:
        return resolve_source_db_dsn(self.platform.settings(), reveal(self.dsn) or None)

    def resolved_bootstrap(self) -> str | None:
        if not self.check_kafka:
            return None
        try:
            return resolve_bootstrap(self.platform.settings(), self.kafka_bootstrap or None)
        except KafkaUnavailable:
            return None


def warehouse_for_settings(settings: Settings) -> Warehouse:
    if settings.is_local:
        # the read snapshot dbt publishes (a reader of dbt's own file would block refreshes)
        return DuckDBWarehouse(settings.warehouse_read_path, settings.lake_path)
    from google.cloud import bigquery

    client = bigquery.Client(project=settings.gcp_project, location=settings.bq_location)
    return BigQueryWarehouse(client, settings.gcp_project, "staging", settings.bq_raw_dataset)


def _staging_built_at(context: dg.AssetCheckExecutionContext) -> dict[str, datetime] | None:
    """When the run of each staging table's latest build started (None: one was never built,
    so nothing can be said about being current)."""
    instance = context.instance
    built: dict[str, datetime] = {}
    for table in CDC_TABLES:
        event = instance.get_latest_materialization_event(staging_asset_key(table))
        if event is None:
            return None
        started = event.timestamp
        record = instance.get_run_record_by_id(event.run_id) if event.run_id else None
        if record is not None and record.start_time:
            started = record.start_time
        built[table] = datetime.fromtimestamp(started, tz=UTC)
    return built


def check_results(outcome: Reconciliation) -> list[dg.AssetCheckResult]:
    """One result per staging table from a reconciliation."""
    results = []
    drain = outcome.drain
    for table in CDC_TABLES:
        key = staging_asset_key(table)
        metadata: dict[str, Any] = {
            f"drain_{k}": dg.MetadataValue.text(str(v)) for k, v in drain.facts.items()
        }
        if not drain.drained:
            results.append(
                dg.AssetCheckResult(
                    asset_key=key,
                    check_name="reconciles_with_source",
                    passed=False,
                    severity=dg.AssetCheckSeverity.WARN,
                    description=f"not drained: {drain.reason}; nothing compared",
                    metadata={"status": dg.MetadataValue.text("not drained"), **metadata},
                )
            )
            continue
        result = outcome.tables[table]
        metadata.update(
            {
                "status": dg.MetadataValue.text("match" if result.matches else "differences"),
                "source_rows": dg.MetadataValue.int(result.source_rows),
                "warehouse_rows": dg.MetadataValue.int(result.warehouse_rows),
                "source_checksum": dg.MetadataValue.text(result.source_checksum),
                "warehouse_checksum": dg.MetadataValue.text(result.warehouse_checksum),
                "differences": dg.MetadataValue.int(result.differences),
            }
        )
        if not result.matches:
            metadata["missing_in_warehouse"] = dg.MetadataValue.json(result.missing_in_warehouse)
            metadata["extra_in_warehouse"] = dg.MetadataValue.json(result.extra_in_warehouse)
            metadata["different_values"] = dg.MetadataValue.json(result.different)
        description = (
            f"{result.source_rows} rows, checksums equal"
            if result.matches
            else f"{result.differences} differing keys: {len(result.missing_in_warehouse)} listed "
            f"missing, {len(result.extra_in_warehouse)} extra, {len(result.different)} different"
        )
        results.append(
            dg.AssetCheckResult(
                asset_key=key,
                check_name="reconciles_with_source",
                passed=result.matches,
                severity=dg.AssetCheckSeverity.ERROR,
                description=description,
                metadata=metadata,
            )
        )
    return results


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(
            "reconciles_with_source",
            asset=staging_asset_key(table),
            description=(
                f"stg_{table} equals the source database's {table} table (row count and "
                "checksum of every column), once the CDC stream has drained"
            ),
            blocking=False,
        )
        for table in CDC_TABLES
    ],
    required_resource_keys={RESOURCE_KEY},
    name="cdc_reconciliation",
    can_subset=True,
)
def cdc_reconciliation(context: dg.AssetCheckExecutionContext):
    source: CdcSourceResource = getattr(context.resources, RESOURCE_KEY)
    try:
        outcome = reconcile(
            dsn=source.resolved_dsn(),
            warehouse=warehouse_for_settings(source.platform.settings()),
            tables=CDC_TABLES,
            slot=source.slot_name,
            kafka_bootstrap=source.resolved_bootstrap(),
            bridge_group=source.bridge_group,
            topic_prefix=source.topic_prefix,
            staging_built_at=_staging_built_at(context),
            drain_timeout=source.drain_timeout_seconds,
            max_keys=source.max_listed_keys,
        )
    except (ServiceUnavailable, psycopg.OperationalError) as error:
        reason = f"source database unreachable: {str(error).strip().splitlines()[0][:300]}"
        outcome = Reconciliation(DrainStatus(False, reason), {})
    context.log.info(
        "reconciliation: %s; %s",
        outcome.drain.reason,
        {t: (r.source_rows, r.warehouse_rows, r.matches) for t, r in outcome.tables.items()},
    )
    selected = context.selected_asset_check_keys
    for result in check_results(outcome):
        if dg.AssetCheckKey(result.asset_key, result.check_name) in selected:
            yield result


def reconciliation_checks() -> list[dg.AssetChecksDefinition]:
    return [cdc_reconciliation]
