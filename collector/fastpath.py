"""The hot path of /v1/batch: the body decoded, checked and re-encoded with the compiled
contract (`platform_core.contract_compiled`), one msgspec object per event, no dict.

`decode_batch` runs before authentication (it replaces parsing the body, whose errors come
first): one pass of msgspec over the whole body. Each event is then either *fast* (a decoded
message the compiled check accepts) or *exact*: the event as orjson parses it, handed to the
exact path (`collector.ingest`, the pydantic contract), which decides with the contract's own
rules and reasons. An event is exact when the compiled check refuses it (stricter than the
contract in places, see its docstring) or when its stamping needs the exact path's rules
(no messageId, a writeKey or receivedAt of its own, a context or integrations to merge with
the batch's). When the body itself is not one the compiled types describe, `decode_batch`
returns None and the whole request takes the exact path, which answers as it always did.

`ingest_decoded` runs after authentication and the batch limits: it stamps each fast event
(receivedAt, the batch's sentAt, context and integrations where it has none), encodes it,
checks its size, and hands everything else to the exact path, keeping the batch order of
messages and rejections. What is published is the same event either way; the fast path
writes it with msgspec instead of orjson: the same JSON, keys in the contract's order,
integers beyond 64 bits as sent (orjson would round them to floats).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from msgspec import UNSET, Raw, UnsetType

from collector import wire
from collector.auth import Redactor
from collector.config import MAX_EVENT_BYTES
from collector.ingest import Ingested, MessageBatch, check_batch_limits, merge_batch_fields
from platform_core.contract import stamp_received
from platform_core.contract_compiled import (
    Message,
    context_canonical,
    datetimes_valid,
    messages_valid,
)


class NotJson(ValueError):
    """The body is not JSON after all (an event only orjson could judge): parse it whole for
    the exact error."""


class _Body(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A batch body, every event decoded with the compiled contract."""

    batch: list[Message]  # type: ignore[valid-type]
    sentAt: Any = UNSET
    context: Any = UNSET
    integrations: Any = UNSET
    writeKey: Any = UNSET


class _RawBody(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """The same body with each event kept as its JSON, for bodies whose events are not all
    compiled-contract messages."""

    batch: list[Raw]
    sentAt: Any = UNSET
    context: Any = UNSET
    integrations: Any = UNSET
    writeKey: Any = UNSET


_BODY = msgspec.json.Decoder(_Body)
_RAW_BODY = msgspec.json.Decoder(_RawBody)
_MESSAGE = msgspec.json.Decoder(Message)
_ENCODE = msgspec.json.Encoder().encode
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError)


class Decoded:
    """A batch body as `decode_batch` found it: per event a decoded message, or the parsed
    JSON the exact path takes (`item`)."""

    def __init__(self, body: bytes, events: list[Any], fields: _Body | _RawBody) -> None:
        self.body = body
        self.events = events
        sent_at, context = fields.sentAt, fields.context
        integrations = fields.integrations
        # as the exact path reads them (collector.ingest.ingest_batch)
        self.sent_at = None if sent_at is UNSET else sent_at
        self.context = context if type(context) is dict and context else None
        self.integrations = integrations if type(integrations) is dict and integrations else None
        self.write_key = None if fields.writeKey is UNSET else fields.writeKey
        self._raws: list[Raw] | None = None

    def payload_key(self) -> dict[str, Any]:
        """The body's own fields, for `collector.auth.key_from_body`."""
        return {} if self.write_key is None else {"writeKey": self.write_key}

    def item(self, index: int) -> Any:
        """Event `index` as orjson parses it (what the exact path takes)."""
        event = self.events[index]
        if not isinstance(event, msgspec.Struct):
            return event
        try:
            if self._raws is None:
                self._raws = _RAW_BODY.decode(self.body).batch
            return orjson.loads(bytes(self._raws[index]))
        except (*_DECODE_ERRORS, orjson.JSONDecodeError):
            raise NotJson from None


def decode_batch(body: bytes) -> Decoded | None:
    """Decode a /v1/batch body with the compiled contract; None when the body is not one it
    describes (the exact path then parses it). Raises NotJson when an event is not JSON."""
    try:
        fields: _Body | _RawBody = _BODY.decode(body)
        return Decoded(body, fields.batch, fields)  # type: ignore[union-attr]
    except _DECODE_ERRORS:
        pass
    try:
        fields = _RAW_BODY.decode(body)
    except _DECODE_ERRORS:
        return None
    events: list[Any] = []
    for raw in fields.batch:
        try:
            events.append(_MESSAGE.decode(raw))
        except _DECODE_ERRORS:
            try:
                events.append(orjson.loads(bytes(raw)))
            except orjson.JSONDecodeError:
                raise NotJson from None
    return Decoded(body, events, fields)


def ingest_decoded(
    decoded: Decoded, source: str, received_at_z: str, redactor: Redactor
) -> Ingested:
    """The messages of a decoded batch (see the module docstring). Raises ApiError (413) when
    the batch is out of limits, as the exact path does."""
    check_batch_limits(len(decoded.events), decoded.sent_at, decoded.context, decoded.integrations)
    batch = MessageBatch(source, received_at_z, redactor)
    fields = _BatchFields(decoded, received_at_z)
    indexes, messages = _taken(decoded.events, fields)
    exact = _publish(batch, indexes, messages, fields)
    if len(indexes) < len(decoded.events):
        exact += sorted(set(range(len(decoded.events))) - set(indexes))
    for index in exact:
        _exact(batch, decoded, index, received_at_z, source)
    return batch.finish()


