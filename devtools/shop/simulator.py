"""The synthetic shop: deterministic behaviour traffic and source-database changes from a seed.

Visitors arrive with weekday and hour-of-day seasonality, from devices and traffic sources,
and walk a conversion funnel with drop-off (list → product → cart → checkout → payment →
order). Buyers come back more often. The shop's database (users, products, orders,
order_items) changes along the way: sign-ups, profile edits, account deletions, price changes,
new products, the order status lifecycle, refunds, and clean-up deletes of abandoned orders.

`SyntheticShop.run()` yields, in the order they happen: one `Snapshot` (the database before the
window), then `Delivery` items (an event as a client sent it, with its own clock skew, batching
delay, rare offline delay and retry duplicates) and `Transaction` items (row changes committed
together). Everything depends only on the seed and the configuration.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from devtools.shop import catalog
from platform_core.contract import isoformat_z
from platform_core.raw.schema import CDC_KEY_COLUMNS

KEY_COLUMNS = CDC_KEY_COLUMNS  # the source tables and their primary keys
PAID_STATUSES = ("paid", "shipped", "delivered", "refunded")
CENT = Decimal("0.01")
FREE_SHIPPING_FROM = Decimal("50.00")
SHIPPING_FEE = Decimal("4.99")


def money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class ShopConfig:
    seed: int = 42
    days: int = 30
    end_date: date | None = None  # last simulated day (UTC, inclusive); default: yesterday
    sessions_per_day: int = 1000
    products: int = 240
    initial_users: int = 1500
    duplicate_rate: float = 0.006
    offline_rate: float = 0.01
    stop_at: datetime | None = None  # the simulated "now" inside end_date (a live demo's clock)

    @property
    def last_day(self) -> date:
        return self.end_date or (datetime.now(UTC).date() - timedelta(days=1))

    @property
    def first_day(self) -> date:
        return self.last_day - timedelta(days=self.days - 1)

    @property
    def end(self) -> datetime:
        """The simulation's "now": nothing at or after this instant has happened yet."""
        day_end = datetime.combine(self.last_day + timedelta(days=1), time(), tzinfo=UTC)
        return min(self.stop_at, day_end) if self.stop_at is not None else day_end


@dataclass(frozen=True)
class Snapshot:
    """The source tables as they stood before the window (what a CDC snapshot reads)."""

    at: datetime
    rows: dict[str, list[dict[str, Any]]]


@dataclass(frozen=True)
class Delivery:
    """One event as a client sent it: the JSON message, the source and when it arrived."""

    at: datetime  # when the collector received it
    source: str
    payload: dict[str, Any]

    @property
    def received_at(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class RowChange:
    table: str
    op: str  # c, u, d
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    @property
    def key(self) -> tuple[Any, ...]:
        row = self.after if self.after is not None else self.before
        assert row is not None
        return tuple(row[c] for c in KEY_COLUMNS[self.table])


@dataclass(frozen=True)
class Transaction:
    at: datetime  # commit time
    tx_id: int
    changes: tuple[RowChange, ...]


Item = Snapshot | Delivery | Transaction

# Intents are resolved against the database state when they commit, so a change scheduled
# days ahead (an order shipping) always sees the row as it then is.
Intent = tuple[str, str, Any, dict[str, Any] | None]  # (op, table, key, values)


@dataclass
class _Visitor:
    anonymous_id: str
    platform: str
    source: str
    device_type: str
    user_agent: str | None
    device: tuple[str, str] | None
    clock_skew: timedelta
    traffic: str
    user_id: int | None = None
    orders: int = 0
    active: bool = True


@dataclass
class _Session:
    visitor: _Visitor
    start: datetime
    traffic: str
    events: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)


