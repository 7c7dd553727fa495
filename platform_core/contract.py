"""The event contract: Segment-spec messages and the e-commerce events, defined once.

The collector validates incoming events with it, the Beam job re-validates what it reads from
Pub/Sub, and the synthetic shop builds its traffic from it. Field names follow the Segment
spec (camelCase at the top level, snake_case e-commerce properties); unknown fields are kept,
because raw keeps what arrived.

The ingestion-time rules live here too, so the collector and Beam apply the same ones:
the size of a stamped event (`MAX_STAMPED_EVENT_BYTES`), the messageId derived for an event
that has none (`derived_message_id`), the window an event's time is clamped to
(`event_timestamp`), and the redaction of write keys from anything kept as a dead letter
(`redact_write_key_fields`). Its length is on purpose: the contract is one definition that
three services share (and `contract_compiled` derives its fast twin from), so it is read in
one place rather than across files that could drift apart.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NonNegativeFloat,
    PositiveInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)

MESSAGE_TYPES = ("track", "page", "screen", "identify", "group", "alias")
SHORT_PATHS = {
    "t": "track",
    "p": "page",
    "s": "screen",
    "i": "identify",
    "g": "group",
    "a": "alias",
}

# Segment's limit per event (32 KB), plus room for what the collector stamps on it (type,
# messageId, receivedAt). Applied to the event as it will be published: after a batch's
# sentAt, context and integrations are merged into it (collector.ingest), and again by Beam
# on what it reads (raw.rows.event_row).
MAX_EVENT_BYTES = 32 * 1024
STAMP_ALLOWANCE_BYTES = 1024
MAX_STAMPED_EVENT_BYTES = MAX_EVENT_BYTES + STAMP_ALLOWANCE_BYTES

# An event's time (skew-corrected) is kept within this window around its receipt, so a
# client clock years off cannot put rows into hundreds of day partitions. The time as sent
# stays in the payload and in raw's original_timestamp.
MAX_EVENT_AGE = timedelta(days=30)  # offline mobile queues: days, rarely weeks
MAX_EVENT_LEAD = timedelta(days=1)  # time zones and small clock errors ahead of the server

# The namespace of messageIds derived for events that came without one (`derived_message_id`).
COLLECTOR_ID_NAMESPACE = uuid.UUID("5d2f6a4e-8c1b-5e7a-9f3d-1b2c3d4e5f60")
# What a retry may change without being another event: the client's send time and what the
# collector itself stamps; and the write key, which never travels further.
_NOT_CONTENT = ("messageId", "sentAt", "receivedAt", "writeKey")

Id = Annotated[str, Field(min_length=1, max_length=512)]


def text_from_int(value: Any) -> Any:
    """An integer id (not a bool) as text; anything else unchanged, for `str` to judge."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


# The spec says strings, but many clients send numeric product and order ids; keep them as text.
NumericOrTextId = Annotated[
    str, BeforeValidator(text_from_int), Field(min_length=1, max_length=512)
]


class ContractError(ValueError):
    """An event that does not satisfy the contract; `reason` says why in one line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Open(BaseModel):
    """Keeps fields the contract does not name: raw stores what the client sent."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --- context -------------------------------------------------------------------------------


class Campaign(_Open):
    name: str | None = None
    source: str | None = None
    medium: str | None = None
    term: str | None = None
    content: str | None = None


class PageContext(_Open):
    path: str | None = None
    referrer: str | None = None
    search: str | None = None
    title: str | None = None
    url: str | None = None


class Device(_Open):
    id: str | None = None
    type: str | None = None
    manufacturer: str | None = None
    model: str | None = None


class OS(_Open):
    name: str | None = None
    version: str | None = None


class Library(_Open):
    name: str | None = None
    version: str | None = None


class Context(_Open):
    ip: str | None = None
    locale: str | None = None
    userAgent: str | None = None
    timezone: str | None = None
    campaign: Campaign | None = None
    page: PageContext | None = None
    device: Device | None = None
    os: OS | None = None
    library: Library | None = None


# --- messages ------------------------------------------------------------------------------

# A message names who it is about: at least one of these is a non-empty string.
IDENTITY_FIELDS = ("userId", "anonymousId")


