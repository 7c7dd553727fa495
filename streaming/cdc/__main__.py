"""`python -m streaming.cdc`: the local CDC path, one process per part.

  stack        everything below as child processes, until Ctrl-C / SIGTERM: the source
               PostgreSQL (`python -m streaming.sourcedb serve`), the mock Kafka, the capture,
               the bridge, and with --drive-days the synthetic shop writing into the database
  mock-kafka   python -m streaming.cdc.mock_kafka
  capture      python -m streaming.cdc.capture
  bridge       python -m streaming.cdc.bridge

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


def _wait_file(path: Path, child: object, timeout: float = 120) -> str:
    from streaming.cdc.local import ChildProcess

    assert isinstance(child, ChildProcess)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        if not child.alive():
            raise SystemExit(f"{child.name} exited:\n{child.log_tail()}")
        time.sleep(0.2)
    raise SystemExit(f"{child.name} did not write {path} within {timeout:.0f}s")


def stack(argv: list[str]) -> int:
    from platform_assets.settings import get_settings
    from streaming.cdc.kafka import kafka_address_file
    from streaming.cdc.local import ChildProcess, spawn
    from streaming.sourcedb import local_dsn_file

    parser = argparse.ArgumentParser(prog="python -m streaming.cdc stack")
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
            local_dsn_file(settings).unlink(missing_ok=True)
            children.append(spawn("sourcedb", "streaming.sourcedb", ["serve"], logs))
            dsn = _wait_file(local_dsn_file(settings), children[-1])
        if settings.kafka_bootstrap_servers:
            bootstrap = settings.kafka_bootstrap_servers
        else:
            kafka_address_file(settings).unlink(missing_ok=True)
            children.append(spawn("mock-kafka", "streaming.cdc.mock_kafka", [], logs))
            bootstrap = _wait_file(kafka_address_file(settings), children[-1])
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
                    "streaming.sourcedb",
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


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"stack", "mock-kafka", "capture", "bridge"}
    if not argv or argv[0] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    if command == "stack":
        return stack(rest)
    if command == "mock-kafka":
        from streaming.cdc.mock_kafka import main as run
    elif command == "capture":
        from streaming.cdc.capture import main as run
    else:
        from streaming.cdc.bridge import main as run
    return run(rest)


if __name__ == "__main__":
    sys.exit(main())
