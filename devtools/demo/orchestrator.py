"""Dagster, driven in-process by the demo: the raw sensor's ticks and the runs they request,
stored in the instance under DAGSTER_HOME so `make ui` shows them."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import dagster as dg

from devtools.demo.console import say
from platform_assets.dbt.definitions import DBT_ASSETS
from platform_assets.definitions import build_definitions, platform_assets
from platform_assets.quality.checks import quality_asset_checks
from platform_assets.raw.sensors import SENSOR_NAME
from platform_assets.reconciliation.checks import reconciliation_checks
from platform_assets.reconciliation.definitions import RECONCILIATION
from platform_core.settings import Settings, get_settings


@dataclass(frozen=True)
class CodeLocation:
    """What the demo uses of the code location."""

    defs: dg.Definitions
    assets: list[Any]  # assets and every check, materialized together
    sensor_name: str
    dbt_assets: dg.AssetSelection
    reconciliation: dg.AssetSelection


def load_code_location(settings: Settings) -> CodeLocation:
    """The code location built for these settings: the demo calls it once SOURCE_DB_DSN and
    KAFKA_BOOTSTRAP_SERVERS point at the stack it started."""
    return CodeLocation(
        defs=build_definitions(settings),
        assets=[
            *platform_assets(settings),
            *quality_asset_checks(),
            *reconciliation_checks(),
        ],
        sensor_name=SENSOR_NAME,
        dbt_assets=DBT_ASSETS,
        reconciliation=RECONCILIATION,
    )


class Orchestrator:
    """Dagster, driven in-process: the raw sensor's ticks and the runs they request, stored in
    the instance under DAGSTER_HOME so `make ui` shows them."""

    def __init__(self, instance: dg.DagsterInstance, settings: Settings) -> None:
        self.instance = instance
        self.location = load_code_location(settings)
        self.defs = self.location.defs
        self.assets = self.location.assets
        self.sensor = self.defs.resolve_sensor_def(self.location.sensor_name)
        self.cursor: str | None = None
        self.results: list[dg.ExecuteInProcessResult] = []

    def run(
        self,
        *,
        selection: dg.AssetSelection | None = None,
        partition_key: str | None = None,
        tags: dict[str, str] | None = None,
        quiet: bool = True,
    ) -> dg.ExecuteInProcessResult:
        # dbt's own progress goes to a log file; the demo prints one line per run
        log_path = get_settings().data_path / "logs" / "dagster-runs.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "a") as log, contextlib.redirect_stdout(log):
            return self._run(selection, partition_key, tags, quiet)

    def _run(
        self,
        selection: dg.AssetSelection | None,
        partition_key: str | None,
        tags: dict[str, str] | None,
        quiet: bool,
    ) -> dg.ExecuteInProcessResult:
        result = dg.materialize(
            self.assets,
            instance=self.instance,
            resources=self.defs.resources,
            selection=selection,
            partition_key=partition_key,
            tags={"launched_by": "make demo", **(tags or {})},
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
            if quiet
            else None,
        )
        self.results.append(result)
        return result

    def tick(self) -> dg.SensorResult:
        context = dg.build_sensor_context(
            instance=self.instance, cursor=self.cursor, definitions=self.defs
        )
        result = self.sensor(context)
        self.cursor = result.cursor or self.cursor
        for event in result.asset_events or []:
            self.instance.report_runless_asset_event(event)
        return result

    def refresh_until_quiet(self, max_ticks: int = 6) -> int:
        """Tick the sensor and run what it asks for until it asks for nothing more."""
        runs = 0
        for _ in range(max_ticks):
            result = self.tick()
            requests = list(result.run_requests or [])
            reported = [e.asset_key.to_user_string() for e in result.asset_events or []]
            if not requests and not reported:
                return runs
            if reported:
                say(f"      sensor: new data in {', '.join(reported)}")
            for request in requests:
                self._run_request(request)
                runs += 1
        return runs

    def _run_request(self, request: dg.RunRequest) -> None:
        keys = sorted(k.to_user_string() for k in request.asset_selection or [])
        what = request.partition_key or "whole tables"
        say(f"      sensor -> run: {len(keys)} assets ({what})")
        selection = dg.AssetSelection.assets(*request.asset_selection).without_checks()
        if request.asset_check_keys:
            selection |= dg.AssetSelection.checks(*request.asset_check_keys)
        result = self.run(
            selection=selection, partition_key=request.partition_key, tags=request.tags
        )
        say(
            f"      run {result.run_id[:8]}: "
            f"{'succeeded' if result.success else 'FAILED'}, "
            f"{len(result.get_asset_materialization_events())} materializations, "
            f"{len(result.get_asset_check_evaluations())} checks"
        )


def failing_checks(
    results: Sequence[dg.ExecuteInProcessResult], severity: dg.AssetCheckSeverity | None = None
) -> list[str]:
    """Checks whose latest evaluation in these runs failed (with this severity, if given)."""
    latest: dict[str, dg.AssetCheckEvaluation] = {}
    for result in results:
        for e in result.get_asset_check_evaluations():
            latest[f"{e.asset_key.to_user_string()}:{e.check_name}"] = e
    return sorted(
        key
        for key, e in latest.items()
        if not e.passed and (severity is None or e.severity == severity)
    )
