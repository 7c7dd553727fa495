"""Run the local CDC stack as child processes: mock Kafka, the capture, the bridge.

Each runs in its own process group (start_new_session) and is stopped by that group's id only:
`stop()` sends SIGTERM (graceful: flush, commit, confirm) and SIGKILLs after a timeout;
`kill()` is the crash: SIGKILL at once. Used by the tests, the benchmark and the demo.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from devtools.services import ServiceError, stop_process_group


@dataclass
class ChildProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM, wait up to `timeout`, then SIGKILL the process group."""
        return stop_process_group(self.process, timeout, kill_wait=30)

    def kill(self) -> None:
        """SIGKILL the process group at once (a crash)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def spawn(
    name: str, module: str, args: list[str], log_dir: Path, env: dict[str, str] | None = None
) -> ChildProcess:
    """`python -m module args...` in its own process group, output appended to a log file."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return ChildProcess(name, process, log_path)


@dataclass
class KafkaService:
    child: ChildProcess
    bootstrap: str
    address_file: Path

    @property
    def address(self) -> str:
        return self.bootstrap

    def stop(self, timeout: float = 10) -> None:
        self.child.stop(timeout)

    def __enter__(self) -> KafkaService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_mock_kafka(
    log_dir: Path, address_file: Path | None = None, timeout: float = 30
) -> KafkaService:
    """`python -m devtools.cdc.mock_kafka` as a child process; returns once it is up."""
    address_file = address_file or (log_dir / "kafka.bootstrap")
    address_file.unlink(missing_ok=True)
    child = spawn(
        "mock-kafka", "devtools.cdc.mock_kafka", ["--address-file", str(address_file)], log_dir
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise ServiceError(
                f"mock Kafka exited with {child.process.returncode}:\n" + child.log_tail()
            )
        if address_file.exists():
            address = address_file.read_text().strip()
            if address:
                return KafkaService(child, address, address_file)
        time.sleep(0.1)
    child.kill()
    raise ServiceError(f"mock Kafka did not come up within {timeout:.0f}s:\n" + child.log_tail())


def capture_args(
    dsn: str,
    bootstrap: str,
    prefix: str = "shop",
    slot: str = "shop_cdc",
    extra: list[str] | None = None,
) -> list[str]:
    return [
        "--dsn",
        dsn,
        "--bootstrap",
        bootstrap,
        "--prefix",
        prefix,
        "--slot",
        slot,
        *(extra or []),
    ]


def bridge_args(
    bootstrap: str, prefix: str = "shop", sink: str = "raw", extra: list[str] | None = None
) -> list[str]:
    return ["--bootstrap", bootstrap, "--prefix", prefix, "--sink", sink, *(extra or [])]


def start_capture(
    log_dir: Path,
    dsn: str,
    bootstrap: str,
    *,
    prefix: str = "shop",
    slot: str = "shop_cdc",
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> ChildProcess:
    return spawn(
        "capture",
        "streaming.cdc.capture",
        capture_args(dsn, bootstrap, prefix, slot, extra),
        log_dir,
        env,
    )


def start_bridge(
    log_dir: Path,
    bootstrap: str,
    *,
    prefix: str = "shop",
    sink: str = "raw",
    extra: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> ChildProcess:
    """The bridge; with sink=raw it writes to LAKE_DIR (pass it in env)."""
    return spawn(
        "bridge", "streaming.cdc.bridge", bridge_args(bootstrap, prefix, sink, extra), log_dir, env
    )
