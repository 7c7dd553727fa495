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

Limits (collector.config) are checked here before the work they bound: the number of events
of a batch and the size of its shared fields x its events before the per-event loop; each
event's size as stamped (after the merge) and the request's running total of encoded bytes
as each event is encoded, before validation. Dead letters keep the event as received, minus
any write key (`collector.auth.Redactor`).

Messages are returned already encoded (`collector.wire`), ready for a Publish RPC.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson

from collector import wire
from collector.auth import Redactor
from collector.config import MAX_BATCH_EVENTS, MAX_EVENT_BYTES, MAX_REQUEST_MESSAGE_BYTES
from collector.errors import ApiError
from platform_core.contract import (
    MAX_STAMPED_EVENT_BYTES,
    MESSAGE_TYPES,
    check_messages,
    stamp_received,
)

STAGE = "collector"

_TYPE_ATTRIBUTE = {kind: wire.attribute("type", kind) for kind in MESSAGE_TYPES}
_NO_EVENT = wire.attribute("event", "")
_EVENT_ATTRIBUTES: dict[str, bytes] = {}  # event name -> encoded attribute (bounded cache)
_EVENT_CACHE_SIZE = 2048
_SOURCE_ATTRIBUTES: dict[str, bytes] = {}  # source -> encoded attribute (bounded cache)
_NO_KEYS = Redactor()  # write key fields only, when the caller knows no configured keys


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


def dead_letter(
    data: bytes, source: str, reason: str, message_id: Any = None, redactor: Redactor = _NO_KEYS
) -> bytes:
    """An encoded dead-letter message: the event as received and why it was refused, with
    every write key removed from all three (a client may put its key anywhere)."""
    values = {
        "source": wire.attribute_value(source),
        "error": wire.attribute_value(" ".join(redactor.redact_text(reason).split())),
        "stage": STAGE,
    }
    if isinstance(message_id, str) and message_id:
        values["message_id"] = wire.attribute_value(redactor.redact_text(message_id))
    return wire.message(redactor.redact(data), wire.attributes(values))


def request_too_large(reason: str) -> ApiError:
    return ApiError(
        413,
        "request_too_large",
        f"the request's events exceed {MAX_REQUEST_MESSAGE_BYTES // (1024 * 1024)} MB once stamped",
        reason,
    )


def _source_attribute(source: str) -> bytes:
    encoded = _SOURCE_ATTRIBUTES.get(source)
    if encoded is None:  # sources are the configured write keys' (a bounded cache anyway)
        encoded = wire.attribute("source", source)
        if len(_SOURCE_ATTRIBUTES) < _EVENT_CACHE_SIZE:
            _SOURCE_ATTRIBUTES[source] = encoded
    return encoded


def _event_attribute(name: str) -> bytes:
    encoded = _EVENT_ATTRIBUTES.get(name)
    if encoded is None:
        encoded = wire.attribute("event", name)
        if len(_EVENT_ATTRIBUTES) < _EVENT_CACHE_SIZE:
            _EVENT_ATTRIBUTES[name] = encoded
    return encoded


