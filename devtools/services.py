"""Start the local stand-ins for cloud services (Pub/Sub emulator) as child processes.

Used by the demo, the benchmarks and the tests. Each service runs in its own process group
and is stopped by that group's id only, so nothing else on the machine is touched.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be started."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    host: str, port: int, timeout: float, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(
                f"process exited with {process.returncode} before listening on {port}"
            )
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.2)
    raise ServiceError(f"nothing listened on {host}:{port} within {timeout:.0f}s")


def stop_process_group(
    process: subprocess.Popen, timeout: float = 10, kill_wait: float = 10
) -> int | None:
    """SIGTERM the process group of a process started with `start_new_session`, wait up to
    `timeout` for the whole group to exit (not just its leader: a Dagster run worker still
    recording its end, say), then SIGKILL what is left of it; returns the leader's exit code."""
    group = process.pid
    if process.poll() is None or group_alive(group):
        _signal_group(group, signal.SIGTERM)
        if not _wait_for_group(process, timeout):
            _signal_group(group, signal.SIGKILL)
            _wait_for_group(process, kill_wait)
    return process.returncode


def group_alive(group: int) -> bool:
    """Does any process of the process group still exist?"""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member runs as another user (PostgreSQL): it exists
        return True
    return True


def _signal_group(group: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _wait_for_group(process: subprocess.Popen, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while process.poll() is None or group_alive(process.pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@dataclass
class Service:
    name: str
    process: subprocess.Popen
    host: str
    port: int
    log_path: Path

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 10) -> None:
        stop_process_group(self.process, timeout, kill_wait=timeout)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def pubsub_emulator_jar() -> Path:
    """The emulator jar of the installed Google Cloud CLI (run directly: no gcloud wrapper)."""
    candidates: list[str] = []
    gcloud = shutil.which("gcloud")
    if gcloud:
        sdk_root = Path(os.path.realpath(gcloud)).parent.parent
        candidates += glob.glob(
            str(sdk_root / "platform/pubsub-emulator/lib/cloud-pubsub-emulator-*.jar")
        )
    candidates += glob.glob("/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/*.jar")
    candidates += glob.glob("/usr/share/google-cloud-sdk/platform/pubsub-emulator/lib/*.jar")
    if not candidates:
        raise ServiceError(
            "the Pub/Sub emulator is not installed: "
            "`gcloud components install pubsub-emulator` "
            "(or the google-cloud-cli-pubsub-emulator package)"
        )
    return Path(sorted(candidates)[-1])


def start_pubsub_emulator(
    log_dir: Path, port: int | None = None, host: str = "127.0.0.1", timeout: float = 60
) -> Service:
    """The official Pub/Sub emulator on loopback; set PUBSUB_EMULATOR_HOST to its address."""
    java = shutil.which("java")
    if java is None:
        raise ServiceError("the Pub/Sub emulator needs Java 17 (`java` is not on PATH)")
    port = port or free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"pubsub-emulator-{port}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [
                java,
                "-Xmx512m",
                "-jar",
                str(pubsub_emulator_jar()),
                f"--host={host}",
                f"--port={port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    service = Service("pubsub-emulator", process, host, port, log_path)
    try:
        wait_for_port(host, port, timeout, process)
    except ServiceError as error:
        service.stop()
        raise ServiceError(f"Pub/Sub emulator: {error}; see {log_path}") from None
    return service
