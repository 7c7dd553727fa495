"""The local instance's run launcher: runs start as forks of the warm server.

Dagster's default launcher asks the code server to start each run, and the code server
spawns a new interpreter for it, which imports Dagster, dagster-dbt and dbt again before the
run's first step: ~5 s of CPU per run on this machine, paid by every refresh the raw sensor
requests. With WARM_SOCKET set (`make dev`, bench.freshness), this launcher sends
`dagster api execute_run` to the warm server (server.py) instead, as the Kubernetes and
Docker launchers send it to a new pod or container; the run is a fork of a process that has
those libraries imported. When no server answers, or WARM_SOCKET is unset, it launches as
`DefaultRunLauncher` does: the server is an optimisation only.

Configured in infra/dagster/local-dagster.yaml (`run_launcher`); deployments on GKE use the
Kubernetes launcher of the Helm chart.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from dagster import _check as check
from dagster._core.launcher import DefaultRunLauncher, LaunchRunContext
from dagster._grpc.types import ExecuteRunArgs
from dagster._serdes import ConfigurableClassData, serialize_value

from platform_assets.warm import client

WARM_PID_TAG = "platform/warm_pid"
CONNECT_TIMEOUT_SECONDS = 5.0


def start_detached(path: str, argv: list[str]) -> int | None:
    """Ask the warm server on `path` to fork `argv` (with this process's environment); its
    pid, or None when none answered."""
    try:
        connection, _stream, answer = client.request(
            path, argv, detach=True, timeout=CONNECT_TIMEOUT_SECONDS
        )
    except OSError:
        return None
    connection.close()
    if not answer.startswith(b"PID "):
        return None
    return int(answer.split()[1])


class WarmRunLauncher(DefaultRunLauncher):
    """`DefaultRunLauncher`, whose runs fork from the warm server when WARM_SOCKET names one."""

    def __init__(self, inst_data: ConfigurableClassData | None = None) -> None:
        super().__init__(inst_data=inst_data)

    @classmethod
    def from_config_value(
        cls, inst_data: ConfigurableClassData, config_value: Mapping[str, Any]
    ) -> WarmRunLauncher:
        return cls(inst_data=inst_data)

    def launch_run(self, context: LaunchRunContext) -> None:
        run = context.dagster_run
        path = os.environ.get("WARM_SOCKET")
        if path and run.job_code_origin is not None:
            arguments = ExecuteRunArgs(
                job_origin=run.job_code_origin,
                run_id=run.run_id,
                instance_ref=self._instance.get_ref(),
                set_exit_code_on_failure=True,
            )
            argv = ["dagster", "api", "execute_run", serialize_value(arguments)]
            pid = start_detached(path, argv)
            if pid is not None:
                self._instance.add_run_tags(run.run_id, {WARM_PID_TAG: str(pid)})
                return
        super().launch_run(context)

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(check.str_param(run_id, "run_id"))
        if run is None or WARM_PID_TAG not in run.tags:
            return super().terminate(run_id)
        if run.is_finished:
            return False
        self._instance.report_run_canceling(run)
        try:  # the run worker turns SIGTERM into an interrupt and records the cancellation
            os.killpg(int(run.tags[WARM_PID_TAG]), signal.SIGTERM)
        except ProcessLookupError:
            return False
        return True
