"""The collector's API documentation: the description, tags, per-route request bodies and
error answers, and the OpenAPI schema with the contract's models and the auth schemes."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from collector.models import EXAMPLE_BATCH, EXAMPLES, ErrorBody, component_schemas

AUTH_DOC = (
    "Authenticate with the source's write key in any of three ways: HTTP Basic with the key "
    'as user name and an empty password (`Authorization: Basic base64(writeKey + ":")`, the '
    "colon may be omitted), `Authorization: Bearer <writeKey>`, or a `writeKey` field in the "
    "JSON body. Bodies may be gzip-compressed (`Content-Encoding: gzip`, with the key in the "
    "Authorization header: a body is inflated only for a known key) and sent as "
    "`application/json` or `text/plain` (analytics.js)."
)

API_DESCRIPTION = (
    "Segment-compatible HTTP Tracking API of the e-commerce data platform. Official "
    "Segment and RudderStack SDKs and analytics.js work against it unchanged.\n\n"
    + AUTH_DOC
    + "\n\nA 200 means every event of the request was acknowledged by "
    "Pub/Sub or fsynced to the collector's spool (replayed later); invalid events "
    "go to the dead-letter topic with their reason. Limits: 32 KB per event (as sent, and "
    "as stamped with the batch's fields merged in, plus 1 KB), 500 KB per batch body (after "
    "decompression), 1,000 events per batch, 2 MB of messages per request."
)

OPENAPI_TAGS = [
    {"name": "events", "description": "Segment HTTP Tracking API"},
    {"name": "analytics.js", "description": "Short paths analytics.js posts to"},
    {"name": "operations", "description": "Health, readiness, metrics"},
]

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
        "description": "Body over 32 KB (single event) or 500 KB (batch), measured after "
        "gzip decompression (`payload_too_large`); more than 1,000 events "
        "(`too_many_events`); batch sentAt/context/integrations over 32 KB "
        "(`batch_context_too_large`); events over 2 MB once stamped (`request_too_large`).",
    },
    415: {
        "model": ErrorBody,
        "description": "Content-Type other than JSON/text, or a Content-Encoding other than gzip.",
    },
    503: {
        "model": ErrorBody,
        "description": "Pub/Sub unreachable and the spool full (`spool_full`), or too many "
        "requests in progress (`overloaded`): retry after `Retry-After` seconds.",
        "headers": {
            "Retry-After": {
                "schema": {"type": "integer"},
                "description": "Seconds to wait before retrying.",
            }
        },
    },
    500: {
        "model": ErrorBody,
        "description": "Pub/Sub refused the request's messages for good (`publish_refused`); "
        "nothing of it is spooled.",
    },
}

SECURITY = [{"basicAuth": []}, {"bearerAuth": []}, {}]


def event_body(kind: str) -> dict[str, Any]:
    """The request body of a single-event route."""
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


def openapi_schema(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema of the routes, plus the contract's models and the auth schemes
    (requests are read as bytes, so FastAPI cannot infer either)."""
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