def _exact(
    batch: MessageBatch, decoded: Decoded, index: int, received_at_z: str, source: str
) -> None:
    """Event `index` through the exact path, stamped and merged as collector.ingest does."""
    item = decoded.item(index)
    if not isinstance(item, dict):
        batch.reject(index, item, "invalid_event", "event must be a JSON object")
        return
    stamped = stamp_received(item, received_at_z, None, source)
    merge_batch_fields(stamped, decoded.sent_at, decoded.context, decoded.integrations)
    batch.add(index, item, stamped)


class _BatchFields:
    """The batch's own fields as the fast path stamps them on its events."""

    def __init__(self, decoded: Decoded, received_at_z: str) -> None:
        self.received = Raw(orjson.dumps(received_at_z))
        self.sent_at = decoded.sent_at
        self.integrations = decoded.integrations
        # the batch's context, for events without one: None when there is none, UNSET when
        # the contract may refuse it (those events then take the exact path)
        self.context: Raw | None | UnsetType = None
        if decoded.context is not None:
            self.context = context_canonical(_ENCODE(decoded.context)) or UNSET


def _taken(events: list[Any], fields: _BatchFields) -> tuple[list[int], list[Any]]:
    """(batch index, message) of the events the fast path takes: decoded, accepted by the
    compiled contract, and stamped without any of the exact path's rules (a messageId of
    their own; no writeKey or receivedAt to remove; no context or integrations to merge with
    the batch's; the batch's sentAt, if they take it, a string). Their contexts are replaced
    by the canonical ones (`context_canonical`)."""
    batch_context, integrations = fields.context, fields.integrations
    sent_at = fields.sent_at
    odd_sent_at = sent_at is not None and type(sent_at) is not str
    indexes: list[int] = []
    messages: list[Any] = []
    times: list[Any] = []
    last_raw: Raw | None = None  # the events of a batch mostly share their context
    last_canonical: Raw | None = None
    for index, message in enumerate(events):
        if (
            not isinstance(message, msgspec.Struct)
            or type(message.messageId) is not str  # none: derived from the event's content
            or message.writeKey is not UNSET
            or message.receivedAt is not UNSET
            or (integrations is not None and message.integrations is not UNSET)
        ):
            continue
        own_sent_at = message.sentAt
        if own_sent_at is UNSET:
            if odd_sent_at:
                continue  # the batch's sentAt makes the event invalid: the exact reason
            own_sent_at = sent_at
        context = message.context
        if batch_context is not None:
            if context is not UNSET or batch_context is UNSET:
                continue  # merged with the batch's context, or that one is doubtful
        elif context is not UNSET:
            if last_raw is None or context != last_raw:
                canonical = context_canonical(bytes(context))
                if canonical is None:
                    continue
                last_raw, last_canonical = context, canonical
            message.context = last_canonical
        indexes.append(index)
        messages.append(message)
        times += (message.timestamp, message.originalTimestamp, own_sent_at)
    valid = messages_valid(messages)
    if not datetimes_valid([t for t in times if type(t) is str]):  # then event by event
        valid = [
            ok and datetimes_valid([t for t in times[3 * i : 3 * i + 3] if type(t) is str])
            for i, ok in enumerate(valid)
        ]
    if all(valid):
        return indexes, messages
    kept = [i for i, ok in enumerate(valid) if ok]
    return [indexes[i] for i in kept], [messages[i] for i in kept]


_ID_ENTRY = b"\x0a\x0amessage_id\x12"  # a message_id attribute's key, and its value's tag


def _publish(
    batch: MessageBatch, indexes: list[int], messages: list[Any], fields: _BatchFields
) -> list[int]:
    """Stamp, encode and frame the taken messages as Pub/Sub messages (wire format, as
    `wire.message` with the attributes of `ingest.MessageBatch.finish`) into `batch`; the
    indexes of those over 32 KB as stamped (the exact path applies its size rules)."""
    received, sent_at = fields.received, fields.sent_at
    context, integrations = fields.context, fields.integrations
    encode, varint, varints = _ENCODE, wire.varint_of, wire.VARINTS
    events: dict[str, bytes] = {}  # the attributes but message_id: per track event name
    types: dict[str, bytes] = {}  # ... and per type of the other messages
    published: list[bytes] = []
    kinds: list[str] = []
    ids: list[str] = []
    positions: list[int] = []
    too_large: list[int] = []
    size = 0
    for index, message in zip(indexes, messages, strict=True):
        message.receivedAt = received
        if sent_at is not None and message.sentAt is UNSET:
            message.sentAt = sent_at
        if context is not None and message.context is UNSET:
            message.context = context
        if integrations is not None and message.integrations is UNSET:
            message.integrations = integrations
        data = encode(message)
        if len(data) > MAX_EVENT_BYTES:
            too_large.append(index)
            continue
        kind = message.KIND
        if kind == "track":
            prefix = events.get(message.event)
            if prefix is None:
                prefix = events[message.event] = batch.attributes(kind, message.event)
        else:
            prefix = types.get(kind)
            if prefix is None:
                prefix = types[kind] = batch.attributes(kind, None)
        message_id = message.messageId
        value = message_id.encode() if len(message_id) <= 256 else batch.id_value(message_id)
        length = len(value)
        encoded = b"".join(
            (
                b"\x0a",
                varint(len(data)),
                data,
                prefix,
                b"\x12",
                varints[len(_ID_ENTRY) + 1 + (length > 127) + length],
                _ID_ENTRY,
                varints[length],
                value,
            )
        )
        size += len(encoded)
        published.append(encoded)
        kinds.append(kind)
        ids.append(message_id)
        positions.append(index)
    batch.add_encoded(positions, published, kinds, ids, size)
    return too_large
