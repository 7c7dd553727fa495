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
messages and rejections. The compiled contract's rules that its types do not carry (someone
named, timestamps, e-commerce properties) are checked once for all the request's fast events,
and event by event only when that check fails. What is published is the same event either
way; the fast path writes it with msgspec instead of orjson: the same JSON, keys in the
contract's order, integers beyond 64 bits as sent (orjson would round them to floats).
"""

from __future__ import annotations

import operator
from itertools import chain
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
    ECOMMERCE_SCHEMAS,
    Event,
    all_identified,
    context_canonical,
    datetimes_valid,
    messages_valid,
    properties_valid,
    shape_valid,
)


class NotJson(ValueError):
    """The body is not JSON after all (an event only orjson could judge): parse it whole for
    the exact error."""


class _Body(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A batch body, every event decoded with the compiled contract."""

    batch: list[Event]  # type: ignore[valid-type]
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
_MESSAGE = msgspec.json.Decoder(Event)
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
    events = decoded.events
    check_batch_limits(len(events), decoded.sent_at, decoded.context, decoded.integrations)
    batch = MessageBatch(source, received_at_z, redactor)
    fast = _FastMessages(batch, _BatchFields(decoded, received_at_z))
    fast.encode(events)
    fast.drop_invalid()
    batch.add_encoded(
        fast.positions,
        fast.published,
        list(map(_TYPE, fast.messages)),
        list(map(_MESSAGE_ID, fast.messages)),
        sum(map(len, fast.published)),
    )
    for index in fast.exact(len(events)):
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


_TYPE = operator.attrgetter("type")
_MESSAGE_ID = operator.attrgetter("messageId")
_TIMES = operator.attrgetter("timestamp", "originalTimestamp")
_IS_TEXT = str.__instancecheck__  # decoded timestamps are str, None or UNSET
_ID_ENTRY = b"\x0a\x0amessage_id\x12"  # a message_id attribute's key, and its value's tag
# the message_id attribute entry up to its value, per length of the value (at most 1,024
# bytes, wire.MAX_ATTRIBUTE_BYTES)
_ID_HEADS = [
    b"\x12" + wire.varint(len(_ID_ENTRY) + len(wire.varint(n)) + n) + _ID_ENTRY + wire.varint(n)
    for n in range(wire.MAX_ATTRIBUTE_BYTES + 1)
]


