"""The collector's middleware: CORS for browsers (when COLLECTOR_CORS_ORIGINS is set) and the
request metrics around everything."""

from __future__ import annotations

import time

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.config import CollectorConfig
from collector.metrics import Metrics


class MetricsMiddleware:
    """Requests by route and status, and their latency (pure ASGI: no per-request copies)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: set[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        route = path if path in self.routes else "other"
        status = 500
        started = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_latency.labels(route).observe(time.perf_counter() - started)


def add_middleware(
    app: FastAPI, config: CollectorConfig, metrics: Metrics, routes: set[str]
) -> None:
    """CORS, then the metrics outermost (the last added runs first), so that every answer,
    CORS preflights included, is counted; paths outside `routes` count as "other"."""
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            max_age=900,
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)
