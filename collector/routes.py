"""The collector's routes: Segment's event routes (and analytics.js' short paths), the
operations routes (health, readiness, metrics), and the JSON answers to HTTP errors.

Each `add_*` function returns the paths it added, which the metrics middleware labels by name
(any other path counts as "other", so scanners cannot blow up the metric's cardinality).
`event_dispatch` serves the POSTs to the event routes without FastAPI's routing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from collector.delivery import Delivery
from collector.errors import json_response
from collector.handler import Collector
from collector.metrics import Metrics
from collector.models import Accepted, BatchAccepted, Health, Ready
from collector.openapi import AUTH_DOC, BATCH_BODY, ERROR_RESPONSES, SECURITY, event_body
from platform_core.contract import MESSAGE_TYPES, SHORT_PATHS

log = logging.getLogger("collector")

BATCH_ALIASES = ("batch", "b")
OPERATIONS_PATHS = {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}

Endpoint = Callable[[Request], Awaitable[Response]]


def add_event_routes(app: FastAPI, collector: Collector) -> dict[str, str | None]:
    """POST /v1/<type> for each message type, analytics.js' /v1/<letter>, and the batch; the
    message type of each path (None: a batch). FastAPI documents them and answers what is
    not a POST to them; `event_dispatch` serves the POSTs."""

    def event_route(kind: str) -> Endpoint:
        async def endpoint(request: Request) -> Response:
            return await collector.handle(request, kind)

        endpoint.__name__ = f"post_{kind}"
        return endpoint

    async def batch_endpoint(request: Request) -> Response:
        return await collector.handle(request, None)

    event_responses = {200: {"model": Accepted}, **ERROR_RESPONSES}
    routes: dict[str, str | None] = {}
    for kind in MESSAGE_TYPES:
        app.add_api_route(
            f"/v1/{kind}",
            event_route(kind),
            methods=["POST"],
            tags=["events"],
            summary=f"Send one {kind} event",
            response_model=None,
            responses=event_responses,
            openapi_extra={**event_body(kind), "security": SECURITY},
            operation_id=f"post_{kind}",
            description=f"One `{kind}` message (`type` defaults to `{kind}`). " + AUTH_DOC,
        )
        routes[f"/v1/{kind}"] = kind
    for short, kind in SHORT_PATHS.items():
        app.add_api_route(
            f"/v1/{short}",
            event_route(kind),
            methods=["POST"],
            tags=["analytics.js"],
            summary=f"Send one {kind} event (analytics.js short path)",
            response_model=None,
            responses=event_responses,
            openapi_extra={**event_body(kind), "security": SECURITY},
            operation_id=f"post_{short}_{kind}",
        )
        routes[f"/v1/{short}"] = kind
    batch_responses = {200: {"model": BatchAccepted}, **ERROR_RESPONSES}
    for alias in BATCH_ALIASES:
        app.add_api_route(
            f"/v1/{alias}",
            batch_endpoint,
            methods=["POST"],
            tags=["events"] if alias == "batch" else ["analytics.js"],
            summary="Send a batch of events" + (" (analytics.js)" if alias == "b" else ""),
            response_model=None,
            responses=batch_responses,
            openapi_extra={**BATCH_BODY, "security": SECURITY},
            operation_id=f"post_{alias}",
            description=(
                '`{"batch": [...], "sentAt": ...}`: each event is validated on its own; '
                "invalid ones go to the dead-letter topic and are listed in `errors`, the "
                "others are accepted. The batch's `sentAt`, `context` and `integrations` "
                "apply to every event that lacks them. " + AUTH_DOC
            ),
        )
        routes[f"/v1/{alias}"] = None
    return routes


def event_dispatch(collector: Collector, routes: dict[str, str | None]) -> ASGIApp:
    """The POSTs to the event routes as a bare ASGI app (collector.app.CollectorApp puts it
    in front of FastAPI's routing, whose per-request work would cost more than the events of
    a batch): the same handler, and the same JSON 500 as `add_error_handlers` gives for an
    unexpected failure."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            response = await collector.handle(request, routes[scope["path"]])
        except Exception:
            log.exception("unhandled error", extra={"path": scope["path"]})
            response = internal_error()
        await response(scope, receive, send)

    return app


def add_operation_routes(app: FastAPI, delivery: Delivery, metrics: Metrics) -> set[str]:
    """Liveness, readiness and Prometheus metrics (plus FastAPI's own /docs, /openapi.json)."""

    @app.get(
        "/healthz",
        tags=["operations"],
        response_model=Health,
        summary="Liveness: the process serves requests",
    )
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["operations"],
        response_model=Ready,
        responses={503: {"model": Ready, "description": "Not ready"}},
        summary="Readiness: Pub/Sub reachable and the spool not full",
    )
    async def readyz() -> Response:
        state = await delivery.ready()
        return json_response(state, 200 if state["ready"] else 503)

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
    )
    async def metrics_endpoint() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return set(OPERATIONS_PATHS)


def add_error_handlers(app: FastAPI) -> None:
    """Every error answer has the same JSON shape as the API's own (`code`, `message`,
    `reason`): SDKs read it, and an unexpected failure never leaks a traceback."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return json_response(
            {
                "success": False,
                "code": code,
                "message": str(error.detail),
                "reason": f"{request.method} {request.url.path}: {error.detail}",
            },
            error.status_code,
            getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, error: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return internal_error()


def internal_error() -> Response:
    return json_response(
        {
            "success": False,
            "code": "internal_error",
            "message": "internal error",
            "reason": "the collector failed; the request was not accepted",
        },
        500,
    )
