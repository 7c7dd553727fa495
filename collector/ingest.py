"""From a parsed request body to Pub/Sub messages: split, stamp, validate, route.

Each accepted event becomes one message on the events topic (data = the stamped event as
compact JSON; attributes source, type, event, message_id, received_at; see
/work/notes/interfaces.md); each rejected one becomes one message on the dead-letter topic
(data = the event as received, attributes source, error, stage, message_id). A bad event in
a batch never rejects its neighbours.

Batches follow Segment's batch semantics: the batch's `sentAt` is the `sentAt` of every
event that has none of its own (server SDKs send it only at batch level, and the
skew-corrected timestamp needs it), and batch-level `context` / `integrations` are merged
into each event (the event's own keys win).

Messages are returned already encoded (`collector.wire`), ready for a Publish RPC.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from collector import wire
from collector.config import MAX_EVENT_BYTES
from collector.errors import ApiError
from platform_core.contract import MESSAGE_TYPES, check_messages, stamp_received

STAGE = "collector"

_TYPE_ATTRIBUTE = {kind: wire.attribute("type", kind) for kind in MESSAGE_TYPES}
_NO_EVENT = wire.attribute("event", "")
_EVENT_ATTRIBUTES: dict[str, bytes] = {}  # event name -> encoded attribute (bounded cache)
_EVENT_CACHE_SIZE = 2048


@dataclass
class Rejection:
    index: int | None
    code: str
    reason: str
    message_id: str | None


@dataclass
class Ingested:
    """What one request turned into."""

    messages: list[bytes] = field(default_factory=list)  # encoded, for the events topic
    dead_letters: list[bytes] = field(default_factory=list)  # encoded, dead-letter topic
    rejections: list[Rejection] = field(default_factory=list)
    accepted_types: Counter[str] = field(default_factory=Counter)
    message_ids: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return len(self.messages)


def dump_any(value: Any) -> bytes:
    """Compact JSON of a parsed value, whatever its depth (for dead letters)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        try:
            return json.dumps(value, separators=(",", ":")).encode()
        except (ValueError, RecursionError):
            return b'"<event could not be re-encoded: nested too deeply>"'


def dead_letter(data: bytes, source: str, reason: str, message_id: Any = None) -> bytes:
    """An encoded dead-letter message: the event as received and why it was refused."""
    values = {
        "source": wire.attribute_value(source),
        "error": wire.attribute_value(" ".join(reason.split())),
        "stage": STAGE,
    }
    if isinstance(message_id, str) and message_id:
        values["message_id"] = wire.attribute_value(message_id)
    return wire.message(data, wire.attributes(values))


def _event_attribute(name: str) -> bytes:
    encoded = _EVENT_ATTRIBUTES.get(name)
    if encoded is None:
        encoded = wire.attribute("event", name)
        if len(_EVENT_ATTRIBUTES) < _EVENT_CACHE_SIZE:
            _EVENT_ATTRIBUTES[name] = encoded
    return encoded


