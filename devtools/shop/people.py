"""Who and what the synthetic shop is made of: products, accounts, and visitors (device,
platform, market, clock skew, traffic source), how each is made up from the seed, who visits
next, and which products are popular."""

from __future__ import annotations

import itertools
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from devtools.shop import catalog
from devtools.shop.model import MARKET_CURRENCY, money


def random_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from the shop's random stream (so it depends on the seed)."""
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


@dataclass
class Visitor:
    anonymous_id: str
    platform: str
    source: str
    device_type: str
    user_agent: str | None
    device: tuple[str, str] | None
    clock_skew: timedelta  # what the device's clock reads minus the true time
    traffic: str
    market: str  # country the visitor shops from: the currency they pay in
    user_id: int | None = None
    orders: int = 0
    active: bool = True


class Population:
    def __init__(self, rng: random.Random, far_off_clock_rate: float = 0.0) -> None:
        self.rng = rng
        self.far_off_clock_rate = far_off_clock_rate
        self._user_ids = itertools.count(1)
        self._product_ids = itertools.count(1)
        self.visitors: list[Visitor] = []
        self.known: list[Visitor] = []  # visitors with an account, for return visits
        self.popularity: dict[int, float] = {}  # product_id -> weight among product views

    def new_product(self, category: str, created: datetime) -> dict[str, Any]:
        rng = self.rng
        _, median, sigma, brands, nouns = catalog.CATEGORIES[category]
        product_id = next(self._product_ids)
        spread = min(max(rng.gauss(0, sigma), -1.5), 1.5)  # no $3,000 speakers
        price = max(Decimal("1.99"), money(median * math.exp(spread)) - Decimal("0.01"))
        brand = rng.choice(brands)
        name = f"{brand} {rng.choice(catalog.ADJECTIVES)} {rng.choice(nouns)}"
        return {
            "product_id": product_id,
            "sku": f"{category[:3].upper()}-{product_id:05d}",
            "name": name,
            "category": category,
            "brand": brand,
            "price": price,
            "currency": "USD",
            "active": True,
            "created_at": created,
            "updated_at": created,
        }

    def new_user(self, created: datetime, country: str | None = None) -> dict[str, Any]:
        rng = self.rng
        user_id = next(self._user_ids)
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        country = country or self.new_country()
        return {
            "user_id": user_id,
            "email": f"{first.lower()}.{last.lower()}{user_id}@example.com",
            "full_name": f"{first} {last}",
            "country": country,
            "marketing_opt_in": rng.random() < 0.4,
            "created_at": created,
            "updated_at": created,
        }

    def new_country(self) -> str:
        return self.rng.choices(*zip(*catalog.COUNTRIES, strict=True))[0]

    def new_visitor(self, returning: bool, market: str | None = None) -> Visitor:
        rng = self.rng
        platforms = list(catalog.PLATFORMS)
        platform = rng.choices(platforms, [catalog.PLATFORMS[p][0] for p in platforms])[0]
        _, source, device_type = catalog.PLATFORMS[platform]
        traffic_names = list(catalog.TRAFFIC_SOURCES)
        weights = [catalog.TRAFFIC_SOURCES[t][1 if returning else 0] for t in traffic_names]
        skew = timedelta(milliseconds=round(rng.gauss(0, 20_000)))
        if rng.random() < 0.04:  # a device whose clock is hours off
            skew = timedelta(hours=rng.choice((-3, -2, -1, 1, 2))) + skew
        if rng.random() < self.far_off_clock_rate:  # set years off (2030, or back in 2023)
            skew = timedelta(days=rng.choice((-1100, 1500)), hours=rng.randint(0, 23)) + skew
        app_device = rng.choice(catalog.APP_DEVICES[platform]) if source != "web" else None
        if app_device and app_device[1].startswith("iPad"):
            device_type = "tablet"
        visitor = Visitor(
            anonymous_id=random_uuid(rng),
            platform=platform,
            source=source,
            device_type=device_type,
            user_agent=rng.choice(catalog.USER_AGENTS[platform]) if source == "web" else None,
            device=app_device,
            clock_skew=skew,
            traffic=rng.choices(traffic_names, weights)[0],
            market=market or self.new_country(),
        )
        assert visitor.market in MARKET_CURRENCY
        self.visitors.append(visitor)
        return visitor

    def pick_visitor(self) -> Visitor:
        """Who visits next: a returning account holder, a recent guest, or someone new."""
        rng = self.rng
        if self.known and rng.random() < 0.38:
            for _ in range(5):
                visitor = rng.choice(self.known)
                # buyers come back more often
                if visitor.active and rng.random() < min(1.0, 0.25 + 0.25 * visitor.orders):
                    return visitor
        if self.visitors and rng.random() < 0.2:
            visitor = rng.choice(self.visitors[-5000:])
            if visitor.active and visitor.user_id is None:
                return visitor
        return self.new_visitor(returning=False)

    def new_traffic(self) -> str:
        """The traffic source of a returning visitor's new visit."""
        names = list(catalog.TRAFFIC_SOURCES)
        return self.rng.choices(names, [catalog.TRAFFIC_SOURCES[t][1] for t in names])[0]
