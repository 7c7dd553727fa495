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

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from collector.auth import WriteKeys
from collector.config import CollectorConfig
from collector.delivery import Delivery
from collector.handler import Collector
from collector.metrics import Metrics
from collector.middleware import add_middleware
from collector.openapi import API_DESCRIPTION, OPENAPI_TAGS, openapi_schema
from collector.publisher import Publisher, PubSubPublisher
from collector.routes import add_error_handlers, add_event_routes, add_operation_routes
from collector.spool import Spool
from platform_core.settings import Settings

log = logging.getLogger("collector")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(settings: Settings | None = None, publisher: Publisher | None = None) -> FastAPI:
    """The collector as an ASGI app. Nothing connects anywhere until the app starts
    (lifespan): then the spool is opened, topics are created (local mode) and the replay
    task starts; on shutdown in-flight spool writes are flushed and the position persisted."""
    config = CollectorConfig.from_settings(settings)
    keys = WriteKeys(config.write_keys)
    metrics = Metrics()
    spool = Spool(config.spool_dir, config.spool_max_bytes)
    delivery = Delivery(config, publisher or PubSubPublisher(config.emulator_host), spool, metrics)
    collector = Collector(config, keys, delivery, metrics)
    if config.demo_keys:
        log.warning(
            "COLLECTOR_WRITE_KEYS is empty: using the local demo write keys",
            extra={"demo_keys": {k: v for k, v in config.write_keys.items()}},
        )
    app = FastAPI(
        title="Event collector",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=_lifespan(config, keys, delivery),
        openapi_tags=OPENAPI_TAGS,
    )
    app.state.collector = collector
    app.state.config = config
    app.state.delivery = delivery
    app.state.metrics = metrics
    routes = add_event_routes(app, collector) | add_operation_routes(app, delivery, metrics)
    add_error_handlers(app)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]
    add_middleware(app, config, metrics, routes)
    return app


def _lifespan(config: CollectorConfig, keys: WriteKeys, delivery: Delivery) -> Lifespan:
    """Start delivery (spool, topics, replay) when the server starts; stop it (flush spool
    writes, persist the replay position) when it stops."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await delivery.start()
        log.info(
            "collector started",
            extra={
                "events_topic": config.events_topic_path,
                "dead_letter_topic": config.dead_letter_topic_path,
                "pubsub": config.emulator_host or "pubsub.googleapis.com",
                "spool_dir": str(config.spool_dir),
                "sources": sorted(keys.sources),
            },
        )
        try:
            yield
        finally:
            await delivery.stop()

    return lifespan
