"""Synthetic shop traffic for the benchmark: realistic Segment events of ~0.7 KB."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from platform_core.contract import isoformat_z

UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
NAMES = [
    "Product Viewed",
    "Product Added",
    "Product List Viewed",
    "Cart Viewed",
    "Checkout Started",
    "Order Completed",
    "page",
    "identify",
]


def event(rng: random.Random, now: datetime) -> dict[str, Any]:
    kind = rng.choice(NAMES)
    product = {
        "product_id": str(rng.randrange(1, 500)),
        "sku": f"SKU-{rng.randrange(1000)}",
        "name": "Linen Shirt",
        "category": "Apparel",
        "brand": "Acme",
        "price": round(rng.uniform(5, 200), 2),
        "currency": "USD",
        "quantity": 1,
    }
    base: dict[str, Any] = {
        "messageId": f"ajs-next-{uuid.UUID(int=rng.getrandbits(128)).hex}",
        "anonymousId": str(uuid.UUID(int=rng.getrandbits(128))),
        "userId": str(rng.randrange(1, 10_000)) if rng.random() < 0.4 else None,
        "timestamp": isoformat_z(now - timedelta(seconds=rng.uniform(0, 2))),
        "context": {
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
            "locale": "en-US",
            "userAgent": UA,
            "page": {
                "path": "/products/17",
                "url": "https://shop.example.com/products/17",
                "referrer": "https://www.google.com/",
            },
            "campaign": {"source": "google", "medium": "cpc", "name": "nov-promo"},
        },
        "integrations": {},
    }
    if kind == "page":
        return {**base, "type": "page", "name": "Product", "properties": {"path": "/p/17"}}
    if kind == "identify":
        return {**base, "type": "identify", "userId": "42", "traits": {"email": "a@example.com"}}
    if kind in ("Product List Viewed", "Cart Viewed", "Checkout Started"):
        properties: dict[str, Any] = {"products": [product], "cart_id": "c-1"}
    elif kind == "Order Completed":
        properties = {
            "order_id": f"o-{rng.randrange(10**6)}",
            "total": 42.0,
            "currency": "USD",
            "products": [product],
        }
    else:
        properties = product
    return {**base, "type": "track", "event": kind, "properties": properties}


def batch(rng: random.Random, size: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {"batch": [event(rng, now) for _ in range(size)], "sentAt": isoformat_z(now)}
