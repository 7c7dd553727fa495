"""Start `python -m devtools.dev` (what `make dev` runs) as a person would, and read the
endpoints it prints; stop it with a signal, as Ctrl-C or `kill` would. Used by the tests of
the live platform (tests/ui) and the read-path soak (bench/read_path)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from devtools.services import ServiceError, free_port
from platform_core.settings import PROJECT_ROOT

REPO = PROJECT_ROOT
UP_TIMEOUT = 900  # a first start on a busy 2-core machine: backfill, Dagster, first build
ENDPOINTS = ("Dagster UI", "collector", "PostgreSQL", "warehouse", "metrics")


@dataclass
class RunningDev:
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


def start_dev(
    data_dir: Path, env: dict[str, str], output: Path, timeout: float = UP_TIMEOUT
) -> RunningDev:
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
    dev = RunningDev(process, data_dir, output, env)
    offset = output.stat().st_size if output.exists() else 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = output.read_text(errors="replace")[offset:]
        if "make dev is up in" in text:
            for line in text.splitlines():
                name, _, value = line.partition(": ")
                if name in ENDPOINTS:
                    dev.endpoints[name] = value
                if line.startswith("make dev is up in"):
                    dev.up_line = line
            return dev
        if process.poll() is not None:
            raise ServiceError(f"make dev exited with {process.returncode}:\n{text[-6000:]}")
        time.sleep(1)
    stop_dev(dev)
    raise ServiceError(f"make dev was not up within {timeout:.0f}s:\n{dev.log()[-6000:]}")


def stop_dev(dev: RunningDev, sig: int = signal.SIGTERM, timeout: float = 120) -> float:
    """Signal the supervisor only (as Ctrl-C or `kill` would); seconds until it exited."""
    started = time.monotonic()
    if dev.process.poll() is None:
        dev.process.send_signal(sig)
        try:
            dev.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(dev.process.pid, signal.SIGKILL)
            dev.process.wait(30)
    return time.monotonic() - started


def isolated_env(
    data_dir: Path, *, events_per_second: float = 0, backfill_days: int = 3
) -> dict[str, str]:
    """This environment minus anything that points elsewhere (a `.env`, another stack),
    with a private data directory and free ports."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DEV_", "PUBSUB_", "SOURCE_DB", "KAFKA_", "DAGSTER_"))
        and key not in ("DATA_DIR", "LAKE_DIR", "DUCKDB_PATH", "MONITORING_DUCKDB_PATH")
    }
    env.update(
        DEV_DATA_DIR=str(data_dir),
        DEV_EVENTS_PER_SECOND=f"{events_per_second:g}",
        DEV_BACKFILL_DAYS=str(backfill_days),
        DAGSTER_UI_URL=f"http://127.0.0.1:{free_port()}",
        COLLECTOR_PORT=str(free_port()),
        PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
    )
    return env


def platform_processes(dev: RunningDev) -> tuple[set[int], set[int]]:
    """The processes below the supervisor and the TCP ports they (and it) listen on."""
    pids = descendants(dev.process.pid)
    return pids, listening_ports(pids | {dev.process.pid})


def left_behind(pids: set[int], ports: set[int]) -> tuple[set[int], set[int]]:
    """Of these processes and ports, those still alive or accepting connections."""
    return alive(pids), {port for port in ports if not refused(port)}


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (by parent links in /proc), whatever its session."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = set(), {pid}
    while frontier:
        children = {child for child, parent in parents.items() if parent in frontier}
        frontier = children - found
        found |= children
    return found


def listening_ports(pids: set[int]) -> set[int]:
    """TCP ports the given processes listen on (from their sockets' inodes)."""
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def alive(pids: set[int]) -> set[int]:
    still = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            still.add(pid)
    return still


def refused(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0