class _FastMessages:
    """The events of a batch the fast path takes, stamped and encoded as Pub/Sub messages
    (wire format, as `wire.message` with the attributes of `ingest.MessageBatch.finish`).

    An event is taken when it is decoded, accepted by the compiled contract, and stamped
    without any of the exact path's rules (a messageId of its own; no writeKey or receivedAt
    to remove; no context or integrations to merge with the batch's; the batch's sentAt, if
    it takes it, a string); its context is replaced by the canonical one
    (`context_canonical`). `encode` stamps and encodes every event it may take in one pass
    and gathers what the compiled contract checks for a whole request at once (who the
    message names, timestamps, e-commerce properties); `drop_invalid` applies those checks,
    event by event only when the request's check fails. Events it does not take, and those
    over 32 KB as stamped, go to the exact path (`exact`), which decides with the contract's
    rules and applies its size rules."""

    def __init__(self, batch: MessageBatch, fields: _BatchFields) -> None:
        self.batch = batch
        self.fields = fields
        self.messages: list[Any] = []  # taken, in batch order
        self.positions: list[int] = []  # ... their batch indexes
        self.published: list[bytes] = []  # ... and their Pub/Sub messages
        self.large: list[tuple[int, Any]] = []  # (index, message) over 32 KB as stamped
        self.times: list[Any] = []  # sentAt values to check (and None)
        self.schemas: dict[Any, list[dict[str, Any]]] = {}  # e-commerce schema: properties

    def encode(self, events: list[Any]) -> None:
        fields = self.fields
        received, sent_at = fields.received, fields.sent_at
        batch_context, integrations = fields.context, fields.integrations
        stamp_sent_at = sent_at is not None
        odd_sent_at = stamp_sent_at and type(sent_at) is not str
        if type(sent_at) is str:
            self.times.append(sent_at)  # once: every event without its own takes it
        encode, varint, heads = _ENCODE, wire.varint_of, _ID_HEADS
        valid_shape, taken, published = shape_valid, self.messages, self.published
        positions, times, schemas = self.positions, self.times, self.schemas
        tracks: dict[str, tuple[bytes, list[dict[str, Any]] | None]] = {}  # per event name
        others: dict[str, bytes] = {}  # the attributes but message_id, per message type
        last_raw: Raw | None = None  # the events of a batch mostly share their context
        last_canonical: Raw | None = None
        for index, message in enumerate(events):
            if (
                type(message) is not Event  # not decoded: the exact path's JSON
                or not valid_shape(message)  # no message type: the exact path's reason
                or type(message.messageId) is not str  # none: derived from the content
                or message.writeKey is not UNSET
                or message.receivedAt is not UNSET
                or (integrations is not None and message.integrations is not UNSET)
            ):
                continue
            own_sent_at = message.sentAt
            if own_sent_at is UNSET:
                if odd_sent_at:
                    continue  # the batch's sentAt makes the event invalid: the exact reason
                if stamp_sent_at:
                    message.sentAt = sent_at
            context = message.context
            if batch_context is not None:
                if context is not UNSET or batch_context is UNSET:
                    continue  # merged with the batch's context, or that one is doubtful
                message.context = batch_context
            elif context is not UNSET:
                if last_raw is None or context != last_raw:
                    canonical = context_canonical(bytes(context))
                    if canonical is None:
                        continue
                    last_raw, last_canonical = context, canonical
                message.context = last_canonical
            if integrations is not None and message.integrations is UNSET:
                message.integrations = integrations
            message.receivedAt = received
            data = encode(message)
            if len(data) > MAX_EVENT_BYTES:
                self.large.append((index, message))
                continue
            kind = message.type
            if kind == "track":
                name = message.event
                found = tracks.get(name)
                if found is None:
                    schema = ECOMMERCE_SCHEMAS.get(name)
                    found = tracks[name] = (
                        self.batch.attributes(kind, name),
                        None if schema is None else schemas.setdefault(schema, []),
                    )
                prefix, properties = found
                if properties is not None:
                    own = message.properties
                    properties.append({} if own is UNSET else own)
            else:
                prefix = others.get(kind)
                if prefix is None:
                    prefix = others[kind] = self.batch.attributes(kind, None)
            message_id = message.messageId
            if len(message_id) <= 256:
                value = message_id.encode()
            else:
                value = self.batch.id_value(message_id)
            if own_sent_at is not UNSET:
                times.append(own_sent_at)
            taken.append(message)
            positions.append(index)
            published.append(
                b"".join((b"\x0a", varint(len(data)), data, prefix, heads[len(value)], value))
            )

    def drop_invalid(self) -> None:
        """Leave out (to the exact path) the taken events the compiled contract refuses."""
        times = self.times  # the batch's sentAt, the events' own, then their timestamps
        times += chain.from_iterable(map(_TIMES, self.messages))
        if (
            all_identified(self.messages)
            and datetimes_valid(list(filter(_IS_TEXT, times)))
            and all(properties_valid(s, p) for s, p in self.schemas.items())
        ):
            return
        valid = _valid(self.messages)
        self.positions = [i for i, ok in zip(self.positions, valid, strict=True) if ok]
        self.messages = [m for m, ok in zip(self.messages, valid, strict=True) if ok]
        self.published = [m for m, ok in zip(self.published, valid, strict=True) if ok]

    def exact(self, count: int) -> list[int]:
        """The batch indexes of the events for the exact path: those over 32 KB as stamped
        that the compiled contract accepts, then the others it did not take."""
        if len(self.positions) == count:
            return []
        large = self.large
        too_large = [
            i for (i, _), ok in zip(large, _valid([m for _, m in large]), strict=True) if ok
        ]
        taken = set(self.positions).union(too_large)
        return too_large + [index for index in range(count) if index not in taken]


def _valid(messages: list[Any]) -> list[bool]:
    """Per message, whether the compiled contract accepts it (`messages_valid` and its
    timestamps, the sentAt it was stamped with included)."""
    return [
        ok and datetimes_valid([t for t in (*_TIMES(m), m.sentAt) if type(t) is str])
        for m, ok in zip(messages, messages_valid(messages), strict=True)
    ]