class MessageBatch:
    """Collects a request's events: those the fast path already encoded (`add_encoded`,
    collector.fastpath) and those the exact path validates together at the end (`add`, then
    `check_messages` in `finish`); the result keeps the batch order."""

    def __init__(self, source: str, received_at_z: str, redactor: Redactor) -> None:
        self.source = source
        self.redactor = redactor
        self.result = Ingested()
        self.size = 0  # bytes of every message encoded so far (MAX_REQUEST_MESSAGE_BYTES)
        # attribute entries shared by every event of the request
        self.common = _source_attribute(source) + wire.attribute("received_at", received_at_z)
        self.pending: list[tuple[int | None, Any, dict[str, Any], bytes, bytes | None]] = []
        self.positions: list[int] = []  # batch index of each message, when both paths added

    def attributes(self, kind: str, event: str | None) -> bytes:
        """The encoded attributes of an event of this request but its message_id."""
        return (
            self.common
            + _TYPE_ATTRIBUTE[kind]
            + (_NO_EVENT if event is None else _event_attribute(event))
        )

    @staticmethod
    def id_value(message_id: str) -> bytes:
        """A message_id as an attribute value (Pub/Sub takes at most 1,024 bytes)."""
        return wire.attribute_value(message_id).encode()

    def add_encoded(
        self,
        indexes: list[int],
        messages: list[bytes],
        kinds: list[str],
        message_ids: list[str],
        size: int,
    ) -> None:
        """Events the fast path (collector.fastpath) stamped, checked and encoded as Pub/Sub
        messages (`size` bytes together), each within 32 KB: counted towards the request's
        limit together, once encoded (they come from a body of at most 500 KB and the batch's
        shared fields were bounded before, so what they hold meanwhile is bounded too)."""
        self._count(size)
        result = self.result
        result.messages += messages
        result.accepted_types.update(kinds)
        result.message_ids += message_ids
        self.positions += indexes

    def reject(
        self, index: int | None, item: Any, code: str, reason: str, raw: bytes | None = None
    ) -> None:
        message_id = item.get("messageId") if isinstance(item, dict) else None
        message_id = message_id if isinstance(message_id, str) else None
        data = raw if raw is not None else dump_any(item)
        letter = dead_letter(data, self.source, reason, message_id, self.redactor)
        self._count(len(letter))
        redacted_id = self.redactor.redact_text(message_id) if message_id else None
        self.result.rejections.append(
            Rejection(index, code, self.redactor.redact_text(reason), redacted_id)
        )
        self.result.dead_letters.append(letter)

    def _count(self, size: int) -> None:
        # Limit check: the request's encoded messages so far (see collector.config).
        self.size += size
        if self.size > MAX_REQUEST_MESSAGE_BYTES:
            raise request_too_large(
                f"the events and dead letters of this request come to more than "
                f"{MAX_REQUEST_MESSAGE_BYTES} bytes once stamped; send fewer or smaller events"
            )

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
        # Limit check: the event as sent (32 KB) and as it will be published, with the
        # batch's fields merged in (32 KB + what the collector stamps), before it is
        # validated; then the request's running total.
        if len(data) > MAX_EVENT_BYTES and (
            len(data) > MAX_STAMPED_EVENT_BYTES or len(dump_any(item)) > MAX_EVENT_BYTES
        ):
            self.reject(
                index,
                item,
                "event_too_large",
                f"event is larger than {MAX_EVENT_BYTES} bytes (Segment's 32 KB limit per "
                f"event; {len(data)} bytes as stamped, with the batch's sentAt, context and "
                "integrations merged in)",
                raw,
            )
            return
        self._count(len(data))
        self.pending.append((index, item, stamped, data, raw))

    def finish(self) -> Ingested:
        pending = self.pending
        reasons = check_messages([stamped for _, _, stamped, _, _ in pending])
        result = self.result
        messages, ids, types = result.messages, result.message_ids, result.accepted_types
        fast = len(messages)  # messages the fast path added come first in the lists
        positions = self.positions
        common = self.common
        for (index, item, stamped, data, raw), reason in zip(pending, reasons, strict=True):
            if reason is not None:
                self.size -= len(data)  # not published after all: its dead letter counts
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
            positions.append(index or 0)
        if fast and len(messages) > fast:  # both paths: back to batch order
            order = sorted(range(len(messages)), key=positions.__getitem__)
            result.messages = [messages[i] for i in order]
            result.message_ids = [ids[i] for i in order]
        if len(result.rejections) > 1:  # in batch order, whatever stage refused them
            pairs = sorted(
                zip(result.rejections, result.dead_letters, strict=True),
                key=lambda pair: pair[0].index or 0,
            )
            result.rejections = [r for r, _ in pairs]
            result.dead_letters = [d for _, d in pairs]
        return result


