"""Hand-written and generated events shared by the tests of the compiled contract
(tests/core/test_contract_compiled.py) and of the collector's fast path
(tests/collector/test_collector_fastpath.py). The valid/invalid verdicts of the hand-written
ones are written from the Segment spec and platform_core.contract's models."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

ANON = "7c1e0f5a-4d7e-4c36-9a0c-2f6f3f1d9b11"
CONTEXT = {
    "ip": "203.0.113.9",
    "userAgent": "Mozilla/5.0",
    "page": {"path": "/p/42", "url": "https://shop.example/p/42", "title": "Shoes"},
    "library": {"name": "analytics.js", "version": "5.2.0"},
    "campaign": {"source": "newsletter", "medium": "email"},
}


def product(**extra: Any) -> dict[str, Any]:
    return {"product_id": "sku-1", "name": "Shoe", "price": 59.9, "quantity": 1, **extra}


# Hand-written: ordinary events the fast path must take (one per type and e-commerce schema).
VALID = [
    {"type": "track", "event": "Product Viewed", "properties": product(currency="EUR")},
    {"type": "track", "event": "Product Added", "properties": product(product_id=42)},
    {"type": "track", "event": "Products Searched", "properties": {"query": "shoes"}},
    {"type": "track", "event": "Product List Viewed", "properties": {"products": [product()]}},
    {"type": "track", "event": "Cart Viewed", "properties": {"cart_id": "c1"}},
    {"type": "track", "event": "Checkout Started", "properties": {"value": 10, "revenue": 9.5}},
    {"type": "track", "event": "Checkout Step Viewed", "properties": {"step": 2}},
    {
        "type": "track",
        "event": "Order Completed",
        "properties": {"order_id": 1001, "total": 99.5, "currency": "USD", "products": []},
    },
    {"type": "track", "event": "Coupon Applied", "properties": {"discount": 5}},
    {"type": "track", "event": "Promotion Viewed", "properties": {"promotion_id": "p1"}},
    {"type": "track", "event": "Signed Up", "properties": {"plan": "pro", "n": 3}},
    {"type": "page", "name": "Home", "properties": {"path": "/"}},
    {"type": "screen", "name": "Cart"},
    {"type": "identify", "userId": "u1", "traits": {"email": "a@example.com"}},
    {"type": "group", "groupId": "g1", "traits": {"name": "Acme"}},
    {"type": "alias", "previousId": ANON, "userId": "u1"},
]

# Hand-written: broken events (the contract's reason in the comment); the compiled check
# must refuse each of them too.
INVALID = [
    {"type": "track", "event": "x", "anonymousId": ""},  # no identity (empty)
    {"type": "track", "event": ""},  # event: at least 1 character
    {"type": "track"},  # event is required
    {"type": "teleport", "event": "x"},  # unknown type
    {"type": "track", "event": "Product Viewed", "properties": product(price=-1)},
    {"type": "track", "event": "Product Viewed", "properties": product(quantity=0)},
    {"type": "track", "event": "Product Viewed", "properties": {"name": "no id"}},
    {"type": "track", "event": "Product Viewed", "properties": product(product_id=True)},
    {"type": "track", "event": "Product Viewed", "properties": product(currency="EURO")},
    {"type": "track", "event": "Order Completed", "properties": {"order_id": ""}},
    {"type": "track", "event": "Products Searched", "properties": {}},
    {"type": "track", "event": "Checkout Step Viewed", "properties": {"step": -2}},
    {"type": "track", "event": "x", "timestamp": "yesterday"},
    {"type": "track", "event": "x", "messageId": "m" * 513},
    {"type": "track", "event": "x", "properties": "not an object"},
    {"type": "alias", "userId": "u1"},  # previousId is required
    {"type": "group", "groupId": ""},
    {"type": "track", "event": "x", "context": {"page": "not an object"}},
]


def with_identity(event: dict[str, Any]) -> dict[str, Any]:
    if "userId" in event or "anonymousId" in event:
        return event
    return {"anonymousId": ANON, **event}


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(["", "2026-12-06T03:59:58Z", "2026-12-06", "12.5", "EUR", "1700000000"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
FIELDS = st.sampled_from(
    [
        "userId",
        "anonymousId",
        "messageId",
        "event",
        "name",
        "timestamp",
        "originalTimestamp",
        "sentAt",
        "properties",
        "traits",
        "context",
        "integrations",
        "groupId",
        "previousId",
        "category",
        "channel",
        "_metadata",
        "extra",
    ]
)
PROPERTY_KEYS = st.sampled_from(
    ["product_id", "order_id", "price", "quantity", "currency", "value", "total", "step"]
    + ["query", "products", "cart_id", "discount", "position", "sku"]
)


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid-looking event of a random type, then a few fields replaced by random values."""
    base = draw(st.sampled_from(VALID))
    event = {**with_identity(base), "messageId": "m-1", "context": dict(CONTEXT)}
    if "properties" in event and draw(st.booleans()):
        properties = dict(event["properties"])
        for _ in range(draw(st.integers(0, 3))):
            properties[draw(PROPERTY_KEYS)] = draw(VALUES)
        event["properties"] = properties
    for _ in range(draw(st.integers(0, 3))):
        field = draw(FIELDS)
        if draw(st.integers(0, 4)) == 0:
            event.pop(field, None)
        else:
            event[field] = draw(VALUES)
    return event