class SyntheticShop:
    def __init__(
        self,
        config: ShopConfig | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or ShopConfig()
        self.rng = random.Random(self.config.seed)
        self.progress = progress
        self.state: dict[str, dict[tuple[Any, ...], dict[str, Any]]] = {t: {} for t in KEY_COLUMNS}
        self._order_lines: dict[int, list[tuple[Any, ...]]] = {}
        self._heap: list[tuple[datetime, int, Any]] = []
        self._seq = itertools.count()
        self._tx_ids = itertools.count(1000)
        self._user_ids = itertools.count(1)
        self._order_ids = itertools.count(100_001)
        self._product_ids = itertools.count(1)
        self._visitors: list[_Visitor] = []
        self._known: list[_Visitor] = []  # visitors with an account, for return visits
        self.counts = {"deliveries": 0, "transactions": 0, "sessions": 0, "orders": 0}

    # --- public ------------------------------------------------------------------------

    def run(self) -> Iterator[Item]:
        cfg = self.config
        window_start = datetime.combine(cfg.first_day, time(), tzinfo=UTC)
        self._seed_catalog_and_users(window_start)
        yield Snapshot(
            at=window_start,
            rows={t: [dict(r) for r in rows.values()] for t, rows in self.state.items()},
        )
        for index in range(cfg.days):
            day = cfg.first_day + timedelta(days=index)
            self._simulate_day(day, index)
            yield from self._drain(until=datetime.combine(day + timedelta(days=1), time(), UTC))
            if self.progress:
                self.progress(
                    f"day {index + 1}/{cfg.days} {day}: {self.counts['sessions']:,} sessions, "
                    f"{self.counts['deliveries']:,} events, {self.counts['orders']:,} orders, "
                    f"{self.counts['transactions']:,} transactions"
                )
        self._heap.clear()  # anything still scheduled lies after the simulated "now"

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Current state of a source table (after `run` has been consumed)."""
        return list(self.state[table].values())

    # --- scheduling --------------------------------------------------------------------

    def _schedule(self, at: datetime, item: Any) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), item))

    def _drain(self, until: datetime) -> Iterator[Item]:
        end = self.config.end
        while self._heap and self._heap[0][0] < min(until, end):
            at, _, item = heapq.heappop(self._heap)
            if isinstance(item, Delivery):
                self.counts["deliveries"] += 1
                yield item
            else:
                tx = self._commit(at, item)
                if tx is not None:
                    self.counts["transactions"] += 1
                    yield tx

    def _commit(self, at: datetime, intents: list[Intent]) -> Transaction | None:
        changes: list[RowChange] = []
        for op, table, key, values in intents:
            rows = self.state[table]
            if op == "insert":
                assert values is not None
                row = {**values, **({"updated_at": at} if "updated_at" in values else {})}
                row_key = tuple(row[c] for c in KEY_COLUMNS[table])
                rows[row_key] = row
                changes.append(RowChange(table, "c", None, dict(row)))
            elif op == "update":
                current = rows.get(key)
                if current is None:
                    continue  # deleted in the meantime
                assert values is not None
                resolved = {k: (v(current) if callable(v) else v) for k, v in values.items()}
                if all(current.get(k) == v for k, v in resolved.items()):
                    continue
                new = {**current, **resolved, "updated_at": at}
                rows[key] = new
                changes.append(RowChange(table, "u", dict(current), dict(new)))
            elif op == "delete":
                current = rows.pop(key, None)
                if current is not None:
                    changes.append(RowChange(table, "d", dict(current), None))
        if not changes:
            return None
        return Transaction(at=at, tx_id=next(self._tx_ids), changes=tuple(changes))

    # --- initial state -----------------------------------------------------------------

    def _seed_catalog_and_users(self, window_start: datetime) -> None:
        rng = self.rng
        names = list(catalog.CATEGORIES)
        shares = [catalog.CATEGORIES[c][0] for c in names]
        for _ in range(self.config.products):
            category = rng.choices(names, shares)[0]
            created = window_start - timedelta(days=rng.randint(30, 700))
            self._insert_now("products", self._new_product(category, created))
        for _ in range(self.config.initial_users):
            created = window_start - timedelta(
                days=rng.randint(1, 600), seconds=rng.randint(0, 86399)
            )
            visitor = self._new_visitor(returning=True)
            user = self._new_user(created)
            visitor.user_id = user["user_id"]
            visitor.orders = rng.choices((0, 1, 2, 4), (0.5, 0.3, 0.15, 0.05))[0]
            self._known.append(visitor)
            self._insert_now("users", user)
        # popularity: a few products sell much more than the rest (Zipf-like)
        self._popularity = {
            key[0]: 1.0 / (rank + 1) ** 0.8
            for rank, key in enumerate(
                rng.sample(list(self.state["products"]), len(self.state["products"]))
            )
        }

    def _insert_now(self, table: str, row: dict[str, Any]) -> None:
        self.state[table][tuple(row[c] for c in KEY_COLUMNS[table])] = row

    def _new_product(self, category: str, created: datetime) -> dict[str, Any]:
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

    def _new_user(self, created: datetime) -> dict[str, Any]:
        rng = self.rng
        user_id = next(self._user_ids)
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        country = rng.choices(*zip(*catalog.COUNTRIES, strict=True))[0]
        return {
            "user_id": user_id,
            "email": f"{first.lower()}.{last.lower()}{user_id}@example.com",
            "full_name": f"{first} {last}",
            "country": country,
            "marketing_opt_in": rng.random() < 0.4,
            "created_at": created,
            "updated_at": created,
        }

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _new_visitor(self, returning: bool) -> _Visitor:
        rng = self.rng
        platforms = list(catalog.PLATFORMS)
        platform = rng.choices(platforms, [catalog.PLATFORMS[p][0] for p in platforms])[0]
        _, source, device_type = catalog.PLATFORMS[platform]
        traffic_names = list(catalog.TRAFFIC_SOURCES)
        weights = [catalog.TRAFFIC_SOURCES[t][1 if returning else 0] for t in traffic_names]
        skew = timedelta(seconds=rng.gauss(0, 20))
        if rng.random() < 0.04:  # a device whose clock is hours off
            skew = timedelta(hours=rng.choice((-3, -2, -1, 1, 2))) + skew
        app_device = rng.choice(catalog.APP_DEVICES[platform]) if source != "web" else None
        if app_device and app_device[1].startswith("iPad"):
            device_type = "tablet"
        visitor = _Visitor(
            anonymous_id=self._uuid(),
            platform=platform,
            source=source,
            device_type=device_type,
            user_agent=rng.choice(catalog.USER_AGENTS[platform]) if source == "web" else None,
            device=app_device,
            clock_skew=skew,
            traffic=rng.choices(traffic_names, weights)[0],
        )
        self._visitors.append(visitor)
        return visitor

    # --- one day -----------------------------------------------------------------------

    def _simulate_day(self, day: date, index: int) -> None:
        rng = self.rng
        midnight = datetime.combine(day, time(), tzinfo=UTC)
        self._catalog_changes(midnight)
        self._account_changes(midnight)
        growth = 1 + 0.006 * index
        n_sessions = round(
            self.config.sessions_per_day
            * catalog.WEEKDAY_FACTORS[day.weekday()]
            * growth
            * math.exp(rng.gauss(0, 0.05))
        )
        hours = range(24)
        for _ in range(n_sessions):
            start = midnight + timedelta(
                hours=rng.choices(hours, catalog.HOURLY_WEIGHTS)[0], seconds=rng.uniform(0, 3600)
            )
            self._session(start)

    def _catalog_changes(self, midnight: datetime) -> None:
        rng = self.rng
        products = [k for k, row in self.state["products"].items() if row["active"]]
        for key in rng.sample(products, max(1, len(products) * 3 // 100)):
            factor = Decimal(str(round(rng.choice((0.85, 0.9, 0.95, 1.05, 1.1, 1.2)), 2)))
            at = midnight + timedelta(hours=2, seconds=rng.uniform(0, 3600))
            new_price = money(self.state["products"][key]["price"] * factor)
            self._schedule(at, [("update", "products", key, {"price": new_price})])
        if rng.random() < 0.3 and products:
            key = rng.choice(products)
            at = midnight + timedelta(hours=3, seconds=rng.uniform(0, 3600))
            self._schedule(at, [("update", "products", key, {"active": False})])
        if midnight.weekday() == 0:  # new arrivals every Monday
            names = list(catalog.CATEGORIES)
            for _ in range(rng.randint(2, 6)):
                at = midnight + timedelta(hours=6, seconds=rng.uniform(0, 3600))
                product = self._new_product(rng.choice(names), at)
                self._popularity[product["product_id"]] = 0.3
                self._schedule(at, [("insert", "products", None, product)])

    def _account_changes(self, midnight: datetime) -> None:
        rng = self.rng
        accounts = [v for v in self._known if v.active]
        for visitor in rng.sample(accounts, len(accounts) // 200):
            at = midnight + timedelta(seconds=rng.uniform(0, 86400))
            key = (visitor.user_id,)
            if rng.random() < 0.5:
                values: dict[str, Any] = {
                    "marketing_opt_in": lambda row: not row["marketing_opt_in"]
                }
            else:
                values = {"email": f"user{visitor.user_id}.{rng.randint(1, 999)}@example.org"}
            self._schedule(at, [("update", "users", key, values)])
        for visitor in rng.sample(
            accounts, max(0, round(len(accounts) * 0.0008 + rng.random() - 0.5))
        ):
            visitor.active = False  # the account is erased and the person stops visiting
            at = midnight + timedelta(seconds=rng.uniform(0, 86400))
            self._schedule(at, [("delete", "users", (visitor.user_id,), None)])

    def _pick_visitor(self) -> _Visitor:
        rng = self.rng
        if self._known and rng.random() < 0.38:
            for _ in range(5):
                visitor = rng.choice(self._known)
                # buyers come back more often
                if visitor.active and rng.random() < min(1.0, 0.25 + 0.25 * visitor.orders):
                    return visitor
        if self._visitors and rng.random() < 0.2:
            visitor = rng.choice(self._visitors[-5000:])
            if visitor.active and visitor.user_id is None:
                return visitor
        return self._new_visitor(returning=False)

    # --- a session and its funnel ------------------------------------------------------

    def _session(self, start: datetime) -> None:
        rng = self.rng
        visitor = self._pick_visitor()
        traffic = visitor.traffic if rng.random() < 0.6 else self._new_traffic(visitor)
        session = _Session(visitor, start, traffic)
        self.counts["sessions"] += 1
        clock = start
        products = self.state["products"]
        loyal = visitor.orders > 0

        def step(seconds: float) -> datetime:
            nonlocal clock
            clock = clock + timedelta(seconds=max(1.0, rng.expovariate(1 / seconds)))
            return clock

        self._page(session, clock, "Home", "/")
        category = rng.choice(list(catalog.CATEGORIES))
        candidates = [
            pid for (pid,), row in products.items() if row["active"] and row["category"] == category
        ] or [pid for (pid,), row in products.items() if row["active"]]
        if rng.random() < 0.2:
            self._track(
                session,
                step(15),
                "Products Searched",
                {"query": rng.choice(catalog.CATEGORIES[category][4]).lower()},
            )
        if rng.random() < 0.78:
            listed = rng.sample(candidates, min(8, len(candidates)))
            self._page(session, step(10), category, f"/c/{category.lower().replace(' & ', '-')}")
            self._track(
                session,
                clock,
                "Product List Viewed",
                {
                    "list_id": category.lower(),
                    "category": category,
                    "products": [
                        self._product_props(products[(p,)], position=i + 1)
                        for i, p in enumerate(listed)
                    ],
                },
            )
        elif rng.random() < 0.6:
            return self._finish(session)  # bounced after the home page

        cart: dict[int, int] = {}
        views = min(8, 1 + int(rng.expovariate(1 / (2.2 if loyal else 1.6))))
        weights = [self._popularity.get(p, 0.1) for p in candidates]
        for _ in range(views):
            pid = rng.choices(candidates, weights)[0]
            product = products[(pid,)]
            self._page(session, step(20), product["name"], f"/p/{product['sku'].lower()}")
            self._track(session, clock, "Product Viewed", self._product_props(product))
            if rng.random() < (0.13 if loyal else 0.08):
                quantity = rng.choices((1, 2, 3), (0.82, 0.14, 0.04))[0]
                cart[pid] = cart.get(pid, 0) + quantity
                self._track(
                    session,
                    step(25),
                    "Product Added",
                    self._product_props(product, quantity=quantity),
                )
        if not cart:
            return self._finish(session)
        if rng.random() < 0.75:
            self._page(session, step(15), "Cart", "/cart")
            self._track(
                session,
                clock,
                "Cart Viewed",
                {
                    "cart_id": session.visitor.anonymous_id[:8],
                    "products": [
                        self._product_props(products[(p,)], quantity=q) for p, q in cart.items()
                    ],
                },
            )
        if len(cart) > 1 and rng.random() < 0.12:
            pid = rng.choice(list(cart))
            self._track(
                session,
                step(10),
                "Product Removed",
                self._product_props(products[(pid,)], quantity=cart.pop(pid)),
            )
        if rng.random() > (0.55 if loyal else 0.4):
            return self._finish(session)  # cart abandoned
        subtotal = sum((products[(p,)]["price"] * q for p, q in cart.items()), Decimal(0))
        shipping = Decimal(0) if subtotal >= FREE_SHIPPING_FROM else SHIPPING_FEE
        total = subtotal + shipping
        self._page(session, step(20), "Checkout", "/checkout")
        self._track(
            session,
            clock,
            "Checkout Started",
            {
                "value": float(subtotal),
                "revenue": float(subtotal),
                "currency": "USD",
                "products": [
                    self._product_props(products[(p,)], quantity=q) for p, q in cart.items()
                ],
            },
        )
        if visitor.user_id is None:
            # guests sign up at checkout
            user = self._new_user(step(40))
            visitor.user_id = user["user_id"]
            self._known.append(visitor)
            self._schedule(clock, [("insert", "users", None, user)])
            self._identify(session, clock, user)
        if rng.random() > 0.84:
            return self._finish(session)
        self._track(
            session,
            step(45),
            "Payment Info Entered",
            {"step": 2, "payment_method": rng.choice(("card", "paypal", "apple_pay"))},
        )
        order_id = next(self._order_ids)
        order = {
            "order_id": order_id,
            "user_id": visitor.user_id,
            "status": "pending",
            "currency": "USD",
            "subtotal": subtotal,
            "shipping": shipping,
            "total_amount": total,
            "created_at": clock,
            "updated_at": clock,
            "paid_at": None,
            "refunded_at": None,
        }
        lines = [
            {
                "order_id": order_id,
                "line_number": i + 1,
                "product_id": pid,
                "quantity": q,
                "unit_price": products[(pid,)]["price"],
            }
            for i, (pid, q) in enumerate(cart.items())
        ]
        self._order_lines[order_id] = [(order_id, line["line_number"]) for line in lines]
        self._schedule(
            clock,
            [("insert", "orders", None, order)]
            + [("insert", "order_items", None, line) for line in lines],
        )
        if rng.random() < 0.09:  # payment declined: the pending order is cancelled, later purged
            self._schedule(
                clock + timedelta(hours=1),
                [("update", "orders", (order_id,), {"status": "cancelled"})],
            )
            purge = clock + timedelta(days=3, hours=rng.uniform(0, 12))
            self._schedule(
                purge,
                [("delete", "orders", (order_id,), None)]
                + [("delete", "order_items", k, None) for k in self._order_lines[order_id]],
            )
            return self._finish(session)
        paid = step(8)
        self._schedule(
            paid, [("update", "orders", (order_id,), {"status": "paid", "paid_at": paid})]
        )
        visitor.orders += 1
        self.counts["orders"] += 1
        self._track(
            session,
            paid,
            "Order Completed",
            {
                "order_id": str(order_id),
                "total": float(total),
                "subtotal": float(subtotal),
                "revenue": float(subtotal),
                "shipping": float(shipping),
                "currency": "USD",
                "products": [
                    self._product_props(products[(p,)], quantity=q) for p, q in cart.items()
                ],
            },
        )
        self._order_lifecycle(order_id, visitor.user_id, paid, total)
        self._finish(session)

    def _order_lifecycle(self, order_id: int, user_id: int, paid: datetime, total: Decimal) -> None:
        rng = self.rng
        if rng.random() < 0.03:  # cancelled by the customer before shipping: refunded at once
            refunded = paid + timedelta(hours=rng.uniform(1, 20))
            self._refund(order_id, user_id, refunded, total)
            return
        shipped = paid + timedelta(hours=rng.uniform(12, 48))
        delivered = shipped + timedelta(hours=rng.uniform(36, 120))
        self._schedule(shipped, [("update", "orders", (order_id,), {"status": "shipped"})])
        self._schedule(delivered, [("update", "orders", (order_id,), {"status": "delivered"})])
        if rng.random() < 0.05:  # returned after delivery
            self._refund(order_id, user_id, delivered + timedelta(hours=rng.uniform(6, 240)), total)

    def _refund(self, order_id: int, user_id: int, at: datetime, total: Decimal) -> None:
        self._schedule(
            at, [("update", "orders", (order_id,), {"status": "refunded", "refunded_at": at})]
        )
        self._server_event(
            at,
            "Order Refunded",
            user_id,
            {"order_id": str(order_id), "total": float(total), "currency": "USD"},
        )

    def _new_traffic(self, visitor: _Visitor) -> str:
        names = list(catalog.TRAFFIC_SOURCES)
        return self.rng.choices(names, [catalog.TRAFFIC_SOURCES[t][1] for t in names])[0]

    @staticmethod
    def _product_props(
        product: dict[str, Any], quantity: int | None = None, position: int | None = None
    ) -> dict[str, Any]:
        props: dict[str, Any] = {
            "product_id": str(product["product_id"]),
            "sku": product["sku"],
            "name": product["name"],
            "category": product["category"],
            "brand": product["brand"],
            "price": float(product["price"]),
            "currency": "USD",
        }
        if quantity is not None:
            props["quantity"] = quantity
        if position is not None:
            props["position"] = position
        return props

    # --- messages ----------------------------------------------------------------------

    def _base(self, session: _Session, at: datetime, kind: str) -> dict[str, Any]:
        visitor = session.visitor
        rng = self.rng
        library = catalog.LIBRARIES[visitor.source]
        context: dict[str, Any] = {
            "library": {"name": library[0], "version": library[1]},
            "locale": "en-US",
        }
        medium = catalog.TRAFFIC_SOURCES[session.traffic][3]
        referrer = catalog.TRAFFIC_SOURCES[session.traffic][2]
        if medium:
            context["campaign"] = {
                "source": session.traffic,
                "medium": medium,
                "name": f"{session.start:%b}-promo".lower(),
            }
        if visitor.source == "web":
            context["userAgent"] = visitor.user_agent
            context["page"] = {
                "url": "https://shop.example.com/",
                "path": "/",
                "referrer": referrer or "",
            }
        else:
            manufacturer, model = visitor.device or ("", "")
            context["device"] = {
                "id": visitor.anonymous_id,
                "type": visitor.device_type,
                "manufacturer": manufacturer,
                "model": model,
            }
            context["os"] = {
                "name": "iOS" if visitor.source == "ios" else "Android",
                "version": "18.1" if visitor.source == "ios" else "14",
            }
            context["app"] = {"name": "Shop", "version": "5.12.0", "build": "512"}
        message: dict[str, Any] = {
            "type": kind,
            "messageId": (
                f"ajs-next-{rng.getrandbits(128):032x}" if visitor.source == "web" else self._uuid()
            ),
            "anonymousId": visitor.anonymous_id,
            "timestamp": at + visitor.clock_skew,
            "context": context,
            "integrations": {},
        }
        if visitor.user_id is not None:
            message["userId"] = str(visitor.user_id)
        return message

    def _page(self, session: _Session, at: datetime, name: str, path: str) -> None:
        if session.visitor.source == "web":
            message = self._base(session, at, "page")
            message["name"] = name
            message["properties"] = {
                "path": path,
                "url": f"https://shop.example.com{path}",
                "title": f"{name} | Shop",
            }
            message["context"]["page"].update(path=path, url=f"https://shop.example.com{path}")
        else:
            message = self._base(session, at, "screen")
            message["name"] = name
            message["properties"] = {}
        session.events.append((at, message))

    def _track(self, session: _Session, at: datetime, event: str, props: dict[str, Any]) -> None:
        message = self._base(session, at, "track")
        message["event"] = event
        message["properties"] = props
        session.events.append((at, message))

    def _identify(self, session: _Session, at: datetime, user: dict[str, Any]) -> None:
        message = self._base(session, at, "identify")
        message["userId"] = str(user["user_id"])
        message["traits"] = {
            "email": user["email"],
            "name": user["full_name"],
            "country": user["country"],
            "createdAt": isoformat_z(user["created_at"]),
        }
        session.events.append((at, message))

    def _server_event(self, at: datetime, event: str, user_id: int, props: dict[str, Any]) -> None:
        library = catalog.LIBRARIES["server"]
        message = {
            "type": "track",
            "event": event,
            "messageId": self._uuid(),
            "userId": str(user_id),
            "timestamp": at,
            "properties": props,
            "context": {"library": {"name": library[0], "version": library[1]}},
        }
        sent = at + timedelta(seconds=self.rng.uniform(0.05, 2))
        self._deliver(message, "server", sent, sent + timedelta(milliseconds=80))

    def _finish(self, session: _Session) -> None:
        """Hand the session's events to its client's transport: batching, skew, retries."""
        rng = self.rng
        visitor = session.visitor
        is_app = visitor.source != "web"
        offline = is_app and rng.random() < self.config.offline_rate * 5
        pending: list[dict[str, Any]] = []
        for i, (at, message) in enumerate(session.events):
            last = i == len(session.events) - 1
            pending.append(message)
            # web sends each event at once; apps flush every 20 events or at session end
            if is_app and not last and len(pending) < 20:
                continue
            true_send = at + timedelta(seconds=rng.uniform(0.02, 1.5 if not is_app else 30))
            if offline:
                true_send += timedelta(hours=rng.uniform(1, 20))
            for queued in pending:
                self._deliver(
                    queued,
                    visitor.source,
                    true_send + visitor.clock_skew,
                    true_send + timedelta(milliseconds=rng.uniform(20, 400)),
                )
            pending = []
        session.events.clear()

    def _deliver(
        self, message: dict[str, Any], source: str, sent_client: datetime, received: datetime
    ) -> None:
        payload = dict(message)
        payload["timestamp"] = isoformat_z(message["timestamp"])
        payload["sentAt"] = isoformat_z(sent_client)
        self._schedule(received, Delivery(received, source, payload))
        if self.rng.random() < self.config.duplicate_rate:
            # the client did not see the 2xx and retried the same message later
            retry = timedelta(seconds=self.rng.uniform(1, 90))
            duplicate = {**payload, "sentAt": isoformat_z(sent_client + retry)}
            self._schedule(received + retry, Delivery(received + retry, source, duplicate))
