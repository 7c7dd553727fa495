"""Dagster for `make dev`: its own instance under the dev data directory, `dagster dev`
(webserver, daemon, code server) as a supervised child, and the first build launched the
way a person would, through the webserver's GraphQL API, so it shows in the UI."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import dagster as dg
import httpx
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
)
from dagster_graphql import DagsterGraphQLClient

from devtools.cdc.processes import ChildProcess, spawn
from devtools.services import ServiceError
from platform_core.settings import DBT_PROJECT_DIR, PROJECT_ROOT

INSTANCE_TEMPLATE = PROJECT_ROOT / "infra" / "dagster" / "local-dagster.yaml"
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
LOCATION = "platform_assets"
INITIAL_BUILD_JOB = "daily_refresh"
STALE_STATUSES = (
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
)
LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries {
    name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def prepare_instance(home: Path) -> int:
    """Write the instance config (the template is the source: edit it there) and fail the
    runs a previous `make dev` left in flight when it stopped (they would hold the warehouse
    pool and block every refresh); returns how many."""
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(INSTANCE_TEMPLATE, home / "dagster.yaml")
    failed = 0
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs(filters=dg.RunsFilter(statuses=list(STALE_STATUSES))):
            instance.report_run_failed(run, "make dev stopped while this run was in flight")
            failed += 1
    return failed


def start_warm_server(log_dir: Path) -> tuple[ChildProcess, Path]:
    """The warm process server (platform_assets/warm) and its socket, which the code
    location's runs and dbt steps fork from once WARM_SOCKET names it. The socket lives in a short
    private directory: Unix socket paths are limited to ~100 bytes, data directories not."""
    socket = Path(tempfile.mkdtemp(prefix="warm-")) / "warm.sock"
    args = ["--socket", str(socket), "--dbt-project", str(DBT_PROJECT_DIR)]
    child = spawn("warm", "platform_assets.warm.server", args, log_dir)
    return child, socket


def start_dagster(host: str, port: int, log_dir: Path, env: dict[str, str]) -> ChildProcess:
    """`dagster dev`: the webserver on host:port, the daemon (sensors, schedules, run queue,
    freshness), the code location in a process of its own; runs in their own processes."""
    args = ["dev", "-w", str(WORKSPACE), "-h", host, "-p", str(port)]
    return spawn("dagster", "dagster", args, log_dir, env)


@dataclass
class DagsterUI:
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self) -> DagsterGraphQLClient:
        return DagsterGraphQLClient(self.host, port_number=self.port, timeout=60)

    def wait_until_loaded(
        self, timeout: float, alive: Callable[[], bool], log_tail: Callable[[], str]
    ) -> None:
        """Until the webserver answers and the code location has loaded without error."""
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if not alive():
                raise ServiceError(f"dagster dev exited:\n{log_tail()}")
            try:
                answer = httpx.post(
                    f"{self.url}/graphql", json={"query": LOCATION_QUERY}, timeout=10
                ).json()
                entries = answer["data"]["workspaceOrError"]["locationEntries"]
                entry = next(e for e in entries if e["name"] == LOCATION)
                loaded = entry["locationOrLoadError"]
                if entry["loadStatus"] == "LOADED" and loaded is not None:
                    if loaded["__typename"] == "PythonError":
                        message = loaded["message"]
                        raise ServiceError(f"the code location failed to load:\n{message}")
                    return
                last = entry["loadStatus"]
            except (httpx.HTTPError, KeyError, TypeError, StopIteration, ValueError) as error:
                last = f"{type(error).__name__}: {error}"
            time.sleep(1)
        raise ServiceError(f"the Dagster UI was not ready within {timeout:.0f}s ({last})")

    def launch_build(self, first_day: date, last_day: date) -> str:
        """Every staging and mart table over the event days first_day..last_day, in one run
        (the daily refresh job, single-run backfill of the day-partitioned models)."""
        return self.client().submit_job_execution(
            INITIAL_BUILD_JOB,
            repository_location_name=LOCATION,
            repository_name="__repository__",
            tags={
                ASSET_PARTITION_RANGE_START_TAG: first_day.isoformat(),
                ASSET_PARTITION_RANGE_END_TAG: last_day.isoformat(),
                "launched_by": "make dev (first build)",
                "dagster/priority": "10",  # ahead of the sensor's refreshes in the queue
            },
        )

    def wait_for_run(self, run_id: str, timeout: float, stopping: Callable[[], bool]) -> str:
        """The run's final status (SUCCESS, FAILURE, CANCELED) once it has one."""
        deadline = time.monotonic() + timeout
        client = self.client()
        while time.monotonic() < deadline and not stopping():
            status = client.get_run_status(run_id)
            if status.value in ("SUCCESS", "FAILURE", "CANCELED"):
                return status.value
            time.sleep(2)
        return "UNFINISHED"