class _Message(_Open):
    messageId: Id | None = None
    anonymousId: Id | None = None
    userId: Id | None = None
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    receivedAt: datetime | None = None
    context: Context = Field(default_factory=Context)
    integrations: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _identified(self) -> _Message:
        if not any(getattr(self, name) for name in IDENTITY_FIELDS):
            raise ValueError("either userId or anonymousId is required")
        return self

    @property
    def event_time_as_sent(self) -> datetime | None:
        """The client's own clock reading for when the event happened."""
        return self.originalTimestamp or self.timestamp


class Track(_Message):
    type: Literal["track"] = "track"
    event: Annotated[str, Field(min_length=1, max_length=200)]
    properties: dict[str, Any] = Field(default_factory=dict)


class Page(_Message):
    type: Literal["page"] = "page"
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Screen(_Message):
    type: Literal["screen"] = "screen"
    name: str | None = None
    category: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Identify(_Message):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)


class Group(_Message):
    type: Literal["group"] = "group"
    groupId: Id
    traits: dict[str, Any] = Field(default_factory=dict)


class Alias(_Message):
    type: Literal["alias"] = "alias"
    previousId: Id
    userId: Id


Message = Annotated[Track | Page | Screen | Identify | Group | Alias, Field(discriminator="type")]
_MESSAGE = TypeAdapter(Message)


# --- e-commerce properties (Segment e-commerce spec v2) ------------------------------------


class Product(_Open):
    product_id: NumericOrTextId
    sku: str | None = None
    category: str | None = None
    name: str | None = None
    brand: str | None = None
    variant: str | None = None
    price: NonNegativeFloat | None = None
    quantity: PositiveInt | None = None
    coupon: str | None = None
    position: int | None = None
    url: str | None = None
    image_url: str | None = None


class ProductEvent(Product):
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    value: NonNegativeFloat | None = None
    cart_id: str | None = None


class ProductListEvent(_Open):
    list_id: str | None = None
    category: str | None = None
    products: list[Product] = Field(default_factory=list)


class ProductsSearched(_Open):
    query: str


class CartEvent(_Open):
    cart_id: str | None = None
    products: list[Product] = Field(default_factory=list)


class CheckoutEvent(_Open):
    checkout_id: str | None = None
    order_id: str | None = None
    value: NonNegativeFloat | None = None
    revenue: NonNegativeFloat | None = None
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    products: list[Product] = Field(default_factory=list)


class CheckoutStepEvent(_Open):
    checkout_id: str | None = None
    step: PositiveInt | None = None
    shipping_method: str | None = None
    payment_method: str | None = None


class OrderEvent(_Open):
    order_id: NumericOrTextId
    checkout_id: str | None = None
    affiliation: str | None = None
    total: NonNegativeFloat | None = None
    subtotal: NonNegativeFloat | None = None
    revenue: NonNegativeFloat | None = None
    shipping: NonNegativeFloat | None = None
    tax: NonNegativeFloat | None = None
    discount: NonNegativeFloat | None = None
    coupon: str | None = None
    currency: Annotated[str, Field(min_length=3, max_length=3)] | None = None
    products: list[Product] = Field(default_factory=list)


class CouponEvent(_Open):
    order_id: str | None = None
    cart_id: str | None = None
    coupon_id: str | None = None
    coupon_name: str | None = None
    discount: NonNegativeFloat | None = None


class PromotionEvent(_Open):
    promotion_id: str | None = None
    creative: str | None = None
    name: str | None = None
    position: str | None = None


ECOMMERCE_EVENTS: dict[str, type[_Open]] = {
    "Products Searched": ProductsSearched,
    "Product List Viewed": ProductListEvent,
    "Product List Filtered": ProductListEvent,
    "Promotion Viewed": PromotionEvent,
    "Promotion Clicked": PromotionEvent,
    "Product Clicked": ProductEvent,
    "Product Viewed": ProductEvent,
    "Product Added": ProductEvent,
    "Product Removed": ProductEvent,
    "Product Added to Wishlist": ProductEvent,
    "Product Removed from Wishlist": ProductEvent,
    "Product Shared": ProductEvent,
    "Product Reviewed": ProductEvent,
    "Cart Viewed": CartEvent,
    "Cart Shared": CartEvent,
    "Checkout Started": CheckoutEvent,
    "Checkout Step Viewed": CheckoutStepEvent,
    "Checkout Step Completed": CheckoutStepEvent,
    "Payment Info Entered": CheckoutStepEvent,
    "Order Updated": OrderEvent,
    "Order Completed": OrderEvent,
    "Order Refunded": OrderEvent,
    "Order Cancelled": OrderEvent,
    "Coupon Entered": CouponEvent,
    "Coupon Applied": CouponEvent,
    "Coupon Denied": CouponEvent,
    "Coupon Removed": CouponEvent,
}
_ECOMMERCE_ADAPTERS = {name: TypeAdapter(model) for name, model in ECOMMERCE_EVENTS.items()}


