"""What the collector benchmarks share: a work directory with a Pub/Sub emulator in it, one
collector process from a checkout publishing to that emulator, and load against it (closed
or open loop)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from bench.processes import ROOT, cpu_seconds, start, stop
from devtools.services import Service, free_port, start_pubsub_emulator, wait_for_port

KEY = "bench-key"  # the benchmarks' write key (source "web")


@contextlib.contextmanager
def emulator_workspace(prefix: str, keep: bool = False) -> Iterator[tuple[Path, Service]]:
    """A new temporary work directory (logs, spools) and a Pub/Sub emulator running in it;
    the emulator stopped on exit and the directory removed unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        emulator = start_pubsub_emulator(work)
        try:
            yield work, emulator
        finally:
            emulator.stop()
    finally:  # the directory goes too when the emulator does not start
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


def collector_env(emulator_address: str, topic: str = "bench-events") -> dict[str, str]:
    """The environment of a benchmark's collector: local mode, the emulator, `topic` and its
    dead-letter topic, the benchmarks' write key, loopback."""
    return {
        **os.environ,
        "PLATFORM_ENV": "local",
        "PUBSUB_EMULATOR_HOST": emulator_address,
        "GCP_PROJECT": "local-project",
        "PUBSUB_EVENTS_TOPIC": topic,
        "PUBSUB_DEAD_LETTER_TOPIC": f"{topic}-dead-letter",
        "COLLECTOR_WRITE_KEYS": f"{KEY}=web",
        "COLLECTOR_HOST": "127.0.0.1",
    }


@contextlib.contextmanager
def collector(
    source: Path,
    emulator: Service,
    log: Path,
    spool: Path,
    topic: str = "bench-events",
    **settings: str,
) -> Iterator[Served]:
    """`python -m collector` from `source` (its packages first on the path), with `settings`
    added to its environment; stopped on exit."""
    port = free_port()
    env = {
        **collector_env(emulator.address, topic),
        "COLLECTOR_PORT": str(port),
        "COLLECTOR_SPOOL_DIR": str(spool),
        "PYTHONPATH": str(source),
        **settings,
    }
    args = [sys.executable, "-m", "collector", "--log-level", "warning"]
    process = start(args, env, log, cwd=source)
    try:
        wait_for_port("127.0.0.1", port, 90, process)
        yield Served(process, port, emulator)
    finally:
        stop(process)


class Served:
    """A running collector: runs of load against it, with its CPU and the emulator's."""

    def __init__(self, process: subprocess.Popen, port: int, emulator: Service) -> None:
        self.process = process
        self.port = port
        self.emulator = emulator

    def load(self, seconds: float, batch_size: int = 100, rate: float = 0.0) -> dict:
        """/v1/batch of `batch_size` events, a closed loop (16 connections) or, with `rate`,
        an open loop of `rate` requests/s: the load generator's figures, and the collector's
        and the emulator's CPU over the run."""
        emulator_pid = self.emulator.process.pid
        cpu, emulated = cpu_seconds(self.process.pid), cpu_seconds(emulator_pid)
        started = time.perf_counter()
        args = ["--mode", "batch", "--concurrency", "16", "--batch-size", str(batch_size)]
        args += ["--rate", str(rate)] if rate else []
        args += ["--duration", str(seconds), "--warmup", "0", "--key", KEY]
        out = subprocess.run(
            [sys.executable, "-m", "bench.collector.load", f"http://127.0.0.1:{self.port}", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds + 120,
            check=True,
        )
        wall = time.perf_counter() - started
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["collector_cpu_s"] = cpu_seconds(self.process.pid) - cpu
        result["emulator_cores"] = (cpu_seconds(emulator_pid) - emulated) / wall
        # the rate held over the whole wall time (the load process's start included)
        result["requests"] = result["requests_per_s"] * wall
        result["events"] = result["events_per_s"] * wall
        return result