def ingest_event(
    payload: Any,
    raw: bytes,
    source: str,
    received_at_z: str,
    route_type: str,
    redactor: Redactor = _NO_KEYS,
) -> Ingested:
    """One event from a single-event route (`/v1/track`, `/v1/t`, ...); `raw` is the body,
    which is what the dead-letter topic gets (redacted) if the event is refused."""
    batch = MessageBatch(source, received_at_z, redactor)
    if not isinstance(payload, dict):
        batch.reject(None, payload, "invalid_event", "event must be a JSON object", raw)
        return batch.result
    batch.add(None, payload, stamp_received(payload, received_at_z, route_type, source), raw)
    return batch.finish()


def ingest_batch(
    payload: Any, raw: bytes, source: str, received_at_z: str, redactor: Redactor = _NO_KEYS
) -> Ingested:
    """A `/v1/batch` (or analytics.js `/v1/b`) body: `{"batch": [...], "sentAt", ...}`.
    Raises ApiError: 400 `invalid_batch` when it is not one, 413 when it is out of limits."""
    if not isinstance(payload, dict) or not isinstance(payload.get("batch"), list):
        raise ApiError(
            400,
            "invalid_batch",
            "body must be an object with a `batch` array",
            'a batch request is {"batch": [event, ...], "sentAt": ...}; '
            "send single events to /v1/track, /v1/page, ...",
        )
    items = payload["batch"]
    sent_at = payload.get("sentAt")
    context = payload.get("context")
    context = context if isinstance(context, dict) and context else None
    integrations = payload.get("integrations")
    integrations = integrations if isinstance(integrations, dict) and integrations else None
    check_batch_limits(len(items), sent_at, context, integrations)
    batch = MessageBatch(source, received_at_z, redactor)
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            batch.reject(index, item, "invalid_event", "event must be a JSON object")
            continue
        stamped = stamp_received(item, received_at_z, None, source)
        merge_batch_fields(stamped, sent_at, context, integrations)
        batch.add(index, item, stamped)
    return batch.finish()


def merge_batch_fields(
    stamped: dict[str, Any],
    sent_at: Any,
    context: dict[str, Any] | None,
    integrations: dict[str, Any] | None,
) -> None:
    """Segment's batch semantics on one stamped event: the batch's sentAt when it has none,
    the batch's context and integrations under its own (its keys win)."""
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


def check_batch_limits(count: int, sent_at: Any, context: Any, integrations: Any) -> None:
    """Limit checks before any per-event work: the number of events, and the batch's shared
    fields, which are copied into every event (collector.config)."""
    if count > MAX_BATCH_EVENTS:
        raise ApiError(
            413,
            "too_many_events",
            f"a batch holds at most {MAX_BATCH_EVENTS} events",
            f"the batch has {count} events; send at most {MAX_BATCH_EVENTS} per request "
            "(Pub/Sub's limit per publish request)",
        )
    shared = sum(_size(value) for value in (sent_at, context, integrations) if value is not None)
    if shared > MAX_EVENT_BYTES:
        raise ApiError(
            413,
            "batch_context_too_large",
            f"the batch's shared fields exceed {MAX_EVENT_BYTES // 1024} KB",
            f"the batch's sentAt, context and integrations ({shared} bytes) are merged into "
            f"each event, which may be at most {MAX_EVENT_BYTES} bytes",
        )
    if shared * count > MAX_REQUEST_MESSAGE_BYTES:
        raise request_too_large(
            f"the batch's sentAt, context and integrations ({shared} bytes) are merged into "
            f"each of its {count} events: {shared * count} bytes, more than "
            f"{MAX_REQUEST_MESSAGE_BYTES}; send the context with fewer events per batch"
        )


def _size(value: Any) -> int:
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:  # nested too deeply: each event carrying it is refused
        return 0
