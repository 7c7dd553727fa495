"""dbt models as Dagster assets: one project, split into day-partitioned and whole-table runs.

No `from __future__ import annotations` here: Dagster inspects the context annotation at runtime.
"""


import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    dbt_assets,
)

from platform_assets.partitions import daily_partitions
from platform_assets.raw_assets import raw_asset_key
from platform_assets.dbt_project import dbt_project
from platform_assets.settings import get_settings

PARTITIONED_TAG = "partitioned"
LAYER_GROUPS = {"staging": "staging", "intermediate": "staging", "marts": "mart"}

# eager() waits until every upstream day partition exists; a whole-table model reading the
# event days must refresh as soon as any of them changes, not only after a full backfill.
WHOLE_TABLE_CONDITION = (
    dg.AutomationCondition.eager()
    .without(~dg.AutomationCondition.any_deps_missing())
    .with_label("eager (upstream day partitions may be missing)")
)




# The shop's SLA: a mart more than 30 minutes behind is critical.
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=15)
)


class PlatformTranslator(DagsterDbtTranslator):
    """raw sources map onto the raw AssetSpecs; models group by layer and refresh eagerly;
    marts carry the freshness SLA."""

    def get_asset_spec(self, manifest, unique_id, project) -> dg.AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        if spec.group_name == "mart":
            return spec.replace_attributes(freshness_policy=MART_FRESHNESS)
        return spec

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return raw_asset_key(dbt_resource_props["name"])
        return dg.AssetKey([self._layer(dbt_resource_props), dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if dbt_resource_props["resource_type"] == "source":
            return "raw"
        return LAYER_GROUPS.get(self._folder(dbt_resource_props), "staging")

    def get_automation_condition(
        self, dbt_resource_props: Mapping[str, Any]
    ) -> dg.AutomationCondition | None:
        if dbt_resource_props["resource_type"] != "model":
            return None
        if PARTITIONED_TAG in dbt_resource_props.get("tags", []):
            return dg.AutomationCondition.eager()
        return WHOLE_TABLE_CONDITION

    @staticmethod
    def _folder(props: Mapping[str, Any]) -> str:
        fqn = props.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else "staging"

    def _layer(self, props: Mapping[str, Any]) -> str:
        return "mart" if self._folder(props) == "marts" else "staging"


translator = PlatformTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


def partition_vars(context: AssetExecutionContext) -> dict[str, str]:
    """The event dates a partitioned run recomputes (inclusive)."""
    window = context.partition_time_window
    return {
        "min_date": window.start.date().isoformat(),
        "max_date": (window.end - timedelta(days=1)).date().isoformat(),
    }


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    select=f"tag:{PARTITIONED_TAG}",
    partitions_def=daily_partitions(),
    backfill_policy=dg.BackfillPolicy.single_run(),
    dagster_dbt_translator=translator,
    name="dbt_event_models",
)
def dbt_event_models(context: AssetExecutionContext, dbt: DbtCliResource):
    """Day-partitioned models: a run (or a single-run backfill) recomputes whole event days."""
    args = ["build", "--vars", json.dumps(partition_vars(context))]
    yield from dbt.cli(args, context=context).stream()


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    exclude=f"tag:{PARTITIONED_TAG}",
    dagster_dbt_translator=translator,
    name="dbt_models",
)
def dbt_models(context: AssetExecutionContext, dbt: DbtCliResource):
    """Current-state staging and the marts, rebuilt as whole tables."""
    yield from dbt.cli(["build"], context=context).stream()


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=dbt_project, target=get_settings().resolved_dbt_target)
