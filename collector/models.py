"""Request and response models of the HTTP API, for the OpenAPI schema and its examples.

Requests are not parsed through these models (the hot path reads bytes, inflates gzip and
validates each event with `platform_core.contract.parse_message`, so one bad event does not
reject a batch); they document what the API takes and answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from platform_core.contract import Alias, Group, Identify, Message, Page, Screen, Track


class BatchRequest(BaseModel):
    """A batch of events (`/v1/batch`, analytics.js `/v1/b`), as Segment's SDKs send it."""

    model_config = ConfigDict(extra="allow")

    batch: list[Message] = Field(description="The events; each has its `type`.")
    sentAt: datetime | None = Field(
        None, description="Client clock when sending; the `sentAt` of every event without one."
    )
    context: dict[str, Any] | None = Field(
        None, description="Merged into each event's `context` (the event's own keys win)."
    )
    integrations: dict[str, Any] | None = Field(
        None, description="Merged into each event's `integrations`."
    )
    writeKey: str | None = Field(
        None, description="The write key, when not sent in the Authorization header."
    )


class Accepted(BaseModel):
    """The event is in Pub/Sub, or durably spooled for replay."""

    success: Literal[True] = True
    messageId: str = Field(description="The event's messageId (generated when it had none).")
    delivery: Literal["published", "spooled"] = Field(
        description="`published`: Pub/Sub acknowledged it; `spooled`: fsynced to the local "
        "spool, replayed when Pub/Sub is reachable."
    )


class BatchEventError(BaseModel):
    index: int = Field(description="Position of the rejected event in `batch`.")
    code: str = Field(description="`invalid_event` or `event_too_large`.")
    reason: str = Field(description="Why, in one line (also on the dead-letter message).")
    messageId: str | None = None


class BatchAccepted(BaseModel):
    """Every event is either accepted or on the dead-letter topic with its reason."""

    success: Literal[True] = True
    accepted: int = Field(description="Events accepted (published or spooled).")
    rejected: int = Field(description="Events rejected and sent to the dead-letter topic.")
    errors: list[BatchEventError] = Field(
        default_factory=list, description="The rejected events (the first 100)."
    )
    delivery: Literal["published", "spooled"]


class ErrorBody(BaseModel):
    """An error: `code` and `message` as Segment/RudderStack SDKs read them, and a reason."""

    success: Literal[False] = False
    code: str = Field(examples=["invalid_event"])
    message: str = Field(examples=["the event does not satisfy the contract"])
    reason: str = Field(examples=["event: Field required"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    ready: bool
    pubsub_reachable: bool
    spool_full: bool
    spool_events: int


EXAMPLE_TRACK = {
    "type": "track",
    "event": "Product Added",
    "messageId": "ajs-next-5f6a1c9e2b7d4e0f8a3b6c1d9e2f4a7b",
    "anonymousId": "7c1e0f5a-4d7e-4c36-9a0c-2f6f3f1d9b11",
    "userId": "1042",
    "timestamp": "2026-11-26T03:01:12.922Z",
    "sentAt": "2026-11-26T03:01:13.101Z",
    "context": {
        "library": {"name": "analytics.js", "version": "next-1.70.0"},
        "page": {"path": "/products/17", "url": "https://shop.example.com/products/17"},
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/131.0 Safari/537.36",
    },
    "properties": {
        "product_id": "17",
        "sku": "SKU-17",
        "name": "Linen Shirt",
        "category": "Apparel",
        "price": 39.0,
        "quantity": 1,
        "currency": "USD",
    },
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "track": EXAMPLE_TRACK,
    "page": {
        "type": "page",
        "name": "Product",
        "anonymousId": EXAMPLE_TRACK["anonymousId"],
        "properties": {"path": "/products/17"},
    },
    "screen": {"type": "screen", "name": "Cart", "anonymousId": "b7c0e3c2-9f4e-4d1a-8f8b-1e1f"},
    "identify": {"type": "identify", "userId": "1042", "traits": {"email": "ada@example.com"}},
    "group": {"type": "group", "userId": "1042", "groupId": "acme", "traits": {"plan": "pro"}},
    "alias": {"type": "alias", "previousId": EXAMPLE_TRACK["anonymousId"], "userId": "1042"},
}

EXAMPLE_BATCH = {
    "batch": [
        EXAMPLE_TRACK,
        {
            "type": "identify",
            "userId": "1042",
            "messageId": "0b7d3e9a-4f5c-4e1f-9c2a-6d8e1f3a5b7c",
            "timestamp": "2026-11-26T03:01:12.500+00:00",
            "traits": {"email": "ada@example.com"},
        },
    ],
    "sentAt": "2026-11-26T03:01:13.422605+00:00",
    "writeKey": "demo-server-key",
}

MESSAGE_MODELS = {
    "track": Track,
    "page": Page,
    "screen": Screen,
    "identify": Identify,
    "group": Group,
    "alias": Alias,
}


def component_schemas() -> dict[str, Any]:
    """JSON schemas of the request models, as OpenAPI components (`#/components/schemas`)."""
    models = [(model, "validation") for model in MESSAGE_MODELS.values()]
    models.append((BatchRequest, "validation"))
    _, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    return definitions.get("$defs", {})