class _Batch:
    """Collects a request's events, then validates them together (`check_messages`)."""

    def __init__(self, source: str, received_at_z: str) -> None:
        self.source = source
        self.result = Ingested()
        # attribute entries shared by every event of the request
        self.common = wire.attribute("source", source) + wire.attribute(
            "received_at", received_at_z
        )
        self.pending: list[tuple[int | None, Any, dict[str, Any], bytes, bytes | None]] = []

    def reject(
        self, index: int | None, item: Any, code: str, reason: str, raw: bytes | None = None
    ) -> None:
        message_id = item.get("messageId") if isinstance(item, dict) else None
        message_id = message_id if isinstance(message_id, str) else None
        self.result.rejections.append(Rejection(index, code, reason, message_id))
        data = raw if raw is not None else dump_any(item)
        self.result.dead_letters.append(dead_letter(data, self.source, reason, message_id))

    def add(
        self, index: int | None, item: Any, stamped: dict[str, Any], raw: bytes | None = None
    ) -> None:
        try:
            data = orjson.dumps(stamped)
        except orjson.JSONEncodeError:
            self.reject(
                index, item, "invalid_event", "event is nested too deeply to re-encode", raw
            )
            return
        if len(data) > MAX_EVENT_BYTES and len(dump_any(item)) > MAX_EVENT_BYTES:
            self.reject(
                index,
                item,
                "event_too_large",
                f"event is larger than {MAX_EVENT_BYTES} bytes (Segment's 32 KB limit per event)",
                raw,
            )
            return
        self.pending.append((index, item, stamped, data, raw))

    def finish(self) -> Ingested:
        pending = self.pending
        reasons = check_messages([stamped for _, _, stamped, _, _ in pending])
        result = self.result
        messages, ids, types = result.messages, result.message_ids, result.accepted_types
        common = self.common
        for (index, item, stamped, data, raw), reason in zip(pending, reasons, strict=True):
            if reason is not None:
                self.reject(index, item, "invalid_event", reason, raw)
                continue
            kind = stamped["type"]
            message_id = stamped["messageId"]
            if len(message_id) > 256:  # attribute values are limited to 1,024 bytes
                message_id = wire.attribute_value(message_id)
            encoded = (
                common
                + _TYPE_ATTRIBUTE[kind]
                + (_event_attribute(stamped["event"]) if kind == "track" else _NO_EVENT)
                + wire.attribute("message_id", message_id)
            )
            messages.append(wire.message(data, encoded))
            types[kind] += 1
            ids.append(stamped["messageId"])
        if len(result.rejections) > 1:  # in batch order, whatever stage refused them
            pairs = sorted(
                zip(result.rejections, result.dead_letters, strict=True),
                key=lambda pair: pair[0].index or 0,
            )
            result.rejections = [r for r, _ in pairs]
            result.dead_letters = [d for _, d in pairs]
        return result


def ingest_event(
    payload: Any, raw: bytes, source: str, received_at_z: str, route_type: str
) -> Ingested:
    """One event from a single-event route (`/v1/track`, `/v1/t`, ...); `raw` is the body,
    which is what the dead-letter topic gets if the event is refused."""
    batch = _Batch(source, received_at_z)
    if not isinstance(payload, dict):
        batch.reject(None, payload, "invalid_event", "event must be a JSON object", raw)
        return batch.result
    batch.add(None, payload, stamp_received(payload, received_at_z, route_type), raw)
    return batch.finish()


def ingest_batch(payload: Any, raw: bytes, source: str, received_at_z: str) -> Ingested:
    """A `/v1/batch` (or analytics.js `/v1/b`) body: `{"batch": [...], "sentAt", ...}`."""
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise ApiError(
            400,
            "invalid_batch",
            "body must be an object with a `batch` array",
            'a batch request is {"batch": [event, ...], "sentAt": ...}; '
            "send single events to /v1/track, /v1/page, ...",
        )
    batch = _Batch(source, received_at_z)
    sent_at = payload.get("sentAt")
    context = payload.get("context")
    context = context if isinstance(context, dict) and context else None
    integrations = payload.get("integrations")
    integrations = integrations if isinstance(integrations, dict) and integrations else None
    for index, item in enumerate(payload["batch"]):
        if not isinstance(item, dict):
            batch.reject(index, item, "invalid_event", "event must be a JSON object")
            continue
        stamped = stamp_received(item, received_at_z)
        if sent_at is not None and "sentAt" not in stamped:
            stamped["sentAt"] = sent_at
        if context is not None:
            own = stamped.get("context")
            if own is None:
                stamped["context"] = context
            elif isinstance(own, dict):
                stamped["context"] = {**context, **own}
        if integrations is not None:
            own = stamped.get("integrations")
            if own is None:
                stamped["integrations"] = integrations
            elif isinstance(own, dict):
                stamped["integrations"] = {**integrations, **own}
        batch.add(index, item, stamped)
    return batch.finish()