def _reason(error: ValidationError, prefix: str = "") -> str:
    first = error.errors(include_url=False)[0]
    loc = ".".join(str(part) for part in first["loc"] if part not in MESSAGE_TYPES)
    where = f"{prefix}{loc}" if loc else prefix.rstrip(".") or "message"
    return f"{where}: {first['msg']}"


def parse_message(
    data: Any, default_type: str | None = None
) -> Track | Page | Screen | Identify | Group | Alias:
    """Validate one message against the contract.

    `default_type` is the type implied by the route (`/v1/track` sends no `type` field).
    E-commerce events are checked against their property schema; other track events only
    against the generic shape. Raises ContractError with a one-line reason.
    """
    if not isinstance(data, dict):
        raise ContractError("event must be a JSON object")
    if "type" not in data and default_type is not None:
        data = {**data, "type": default_type}
    kind = data.get("type")
    if kind not in MESSAGE_TYPES:
        raise ContractError(f"type: must be one of {', '.join(MESSAGE_TYPES)}, got {kind!r}")
    try:
        message = _MESSAGE.validate_python(data)
    except ValidationError as error:
        raise ContractError(_reason(error)) from None
    if isinstance(message, Track):
        adapter = _ECOMMERCE_ADAPTERS.get(message.event)
        if adapter is not None:
            try:
                adapter.validate_python(message.properties)
            except ValidationError as error:
                raise ContractError(_reason(error, f"{message.event} properties.")) from None
    return message


def new_message_id() -> str:
    return str(uuid.uuid4())


def derived_message_id(source: str, message: dict[str, Any]) -> str:
    """The messageId of an event sent without one, the same each time the client retries it:
    uuid5(COLLECTOR_ID_NAMESPACE, source + "\\n" + the event as compact JSON with sorted keys,
    without messageId, sentAt, receivedAt and writeKey). Two events identical in everything
    (same source, type, ids, timestamp and properties) get the same id and count once;
    clients that send such events on purpose must send a messageId (every SDK does)."""
    content = {k: v for k, v in message.items() if k not in _NOT_CONTENT}
    try:
        canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # nested too deeply: the event is refused anyway
        return new_message_id()
    return str(uuid.uuid5(COLLECTOR_ID_NAMESPACE, source + "\n" + canonical.decode()))


