"""The collector's HTTP API: Segment's Tracking API (and analytics.js' short paths) on FastAPI.

    POST /v1/track|page|screen|identify|group|alias   one event (analytics.js: /v1/t|p|s|i|g|a)
    POST /v1/batch                                    {"batch": [...]} (analytics.js: /v1/b)
    GET  /healthz /readyz /metrics /docs /openapi.json

Every answer to a POST is 200 `{"success": true, ...}` once the events are in Pub/Sub or in
the fsynced spool, or an error with `code`, `message` and `reason`. See `collector.delivery`
for what 200 guarantees and `collector.ingest` for how a request becomes messages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from collector.auth import WriteKeys, key_from_authorization, key_from_body
from collector.body import check_content_type, decode_content, parse_json, read_limited
from collector.config import MAX_BATCH_BYTES, MAX_EVENT_BYTES, CollectorConfig
from collector.delivery import Delivery
from collector.errors import ApiError, json_response
from collector.ingest import Ingested, dead_letter, ingest_batch, ingest_event
from collector.metrics import Metrics
from collector.models import (
    EXAMPLE_BATCH,
    EXAMPLES,
    Accepted,
    BatchAccepted,
    ErrorBody,
    Health,
    Ready,
    component_schemas,
)
from collector.publisher import Publisher, PubSubPublisher
from collector.spool import Spool
from platform_core.contract import MESSAGE_TYPES, SHORT_PATHS, isoformat_z
from platform_core.settings import Settings

log = logging.getLogger("collector")

MAX_ERRORS_LISTED = 100
BATCH_ALIASES = ("batch", "b")


class Collector:
    """The request handling shared by every event route."""

    def __init__(
        self, config: CollectorConfig, keys: WriteKeys, delivery: Delivery, metrics: Metrics
    ) -> None:
        self.config = config
        self.keys = keys
        self.delivery = delivery
        self.metrics = metrics

    async def handle(self, request: Request, route_type: str | None) -> Response:
        """`route_type` is the message type of a single-event route, None for a batch."""
        try:
            return await self._handle(request, route_type)
        except ApiError as error:
            self.metrics.events_rejected.labels(error.code).inc()
            return error.response()
        except ClientDisconnect:  # gone before its body arrived: nothing was accepted
            self.metrics.events_rejected.labels("client_disconnected").inc()
            return ApiError(400, "client_disconnected", "the client went away").response()

    async def _handle(self, request: Request, route_type: str | None) -> Response:
        headers = request.headers
        limit = MAX_EVENT_BYTES if route_type else MAX_BATCH_BYTES
        check_content_type(headers.get("content-type"))
        raw = await read_limited(request.stream(), headers.get("content-length"), limit)
        body = decode_content(raw, headers.get("content-encoding"), limit)
        header_key = key_from_authorization(headers.get("authorization"))
        source = self.keys.source_for(header_key)
        try:
            payload = parse_json(body)
        except ApiError as error:
            if source is not None:  # keep what an authenticated client sent
                await self.delivery.deliver([], [dead_letter(body, source, error.reason)])
            raise
        if source is None:
            body_key = key_from_body(payload)
            source = self.keys.source_for(body_key)
            if source is None:
                if header_key or body_key:
                    raise ApiError(
                        401,
                        "invalid_write_key",
                        "unknown write key",
                        "the write key is not one of COLLECTOR_WRITE_KEYS",
                    )
                raise ApiError(
                    401,
                    "missing_write_key",
                    "no write key",
                    "send the write key as HTTP Basic user name (`writeKey:`), "
                    "as `Authorization: Bearer <key>`, or as `writeKey` in the body",
                )
        received_at_z = isoformat_z(datetime.now(UTC))
        if route_type is None:
            try:
                result = ingest_batch(payload, body, source, received_at_z)
            except ApiError as error:
                await self.delivery.deliver([], [dead_letter(body, source, error.reason)])
                raise
        else:
            result = ingest_event(payload, body, source, received_at_z, route_type)
        delivery = await self.delivery.deliver(result.messages, result.dead_letters)
        self._count(result, source)
        if route_type is None:
            return json_response(
                {
                    "success": True,
                    "accepted": result.accepted,
                    "rejected": len(result.rejections),
                    "errors": [
                        {
                            "index": r.index,
                            "code": r.code,
                            "reason": r.reason,
                            "messageId": r.message_id,
                        }
                        for r in result.rejections[:MAX_ERRORS_LISTED]
                    ],
                    "delivery": delivery,
                }
            )
        if result.rejections:
            rejection = result.rejections[0]
            # counted above with the event's reason; the caller must not count it again
            return ApiError(
                400, rejection.code, "the event does not satisfy the contract", rejection.reason
            ).response()
        return json_response(
            {"success": True, "messageId": result.message_ids[0], "delivery": delivery}
        )

    def _count(self, result: Ingested, source: str) -> None:
        for kind, count in result.accepted_types.items():
            self.metrics.events_accepted.labels(source, kind).inc(count)
        if result.rejections:
            reasons: dict[str, int] = {}
            for rejection in result.rejections:
                reasons[rejection.code] = reasons.get(rejection.code, 0) + 1
            for code, count in reasons.items():
                self.metrics.events_rejected.labels(code).inc(count)


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


# --- OpenAPI documentation ---------------------------------------------------------------

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {
        "model": ErrorBody,
        "description": "Invalid JSON, invalid gzip, or (single-event "
        "routes) an event that does not satisfy the contract; it is also sent to the "
        "dead-letter topic with its reason.",
    },
    401: {"model": ErrorBody, "description": "Missing or unknown write key."},
    413: {
        "model": ErrorBody,
        "description": "Body over 32 KB (single event) or 500 KB "
        "(batch), measured after gzip decompression.",
    },
    415: {
        "model": ErrorBody,
        "description": "Content-Type other than JSON/text, or a Content-Encoding other than gzip.",
    },
    503: {
        "model": ErrorBody,
        "description": "Pub/Sub unreachable and the spool full: retry after `Retry-After` seconds.",
        "headers": {
            "Retry-After": {
                "schema": {"type": "integer"},
                "description": "Seconds to wait before retrying.",
            }
        },
    },
}

SECURITY = [{"basicAuth": []}, {"bearerAuth": []}, {}]

AUTH_DOC = (
    "Authenticate with the source's write key in any of three ways: HTTP Basic with the key "
    'as user name and an empty password (`Authorization: Basic base64(writeKey + ":")`, the '
    "colon may be omitted), `Authorization: Bearer <writeKey>`, or a `writeKey` field in the "
    "JSON body. Bodies may be gzip-compressed (`Content-Encoding: gzip`) and sent as "
    "`application/json` or `text/plain` (analytics.js)."
)


def _event_body(kind: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{kind.capitalize()}"}
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": ref, "example": EXAMPLES[kind]},
                "text/plain": {
                    "schema": {"type": "string"},
                    "example": orjson.dumps({"type": kind, "anonymousId": "a-1"}).decode(),
                },
            },
        }
    }


BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/BatchRequest"},
                "example": EXAMPLE_BATCH,
            },
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(component_schemas())
    components["securitySchemes"] = {
        "basicAuth": {
            "type": "http",
            "scheme": "basic",
            "description": "user name = write key, empty password",
        },
        "bearerAuth": {
            "type": "http",
            "scheme": "bearer",
            "description": "the write key as bearer token",
        },
    }
    app.openapi_schema = schema
    return schema


# --- the app -------------------------------------------------------------------------------


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

    app = FastAPI(
        title="Event collector",
        version="1.0.0",
        description=(
            "Segment-compatible HTTP Tracking API of the e-commerce data platform. Official "
            "Segment and RudderStack SDKs and analytics.js work against it unchanged.\n\n"
            + AUTH_DOC
            + "\n\nA 200 means every event of the request was acknowledged by "
            "Pub/Sub or fsynced to the collector's spool (replayed later); invalid events "
            "go to the dead-letter topic with their reason. Limits: 32 KB per event, 500 KB "
            "per batch (after decompression)."
        ),
        lifespan=lifespan,
        openapi_tags=[
            {"name": "events", "description": "Segment HTTP Tracking API"},
            {"name": "analytics.js", "description": "Short paths analytics.js posts to"},
            {"name": "operations", "description": "Health, readiness, metrics"},
        ],
    )
    app.state.collector = collector
    app.state.config = config
    app.state.delivery = delivery
    app.state.metrics = metrics

    def event_route(kind: str):  # noqa: ANN202 - FastAPI endpoint
        async def endpoint(request: Request) -> Response:
            return await collector.handle(request, kind)

        endpoint.__name__ = f"post_{kind}"
        return endpoint

    async def batch_endpoint(request: Request) -> Response:
        return await collector.handle(request, None)

    event_responses = {200: {"model": Accepted}, **ERROR_RESPONSES}
    routes = set()
    for kind in MESSAGE_TYPES:
        app.add_api_route(
            f"/v1/{kind}",
            event_route(kind),
            methods=["POST"],
            tags=["events"],
            summary=f"Send one {kind} event",
            response_model=None,
            responses=event_responses,
            openapi_extra={**_event_body(kind), "security": SECURITY},
            operation_id=f"post_{kind}",
            description=f"One `{kind}` message (`type` defaults to `{kind}`). " + AUTH_DOC,
        )
        routes.add(f"/v1/{kind}")
    for short, kind in SHORT_PATHS.items():
        app.add_api_route(
            f"/v1/{short}",
            event_route(kind),
            methods=["POST"],
            tags=["analytics.js"],
            summary=f"Send one {kind} event (analytics.js short path)",
            response_model=None,
            responses=event_responses,
            openapi_extra={**_event_body(kind), "security": SECURITY},
            operation_id=f"post_{short}_{kind}",
        )
        routes.add(f"/v1/{short}")
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
        routes.add(f"/v1/{alias}")

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

    routes |= {"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"}

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
    async def internal_error(request: Request, error: Exception) -> Response:
        log.exception("unhandled error", extra={"path": request.url.path})
        return json_response(
            {
                "success": False,
                "code": "internal_error",
                "message": "internal error",
                "reason": "the collector failed; the request was not accepted",
            },
            500,
        )

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    if config.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            max_age=900,
        )
    app.add_middleware(MetricsMiddleware, metrics=metrics, routes=routes)
    return app
