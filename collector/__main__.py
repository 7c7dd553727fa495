"""`python -m collector`: serve the collector with uvicorn (one server per process; settings
from the environment: COLLECTOR_HOST, COLLECTOR_PORT, COLLECTOR_WRITE_KEYS, GCP_PROJECT,
PUBSUB_EVENTS_TOPIC, PUBSUB_DEAD_LETTER_TOPIC, COLLECTOR_SPOOL_DIR, COLLECTOR_SPOOL_MAX_MB,
COLLECTOR_PUBLISH_TIMEOUT_S, COLLECTOR_MAX_IN_FLIGHT, COLLECTOR_MAX_CONNECTIONS, COLLECTOR_WORKERS,
COLLECTOR_CORS_ORIGINS, PUBSUB_EMULATOR_HOST).

Concurrency is bounded twice: uvicorn answers 503 (plain, no Retry-After) beyond
COLLECTOR_MAX_CONNECTIONS open connections, the backstop against clients that open
connections and send nothing; the app answers 503 + Retry-After beyond COLLECTOR_MAX_IN_FLIGHT
requests in progress (collector.handler).

SIGTERM/SIGINT: uvicorn stops accepting connections, lets requests in flight finish (their
events are published or spooled before they are answered), then the app's shutdown flushes
spool writes and persists the replay position.

COLLECTOR_WORKERS=N > 1 (one per core): this process binds the port once and runs N worker
processes (`--worker i --fd FD`) that accept from the same socket, each with its own spool
directory (collector.workers). It forwards SIGTERM/SIGINT to them and waits; when a worker
dies on its own, it stops the others and exits 1, so that the pod restarts whole (a worker's
spool is replayed by the worker that takes its directory back). The connection and request
limits apply per worker.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
import socket
import subprocess
import sys
import time

import uvicorn

from collector.app import create_app
from collector.config import CollectorConfig, CollectorConfigError
from collector.logs import configure, log_config
from collector.spool import SpoolError
from platform_core.settings import SettingsError, get_settings

GRACEFUL_SHUTDOWN_S = 30
# A batch request allocates tens of container objects per event. With Python's default
# young-generation threshold (700) that is several collections per request, which promote
# the events in flight and rescan them later. bench.collector, alternating runs on a noisy
# 2-core host: 19.1 and 22.3 µs of collector CPU per event with the default, 18.2 and 19.7
# with this. At most ~100,000 young objects wait meanwhile.
GC_YOUNG_THRESHOLD = 100_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector", description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="bind address (default COLLECTOR_HOST)")
    parser.add_argument("--port", type=int, help="port (default COLLECTOR_PORT)")
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="log every request (off by default: /metrics counts them)",
    )
    parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)  # the supervisor's socket
    args = parser.parse_args(argv)
    level = args.log_level.upper()
    configure(level)
    log = logging.getLogger("collector")
    try:
        settings = get_settings()
        config = CollectorConfig.from_settings(settings, args.worker)
        if config.workers > 1 and args.fd is None:
            return supervise(config, args, argv or sys.argv[1:])
        app = create_app(settings, worker=args.worker)
    except (CollectorConfigError, SettingsError) as error:
        log.error("cannot start the collector: %s", error)
        return 2
    server_config = uvicorn_config(
        app, config, args.host, args.port, log_config(level), args.access_log
    )
    server = uvicorn.Server(server_config)
    sockets = None if args.fd is None else [socket.socket(fileno=args.fd)]
    # Everything built so far (FastAPI, pydantic schemas, gRPC, google libraries: ~90,000
    # objects) lives as long as the process. Out of the collector's reach it no longer makes
    # each full garbage collection a ~60 ms pause in the middle of requests.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    try:
        server.run(sockets=sockets)
    except SpoolError as error:
        log.error("cannot start the collector: %s", error)
        return 2
    return 0 if server.started else 1


def supervise(config: CollectorConfig, args: argparse.Namespace, argv: list[str]) -> int:
    """Bind the port, run COLLECTOR_WORKERS workers on it, and stop with them (see above)."""
    log = logging.getLogger("collector")
    listener = socket.create_server(
        (args.host or config.host, args.port or config.port), backlog=2048
    )
    fd = listener.fileno()
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "collector", *argv, "--worker", str(i), "--fd", str(fd)],
            pass_fds=[fd],
        )
        for i in range(config.workers)
    ]
    listener.close()  # the workers hold it now
    stopping = failed = False
    forwarded = 0

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping, forwarded
        stopping, forwarded = True, signum
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("collector workers started", extra={"workers": [w.pid for w in workers]})
    while any(w.poll() is None for w in workers):
        if not stopping and any(w.poll() is not None for w in workers):
            log.error("a collector worker stopped: stopping the others")
            failed = True
            stop(signal.SIGTERM, None)
        time.sleep(0.2)
    # uvicorn re-raises the signal it stopped on: a worker killed by it stopped cleanly
    clean = all(w.returncode in (0, -forwarded) for w in workers)
    return 0 if clean and not failed else 1


def uvicorn_config(
    app: object,
    config: CollectorConfig,
    host: str | None = None,
    port: int | None = None,
    logging_config: dict[str, object] | None = None,
    access_log: bool = False,
) -> uvicorn.Config:
    """uvicorn's settings for the collector: one worker, bounded connections, a graceful
    shutdown long enough for requests in flight to publish or spool."""
    return uvicorn.Config(
        app,  # type: ignore[arg-type]
        host=host or config.host,
        port=port or config.port,
        workers=1,
        log_config=logging_config,
        access_log=access_log,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        server_header=False,
        limit_concurrency=config.max_connections,
    )


if __name__ == "__main__":
    sys.exit(main())
