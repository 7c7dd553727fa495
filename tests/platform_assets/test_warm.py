"""The warm server: a dbt invocation through it behaves as the dbt process it replaces (the
expected outputs come from the real dbt, run as its own process in the same test), and a
Dagster run launched through it executes in a fork of it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from platform_assets.dbt.assets import warm_dbt_executable
from platform_assets.warm.launcher import WARM_PID_TAG, WarmRunLauncher, start_detached
from platform_core.settings import DBT_PROJECT_DIR
from tests.platform_assets.warm_jobs import warm_probe_job

REAL_DBT = str(Path(sys.executable).parent / "dbt")


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="warm-test-"))  # short: a Unix socket path
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def server(socket_dir: Path, dbt_manifest: Path) -> Iterator[tuple[subprocess.Popen, Path]]:
    socket = socket_dir / "dbt.sock"
    log = socket_dir / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "platform_assets.warm.server", "--socket", str(socket)]
            + ["--dbt-project", str(DBT_PROJECT_DIR)],  # as make dev starts it
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 180
    while not socket.exists():
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the warm dbt server did not start"
        time.sleep(0.1)
    # it parsed the project before serving, and its invocations are still dbt's (below)
    assert "warm: dbt warm-up done" in log.read_text()
    yield process, socket
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def dbt(executable: str, *args: str, target: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DBT_TARGET_PATH": str(target), "DBT_LOG_PATH": str(target)}
    return subprocess.run(
        [executable, *args],
        cwd=DBT_PROJECT_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_an_invocation_through_the_server_answers_as_dbt_does(server, socket_dir):
    _process, socket = server
    warm = str(warm_dbt_executable(socket))
    args = ("ls", "--select", "stg_events+", "--resource-type", "model", "--output", "name")
    expected = dbt(REAL_DBT, *args, "--quiet", target=socket_dir / "cold")
    got = dbt(warm, *args, "--quiet", target=socket_dir / "warm")
    assert expected.returncode == 0, expected.stdout + expected.stderr
    assert got.returncode == 0, got.stdout + got.stderr
    names = sorted(got.stdout.split())
    assert names == sorted(expected.stdout.split()) and "mart_conversion_funnel" in names
    # dbt's JSON log lines, as dagster-dbt reads them, come through line by line
    logged = dbt(warm, *args, "--log-format", "json", target=socket_dir / "warm")
    assert logged.returncode == 0
    assert all(line.startswith("{") for line in logged.stdout.splitlines())
    assert '"name": "MainReportVersion"' in logged.stdout
    # a failing invocation keeps its exit code (a usage error: click's 2)
    bad = ("ls", "--no-such-flag")
    assert dbt(warm, *bad, target=socket_dir / "warm").returncode == (
        dbt(REAL_DBT, *bad, target=socket_dir / "cold").returncode
    )
    assert dbt(warm, *bad, target=socket_dir / "warm").returncode != 0


def test_without_a_server_the_executable_runs_the_real_dbt(socket_dir, dbt_manifest):
    warm = str(warm_dbt_executable(socket_dir / "nobody-listens.sock"))
    args = ("ls", "-s", "stg_events", "--resource-type", "model", "--output", "name", "--quiet")
    got = dbt(warm, *args, target=socket_dir / "fallback")
    assert got.returncode == 0, got.stdout + got.stderr
    assert got.stdout.split() == ["stg_events"]


def test_the_server_stops_on_sigterm_and_removes_its_socket(server):
    process, socket = server
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(30) == 0
    assert not socket.exists()


def test_a_run_launched_through_the_server_executes_in_a_fork_of_it(server, monkeypatch):
    from dagster._core.launcher import LaunchRunContext

    process, socket = server
    monkeypatch.setenv("WARM_SOCKET", str(socket))
    recon = dg.reconstructable(warm_probe_job)
    with dg.instance_for_test() as instance:
        run = instance.create_run_for_job(
            job_def=warm_probe_job(), job_code_origin=recon.get_python_origin()
        )
        launcher = WarmRunLauncher()
        launcher.register_instance(instance)
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        deadline = time.monotonic() + 120
        while not instance.get_run_by_id(run.run_id).is_finished:
            assert time.monotonic() < deadline, "the run did not finish"
            time.sleep(0.5)
        finished = instance.get_run_by_id(run.run_id)
        assert finished.status == dg.DagsterRunStatus.SUCCESS
        (record,) = instance.fetch_materializations(dg.AssetKey("warm_probe"), limit=1).records
        metadata = record.asset_materialization.metadata
        assert metadata["parent"].value == process.pid  # forked by the server
        assert str(metadata["pid"].value) == finished.tags[WARM_PID_TAG]


def test_a_launch_without_an_answering_server_is_left_to_the_default_launcher(socket_dir):
    assert start_detached(str(socket_dir / "nobody.sock"), ["dagster", "--version"]) is None
