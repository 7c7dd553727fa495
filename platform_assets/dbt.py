"""dbt models as Dagster assets: one project, split into day-partitioned and whole-table runs.

No `from __future__ import annotations` here: Dagster inspects the context annotation at runtime.
"""

import importlib.metadata
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
from packaging import version

from platform_assets.dbt_project import dbt_project
from platform_assets.partitions import daily_partitions
from platform_assets.raw_assets import raw_asset_key
from platform_assets.settings import get_settings

PARTITIONED_TAG = "partitioned"
LAYER_GROUPS = {"staging": "staging", "intermediate": "staging", "marts": "mart"}

# The shop's SLA: a mart more than 30 minutes behind is critical.
MART_FRESHNESS = dg.FreshnessPolicy.time_window(
    fail_window=timedelta(minutes=30), warn_window=timedelta(minutes=15)
)


class PlatformTranslator(DagsterDbtTranslator):
    """raw sources map onto the raw AssetSpecs; models group by layer; marts carry the
    freshness SLA. No automation conditions: the raw sensor requests refreshes (see README)."""

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


class PlatformDbtCliResource(DbtCliResource):
    """dagster-dbt runs `dbt --version` in every run to tell dbt-core from dbt Fusion; that
    imports every adapter and asks PyPI for releases (10-20 s per run here, and in every run
    pod). The installed dbt-core gives the same answer at once. `_cli_version` is private in
    dagster-dbt 0.29: check it on upgrades (tests/test_pipeline.py does)."""

    @property
    def _cli_version(self) -> version.Version:
        return version.parse(importlib.metadata.version("dbt-core"))


def dbt_resource() -> DbtCliResource:
    return PlatformDbtCliResource(
        project_dir=dbt_project, target=get_settings().resolved_dbt_target
    )
