"""`python -m devtools.cdc`: the local CDC path, one process per part, until Ctrl-C / SIGTERM.

The source PostgreSQL (`python -m devtools.sourcedb serve`), the mock Kafka
(`python -m devtools.cdc.mock_kafka`), the capture (`python -m streaming.cdc.capture`), the
bridge (`python -m streaming.cdc.bridge`), and with --drive-days the synthetic shop writing
into the database.

Addresses go through DATA_DIR (sourcedb/dsn, cdc/kafka.bootstrap), so each part can be
killed and restarted on its own. Logs: DATA_DIR/logs/<part>.log.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from pathlib import Path

from devtools.cdc.processes import ChildProcess, spawn
from platform_core.settings import get_settings


def _wait_file(path: Path, child: object, timeout: float = 120) -> str:
    assert isinstance(child, ChildProcess)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if not child.alive():
            raise SystemExit(f"{child.name} exited:\n{child.log_tail()}")
        time.sleep(0.2)
    raise SystemExit(f"{child.name} did not write {path} within {timeout:.0f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.cdc")
    parser.add_argument("--sink", choices=("raw", "pubsub"), default="raw")
    parser.add_argument("--capture-metrics-port", type=int, default=9465)
    parser.add_argument("--bridge-metrics-port", type=int, default=9464)
    parser.add_argument(
        "--drive-days",
        type=int,
        default=0,
        help="replay this many simulated days into the database (0: none)",
    )
    parser.add_argument(
        "--speed", type=float, default=3600.0, help="simulated seconds per second while driving"
    )
    args = parser.parse_args(argv)
    settings = get_settings()
    logs = settings.data_path / "logs"
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    children: list[ChildProcess] = []
    try:
        if settings.source_db_dsn:
            dsn = settings.source_db_dsn
        else:
            settings.source_db_dsn_file.unlink(missing_ok=True)
            children.append(spawn("sourcedb", "devtools.sourcedb", ["serve"], logs))
            dsn = _wait_file(settings.source_db_dsn_file, children[-1])
        if settings.kafka_bootstrap_servers:
            bootstrap = settings.kafka_bootstrap_servers
        else:
            settings.kafka_address_file.unlink(missing_ok=True)
            children.append(spawn("mock-kafka", "devtools.cdc.mock_kafka", [], logs))
            bootstrap = _wait_file(settings.kafka_address_file, children[-1])
        children.append(
            spawn(
                "capture",
                "streaming.cdc.capture",
                ["--metrics-port", str(args.capture_metrics_port)],
                logs,
            )
        )
        children.append(
            spawn(
                "bridge",
                "streaming.cdc.bridge",
                ["--sink", args.sink, "--metrics-port", str(args.bridge_metrics_port)],
                logs,
            )
        )
        print(
            f"source database {dsn}\nkafka {bootstrap}\n"
            f"metrics: capture http://127.0.0.1:{args.capture_metrics_port}/metrics, "
            f"bridge http://127.0.0.1:{args.bridge_metrics_port}/metrics\nlogs {logs}",
            flush=True,
        )
        if args.drive_days:
            children.append(
                spawn(
                    "drive",
                    "devtools.sourcedb",
                    ["drive", "--days", str(args.drive_days), "--speed", str(args.speed)],
                    logs,
                )
            )
        while not stop.wait(1.0):
            for child in children:
                if not child.alive() and child.name != "drive":
                    print(
                        f"{child.name} exited ({child.process.returncode}); see {child.log_path}",
                        file=sys.stderr,
                        flush=True,
                    )
                    return 1
    finally:
        for child in reversed(children):  # bridge first: it flushes and commits on SIGTERM
            child.stop(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
