"""The event contract: Segment-spec messages and the e-commerce events, defined once.

The collector validates incoming events with it, the Beam job re-validates what it reads from
Pub/Sub, and the synthetic shop builds its traffic from it. Field names follow the Segment
spec (camelCase at the top level, snake_case e-commerce properties); unknown fields are kept,
because raw keeps what arrived.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

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

Id = Annotated[str, Field(min_length=1, max_length=512)]
# The spec says strings, but many clients send numeric product and order ids; keep them as text.
NumericOrTextId = Annotated[
    str,
    BeforeValidator(lambda v: str(v) if isinstance(v, int) and not isinstance(v, bool) else v),
    Field(min_length=1, max_length=512),
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
        if not self.userId and not self.anonymousId:
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


def isoformat_z(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision, as Segment's libraries send."""
    value = _aware(value).astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def stamp(
    message: dict[str, Any], received_at: datetime, default_type: str | None = None
) -> dict[str, Any]:
    """What the collector adds to a message on receipt: type from the route, a messageId when
    the client sent none, and receivedAt. The write key never travels further."""
    stamped = {k: v for k, v in message.items() if k != "writeKey"}
    if default_type is not None and "type" not in stamped:
        stamped["type"] = default_type
    if not stamped.get("messageId"):
        stamped["messageId"] = new_message_id()
    stamped["receivedAt"] = isoformat_z(received_at)
    return stamped


def stamp_received(
    message: dict[str, Any], received_at_z: str, default_type: str | None = None
) -> dict[str, Any]:
    """`stamp` with receivedAt already formatted (`isoformat_z(received_at)`), for the
    collector's hot path: it formats the receipt time once per request, not once per event.
    Same result as `stamp(message, received_at, default_type)`."""
    stamped = dict(message)
    stamped.pop("writeKey", None)
    if default_type is not None and "type" not in stamped:
        stamped["type"] = default_type
    if not stamped.get("messageId"):
        stamped["messageId"] = new_message_id()
    stamped["receivedAt"] = received_at_z
    return stamped


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
    import orjson  # the collector's JSON library; imported here to keep the module light

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
