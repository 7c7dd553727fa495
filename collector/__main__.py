"""`python -m collector`: serve the collector with uvicorn (one worker; settings from the
environment: COLLECTOR_HOST, COLLECTOR_PORT, COLLECTOR_WRITE_KEYS, GCP_PROJECT,
PUBSUB_EVENTS_TOPIC, PUBSUB_DEAD_LETTER_TOPIC, COLLECTOR_SPOOL_DIR, COLLECTOR_SPOOL_MAX_MB,
COLLECTOR_PUBLISH_TIMEOUT_S, COLLECTOR_MAX_IN_FLIGHT, COLLECTOR_MAX_CONNECTIONS,
COLLECTOR_CORS_ORIGINS, PUBSUB_EMULATOR_HOST).

Concurrency is bounded twice: uvicorn answers 503 (plain, no Retry-After) beyond
COLLECTOR_MAX_CONNECTIONS open connections, the backstop against clients that open
connections and send nothing; the app answers 503 + Retry-After beyond COLLECTOR_MAX_IN_FLIGHT
requests in progress (collector.handler).

SIGTERM/SIGINT: uvicorn stops accepting connections, lets requests in flight finish (their
events are published or spooled before they are answered), then the app's shutdown flushes
spool writes and persists the replay position. Run more processes for more throughput, each
with its own COLLECTOR_SPOOL_DIR.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys

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
    args = parser.parse_args(argv)
    level = args.log_level.upper()
    configure(level)
    log = logging.getLogger("collector")
    try:
        settings = get_settings()
        config = CollectorConfig.from_settings(settings)
        app = create_app(settings)
    except (CollectorConfigError, SettingsError) as error:
        log.error("cannot start the collector: %s", error)
        return 2
    server_config = uvicorn_config(
        app, config, args.host, args.port, log_config(level), args.access_log
    )
    server = uvicorn.Server(server_config)
    # Everything built so far (FastAPI, pydantic schemas, gRPC, google libraries: ~90,000
    # objects) lives as long as the process. Out of the collector's reach it no longer makes
    # each full garbage collection a ~60 ms pause in the middle of requests.
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)
    try:
        server.run()
    except SpoolError as error:
        log.error("cannot start the collector: %s", error)
        return 2
    return 0 if server.started else 1


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
