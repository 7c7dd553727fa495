"""Start and stop `python -m devtools.dev` (what `make dev` runs) as a person would, and read
the endpoints it prints. Used by this folder's conftest and tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.services import free_port

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
UP_TIMEOUT = 900  # a first start on a busy 2-core machine: backfill, Dagster, first build
ENDPOINTS = ("Dagster UI", "collector", "PostgreSQL", "warehouse", "metrics")


@dataclass
class LivePlatform:
    """A running `python -m devtools.dev` and what it printed."""

    process: subprocess.Popen
    data_dir: Path
    output: Path
    env: dict[str, str]
    endpoints: dict[str, str] = field(default_factory=dict)
    up_line: str = ""

    @property
    def ui(self) -> str:
        return self.endpoints["Dagster UI"]

    @property
    def collector(self) -> str:
        return self.endpoints["collector"].split()[0]

    @property
    def dsn(self) -> str:
        return self.endpoints["PostgreSQL"]

    @property
    def read_path(self) -> Path:
        path = Path(self.endpoints["warehouse"].split()[0])
        return path if path.is_absolute() else REPO / path

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def start_platform(data_dir: Path, env: dict[str, str], output: Path) -> LivePlatform:
    """`python -m devtools.dev` in its own session; returns once it printed its endpoints."""
    handle = open(output, "ab")  # noqa: SIM115 - the child writes to it for its whole life
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.dev"],
        cwd=REPO,
        env=env,
        stdout=handle,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    handle.close()
    platform = LivePlatform(process, data_dir, output, env)
    offset = output.stat().st_size if output.exists() else 0
    deadline = time.monotonic() + UP_TIMEOUT
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace")[offset:]
        if "make dev is up in" in text:
            for line in text.splitlines():
                name, _, value = line.partition(": ")
                if name in ENDPOINTS:
                    platform.endpoints[name] = value
                if line.startswith("make dev is up in"):
                    platform.up_line = line
            return platform
        if process.poll() is not None:
            raise AssertionError(f"make dev exited with {process.returncode}:\n{text[-6000:]}")
        time.sleep(1)
    stop_platform(platform)
    raise AssertionError(f"make dev was not up within {UP_TIMEOUT}s:\n{platform.log()[-6000:]}")


def stop_platform(platform: LivePlatform, sig: int = signal.SIGTERM, timeout: float = 120) -> float:
    """Signal the supervisor only (as Ctrl-C or `kill` would); seconds until it exited."""
    started = time.monotonic()
    if platform.process.poll() is None:
        platform.process.send_signal(sig)
        try:
            platform.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(platform.process.pid, signal.SIGKILL)
            platform.process.wait(30)
    return time.monotonic() - started


def platform_env(data_dir: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEV_", "PUBSUB_", "SOURCE_DB", "KAFKA_", "DAGSTER_"))
        and key not in ("DATA_DIR", "LAKE_DIR", "DUCKDB_PATH", "MONITORING_DUCKDB_PATH")
    }
    env.update(
        DEV_DATA_DIR=str(data_dir),
        DEV_EVENTS_PER_SECOND="0",
        DEV_BACKFILL_DAYS="3",
        DAGSTER_UI_URL=f"http://127.0.0.1:{free_port()}",
        COLLECTOR_PORT=str(free_port()),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    return env
