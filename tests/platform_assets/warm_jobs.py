"""A job the warm-server tests launch: it records which process ran it and that process's
parent (a run forked from the warm server has the server as its parent)."""

from __future__ import annotations

import os

import dagster as dg


@dg.asset
def warm_probe() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"pid": os.getpid(), "parent": os.getppid()})


def warm_probe_job() -> dg.JobDefinition:
    return dg.Definitions(
        assets=[warm_probe],
        jobs=[dg.define_asset_job("warm_probe_job", executor_def=dg.in_process_executor)],
    ).resolve_job_def("warm_probe_job")