def corrected_timestamp(
    original: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """Segment's clock-skew rule: timestamp = receivedAt - (sentAt - originalTimestamp).

    Without both client readings the best estimate is the client's timestamp, or the
    server's receipt time when the client sent none.
    """
    if original is None:
        return received_at
    if sent_at is None:
        return _aware(original)
    return received_at - (_aware(sent_at) - _aware(original))


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def event_timestamp(
    original: datetime | None, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """The time an event is filed under: `corrected_timestamp`, clamped to
    [received_at - MAX_EVENT_AGE, received_at + MAX_EVENT_LEAD]. A client clock far off
    (year 1, year 9999) lands on the nearest edge instead of overflowing."""
    received_at = _aware(received_at)
    earliest, latest = received_at - MAX_EVENT_AGE, received_at + MAX_EVENT_LEAD
    try:
        corrected = _aware(corrected_timestamp(original, sent_at, received_at))
    except OverflowError:  # beyond year 1..9999: the sign of the skew says which edge
        original_aware = _aware(original) if original is not None else received_at
        reference = _aware(sent_at) if sent_at is not None else received_at
        return earliest if original_aware < reference else latest
    return min(max(corrected, earliest), latest)


def isoformat_z(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as Segment's libraries send."""
    value = _aware(value).astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def stamp(
    message: dict[str, Any],
    received_at: datetime,
    default_type: str | None = None,
    source: str = "",
) -> dict[str, Any]:
    """What the collector adds to a message on receipt: type from the route, a messageId when
    the client sent none (`derived_message_id`), and receivedAt. The write key never travels
    further."""
    return stamp_received(message, isoformat_z(received_at), default_type, source)


def stamp_received(
    message: dict[str, Any],
    received_at_z: str,
    default_type: str | None = None,
    source: str = "",
) -> dict[str, Any]:
    """`stamp` with receivedAt already formatted (`isoformat_z(received_at)`), for the
    collector's hot path: it formats the receipt time once per request, not once per event."""
    stamped = dict(message)
    stamped.pop("writeKey", None)
    if default_type is not None and "type" not in stamped:
        stamped["type"] = default_type
    if not stamped.get("messageId"):
        stamped["messageId"] = derived_message_id(source, stamped)
    stamped["receivedAt"] = received_at_z
    return stamped


# A write key field anywhere in a JSON text (`writeKey`, `write_key`, any case) and its string
# value, up to its closing quote or, in a truncated text, to the end. Dead letters keep what a
# client sent, except this.
_WRITE_KEY_FIELD = re.compile(rb'("write_?key"\s*:\s*)"(?:[^"\\]|\\.)*"?', re.IGNORECASE)
REDACTED = b'"[redacted]"'


def redact_write_key_fields(data: bytes) -> bytes:
    """`data` with the value of every write key field replaced by "[redacted]" (at any
    depth; on JSON text, valid or not). The collector also removes the configured keys'
    values wherever else they appear (collector.auth.Redactor); Beam, which knows no keys,
    applies this to every dead-letter row."""
    return _WRITE_KEY_FIELD.sub(rb"\1" + REDACTED, data)


_MESSAGES = TypeAdapter(list[Message])
_CONTEXT = TypeAdapter(Context)
_ECOMMERCE_LISTS = {name: TypeAdapter(list[model]) for name, model in ECOMMERCE_EVENTS.items()}


def check_messages(messages: list[dict[str, Any]]) -> list[str | None]:
    """Validate many messages at once: per message None (valid) or the one-line reason
    `parse_message` would give.

    The same checks as `parse_message`, arranged for throughput: one call into pydantic for
    the whole list (and one per e-commerce event name) instead of one or two per message,
    and each distinct `context` object validated once (the events of a batch come from one
    device and share it; the context is checked on its own and the message with an empty
    one, which is equivalent because no other check looks at the context). Any message of
    a group that fails is re-checked alone with `parse_message` for its exact reason."""
    reasons: list[str | None] = [None] * len(messages)
    if not messages:
        return reasons
    try:
        shallow = _without_contexts(messages)
        parsed = _MESSAGES.validate_python(shallow)
    except (ValidationError, ValueError):
        return [_reason_of(m) for m in messages]
    groups: dict[str, list[int]] = {}
    for index, message in enumerate(parsed):
        if isinstance(message, Track) and message.event in _ECOMMERCE_LISTS:
            groups.setdefault(message.event, []).append(index)
    for name, indices in groups.items():
        try:
            _ECOMMERCE_LISTS[name].validate_python([parsed[i].properties for i in indices])
        except ValidationError:
            for i in indices:
                reasons[i] = _reason_of(messages[i])
    return reasons


def _without_contexts(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with each non-empty dict `context` validated (once per distinct value)
    and replaced by {}; raises ValueError/ValidationError when anything is off."""
    checked: set[bytes] = set()
    shallow = []
    for message in messages:
        if not isinstance(message, dict) or message.get("type") not in MESSAGE_TYPES:
            raise ValueError("untyped message")
        context = message.get("context")
        if type(context) is dict and context:
            try:
                key = orjson.dumps(context)
            except orjson.JSONEncodeError:
                raise ValueError("context not encodable") from None
            if key not in checked:
                _CONTEXT.validate_python(context)
                checked.add(key)
            message = {**message, "context": {}}
        shallow.append(message)
    return shallow


def _reason_of(message: Any) -> str | None:
    try:
        parse_message(message)
    except ContractError as error:
        return error.reason
    return None
