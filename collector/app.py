"""The collector's HTTP API: Segment's Tracking API (and analytics.js' short paths) on FastAPI.

    POST /v1/track|page|screen|identify|group|alias   one event (analytics.js: /v1/t|p|s|i|g|a)
    POST /v1/batch                                    {"batch": [...]} (analytics.js: /v1/b)
    GET  /healthz /readyz /metrics /docs /openapi.json

Every answer to a POST is 200 `{"success": true, ...}` once the events are in Pub/Sub or in
the fsynced spool, or an error with `code`, `message` and `reason`. See `collector.delivery`
for what 200 guarantees and `collector.ingest` for how a request becomes messages.
"""

# The app's parts, each in a module of its own next to this one: handler (one request, from
# body to answer), routes (event, operations and error routes), middleware (CORS, metrics),
# openapi (the API's documentation). This module wires them (`create_app`).

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from collector.auth import WriteKeys
from collector.config import CollectorConfig
from collector.delivery import Delivery
from collector.handler import Collector
from collector.metrics import Metrics
from collector.middleware import MetricsMiddleware, add_middleware, with_cors
from collector.openapi import API_DESCRIPTION, OPENAPI_TAGS, openapi_schema
from collector.publisher import Publisher, PubSubPublisher
from collector.routes import (
    add_error_handlers,
    add_event_routes,
    add_operation_routes,
    event_dispatch,
)
from collector.spool import Spool
from collector.workers import PodSpoolGauges
from platform_core.settings import Settings

log = logging.getLogger("collector")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(
    settings: Settings | None = None, publisher: Publisher | None = None, worker: int = 0
) -> FastAPI:
    """The collector as an ASGI app (worker `worker` of COLLECTOR_WORKERS). Nothing connects
    anywhere until the app starts (lifespan): then the spool is opened, topics are created
    (local mode) and the replay task starts; on shutdown in-flight spool writes are flushed
    and the position persisted."""
    config = CollectorConfig.from_settings(settings, worker)
    keys = WriteKeys(config.write_keys)
    metrics = Metrics()
    spool = Spool(config.spool_dir, config.spool_max_bytes)
    delivery = Delivery(config, publisher or PubSubPublisher(config.emulator_host), spool, metrics)
    collector = Collector(config, keys, delivery, metrics)
    pod_gauges = None
    if config.workers > 1:  # a scrape reaches one worker: it exports the pod's spool gauges
        base = config.spool_base or config.spool_dir
        pod_gauges = PodSpoolGauges(config.spool_dir, base, delivery.spool_gauges())
        metrics.watch_spool(*pod_gauges.gauges())
    if config.demo_keys:
        log.warning(
            "COLLECTOR_WRITE_KEYS is empty: using the local demo write keys",
            extra={"demo_keys": {k: v for k, v in config.write_keys.items()}},
        )
    app = CollectorApp(
        title="Event collector",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=_lifespan(config, keys, delivery, pod_gauges),
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.collector = collector
    app.state.config = config
    app.state.delivery = delivery
    app.state.metrics = metrics
    event_routes = add_event_routes(app, collector)
    routes = set(event_routes) | add_operation_routes(app, delivery, metrics)
    add_error_handlers(app)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    add_middleware(app, config, metrics, routes)
    app.event_routes = event_routes
    app.event_app = MetricsMiddleware(
        with_cors(event_dispatch(collector, event_routes), config), metrics, routes
    )
    return app


class CollectorApp(FastAPI):
    """FastAPI, with the POSTs to the event routes (all of the traffic) handed to
    `event_app` before FastAPI's middleware and routing: ~150 µs per request that a batch
    would otherwise pay (bench.collector.hotpath). The event app has the same metrics and
    CORS middleware and the same error answers; FastAPI still documents the event routes
    and answers anything else sent to them (405, CORS preflights)."""

    event_routes: dict[str, str | None] = {}  # noqa: RUF012 - replaced per app
    event_app: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.event_app is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.event_routes
        ):
            await self.event_app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _lifespan(
    config: CollectorConfig,
    keys: WriteKeys,
    delivery: Delivery,
    pod_gauges: PodSpoolGauges | None,
) -> Lifespan:
    """Start delivery (spool, topics, replay) when the server starts, and the sharing of
    spool gauges between workers; stop them (flush spool writes, persist the replay
    position) when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await delivery.start()
        sharing = None if pod_gauges is None else asyncio.create_task(pod_gauges.publish_forever())
        log.info(
            "collector started",
            extra={
                "events_topic": config.events_topic_path,
                "dead_letter_topic": config.dead_letter_topic_path,
                "pubsub": config.emulator_host or "pubsub.googleapis.com",
                "spool_dir": str(config.spool_dir),
                "worker": f"{config.worker + 1}/{config.workers}",
                "sources": sorted(keys.sources),
            },
        )
        try:
            yield
        finally:
            if sharing is not None:
                sharing.cancel()
            await delivery.stop()

    return lifespan
