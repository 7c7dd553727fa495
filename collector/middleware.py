"""The collector's middleware: CORS for browsers (when COLLECTOR_CORS_ORIGINS is set) and the
request metrics around everything, on FastAPI's stack and on the event routes' own
(`collector.app.CollectorApp`)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.config import CollectorConfig
from collector.metrics import Metrics


class MetricsMiddleware:
    """Requests by route and status, and their latency (pure ASGI: no per-request copies;
    the labelled children are looked up once, not per request)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Iterable[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = set(routes)
        self._counts: dict[tuple[str, int], Any] = {}
        self._latencies: dict[str, Any] = {}

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
            self._count(route, status).inc()
            self._latency(route).observe(time.perf_counter() - started)

    def _count(self, route: str, status: int) -> Any:
        child = self._counts.get((route, status))
        if child is None:  # routes are a fixed set and statuses few: a bounded cache
            child = self._counts[route, status] = self.metrics.requests.labels(route, str(status))
        return child

    def _latency(self, route: str) -> Any:
        child = self._latencies.get(route)
        if child is None:
            child = self._latencies[route] = self.metrics.request_latency.labels(route)
        return child


def with_cors(app: ASGIApp, config: CollectorConfig) -> ASGIApp:
    """`app` behind CORS for the configured browser origins (COLLECTOR_CORS_ORIGINS)."""
    if not config.cors_origins:
        return app
    return CORSMiddleware(app, **_cors_options(config))


def _cors_options(config: CollectorConfig) -> dict[str, Any]:
    return {
        "allow_origins": list(config.cors_origins),
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": ["*"],
        "max_age": 900,
    }


def add_middleware(
    app: FastAPI, config: CollectorConfig, metrics: Metrics, routes: Iterable[str]
) -> None:
    """CORS, then the metrics outermost (the last added runs first), so that every answer,
    CORS preflights included, is counted; paths outside `routes` count as "other"."""
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, **_cors_options(config))
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)
