"""A visit to the synthetic shop, walked through its conversion funnel with drop-off (home →
search → category list → product views and adds → cart → checkout, where guests sign up →
payment → order), and the order's life afterwards (paid, shipped with its lines sometimes
renumbered, delivered, refunded; or declined, cancelled and purged). An abandoned cart is
sometimes bought hours later, in a session of its own that goes straight to the cart.
Prices and orders are in the visitor's currency.

Every step draws from the shop's one random stream in a fixed order, so the same seed walks
the same sessions: reorder draws and every figure the tests and the demo check moves.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from devtools.shop import catalog
from devtools.shop.database import ShopDatabase, Table
from devtools.shop.messages import Clients, Session, product_props
from devtools.shop.model import (
    FREE_SHIPPING_FROM,
    MARKET_CURRENCY,
    SHIPPING_FEE,
    ShopConfig,
    local_price,
    whole_ms,
)
from devtools.shop.people import Population, Visitor
from devtools.shop.schedule import Schedule

Cart = dict[int, int]  # product_id -> quantity


@dataclass
class Visit:
    """A session being walked, and the time of its last action."""

    session: Session
    rng: random.Random
    clock: datetime
    loyal: bool  # has ordered before: browses longer, adds and buys more

    @property
    def visitor(self) -> Visitor:
        return self.session.visitor

    @property
    def currency(self) -> str:
        return self.session.currency

    def step(self, seconds: float) -> datetime:
        """The time of the next action: about `seconds` after the last one (at least 1 s),
        to the millisecond."""
        pause = max(1.0, self.rng.expovariate(1 / seconds))
        self.clock = self.clock + timedelta(milliseconds=round(pause * 1000))
        return self.clock


@dataclass(frozen=True)
class Amounts:
    subtotal: Decimal
    shipping: Decimal
    total: Decimal


class SessionWalk:
    def __init__(
        self,
        rng: random.Random,
        database: ShopDatabase,
        population: Population,
        clients: Clients,
        schedule: Schedule,
        counts: dict[str, int],
        config: ShopConfig,
    ) -> None:
        self.rng = rng
        self.config = config
        self.database = database
        self.population = population
        self.clients = clients
        self.schedule = schedule
        self.counts = counts
        self._order_ids = itertools.count(100_001)
        self._order_lines: dict[int, list[tuple[Any, ...]]] = {}

    @property
    def _products(self) -> Table:
        return self.database.tables["products"]

    def walk(self, start: datetime) -> None:
        """One session starting at `start`, as far down the funnel as the visitor goes."""
        visit = self._arrive(start)
        candidates = self._browse(visit)
        if candidates is None:
            return self._leave(visit)  # bounced after the home page
        cart = self._view_products(visit, candidates)
        if not cart:
            return self._leave(visit)
        self._review_cart(visit, cart)
        if self.rng.random() > (0.55 if visit.loyal else 0.4):
            self._leave(visit)  # cart abandoned
            if self.rng.random() < self.config.cart_return_rate:
                self._come_back_for_cart(visit, cart)
            return None
        return self._check_out(visit, cart)

    def _check_out(self, visit: Visit, cart: Cart) -> None:
        """Checkout, payment and the order, as far as the visitor goes."""
        amounts = self._start_checkout(visit, cart)
        if self.rng.random() > 0.84:
            return self._leave(visit)
        self._enter_payment(visit)
        order_id = self._place_order(visit, cart, amounts)
        if self.rng.random() < 0.09:
            self._decline_payment(visit, order_id)
            return self._leave(visit)
        self._complete_order(visit, cart, order_id, amounts)
        return self._leave(visit)

    def _come_back_for_cart(self, visit: Visit, cart: Cart) -> None:
        """Hours later the visitor comes back (typed the address, or followed the cart
        reminder email) straight to the cart and checks out: a purchase in a later session
        than the one that filled the cart."""
        rng = self.rng
        later = visit.clock + timedelta(milliseconds=rng.randint(3_600_000, 108_000_000))
        traffic = rng.choice(("direct", "direct", "email"))
        session = Session(visit.visitor, later, traffic, visit.currency)
        back = Visit(session, rng, later, loyal=True)
        self.counts["sessions"] += 1
        self.clients.page(session, back.clock, "Cart", "/cart")
        self.clients.track(
            session,
            back.clock,
            "Cart Viewed",
            {
                "cart_id": back.visitor.anonymous_id[:8],
                "products": [
                    product_props(self._products[(p,)], back.currency, quantity=q)
                    for p, q in cart.items()
                ],
            },
        )
        self._check_out(back, cart)

    # --- the funnel --------------------------------------------------------------------

    def _arrive(self, start: datetime) -> Visit:
        visitor = self.population.pick_visitor()
        traffic = visitor.traffic if self.rng.random() < 0.6 else self.population.new_traffic()
        self.counts["sessions"] += 1
        start = whole_ms(start)
        session = Session(visitor, start, traffic, MARKET_CURRENCY[visitor.market])
        return Visit(session, self.rng, start, visitor.orders > 0)

    def _browse(self, visit: Visit) -> list[int] | None:
        """The home page, a category (sometimes searched for) and its product list; returns
        the category's products to view, None if the visitor bounced."""
        rng, session, products = self.rng, visit.session, self._products
        self.clients.page(session, visit.clock, "Home", "/")
        category = rng.choice(list(catalog.CATEGORIES))
        candidates = [
            pid for (pid,), row in products.items() if row["active"] and row["category"] == category
        ] or [pid for (pid,), row in products.items() if row["active"]]
        if rng.random() < 0.2:
            self.clients.track(
                session,
                visit.step(15),
                "Products Searched",
                {"query": rng.choice(catalog.CATEGORIES[category][4]).lower()},
            )
        if rng.random() < 0.78:
            listed = rng.sample(candidates, min(8, len(candidates)))
            path = f"/c/{category.lower().replace(' & ', '-')}"
            self.clients.page(session, visit.step(10), category, path)
            self.clients.track(
                session,
                visit.clock,
                "Product List Viewed",
                {
                    "list_id": category.lower(),
                    "category": category,
                    "products": [
                        product_props(products[(p,)], visit.currency, position=i + 1)
                        for i, p in enumerate(listed)
                    ],
                },
            )
        elif rng.random() < 0.6:
            return None
        return candidates

    def _view_products(self, visit: Visit, candidates: list[int]) -> Cart:
        """Product pages, popular products more often; some go into the cart."""
        rng, session, products = self.rng, visit.session, self._products
        cart: Cart = {}
        views = min(8, 1 + int(rng.expovariate(1 / (2.2 if visit.loyal else 1.6))))
        weights = [self.population.popularity.get(p, 0.1) for p in candidates]
        for _ in range(views):
            pid = rng.choices(candidates, weights)[0]
            product = products[(pid,)]
            self.clients.page(
                session, visit.step(20), product["name"], f"/p/{product['sku'].lower()}"
            )
            self.clients.track(
                session, visit.clock, "Product Viewed", product_props(product, visit.currency)
            )
            if rng.random() < (0.13 if visit.loyal else 0.08):
                quantity = rng.choices((1, 2, 3), (0.82, 0.14, 0.04))[0]
                cart[pid] = cart.get(pid, 0) + quantity
                self.clients.track(
                    session,
                    visit.step(25),
                    "Product Added",
                    product_props(product, visit.currency, quantity=quantity),
                )
        return cart

    def _review_cart(self, visit: Visit, cart: Cart) -> None:
        """The cart page, and sometimes a product taken out again."""
        rng, session, products = self.rng, visit.session, self._products
        if rng.random() < 0.75:
            self.clients.page(session, visit.step(15), "Cart", "/cart")
            self.clients.track(
                session,
                visit.clock,
                "Cart Viewed",
                {
                    "cart_id": visit.visitor.anonymous_id[:8],
                    "products": [
                        product_props(products[(p,)], visit.currency, quantity=q)
                        for p, q in cart.items()
                    ],
                },
            )
        if len(cart) > 1 and rng.random() < 0.12:
            pid = rng.choice(list(cart))
            self.clients.track(
                session,
                visit.step(10),
                "Product Removed",
                product_props(products[(pid,)], visit.currency, quantity=cart.pop(pid)),
            )

    def _start_checkout(self, visit: Visit, cart: Cart) -> Amounts:
        products, currency = self._products, visit.currency
        subtotal = sum(
            (local_price(products[(p,)]["price"], currency) * q for p, q in cart.items()),
            Decimal(0),
        )
        shipping = Decimal(0) if subtotal >= FREE_SHIPPING_FROM else SHIPPING_FEE
        self.clients.page(visit.session, visit.step(20), "Checkout", "/checkout")
        self.clients.track(
            visit.session,
            visit.clock,
            "Checkout Started",
            {
                "value": float(subtotal),
                "revenue": float(subtotal),
                "currency": currency,
                "products": [
                    product_props(products[(p,)], currency, quantity=q) for p, q in cart.items()
                ],
            },
        )
        if visit.visitor.user_id is None:
            self._sign_up(visit)
        return Amounts(subtotal, shipping, subtotal + shipping)

    def _sign_up(self, visit: Visit) -> None:
        """Guests sign up at checkout: a new account, and an identify call."""
        visitor = visit.visitor
        user = self.population.new_user(visit.step(40), country=visitor.market)
        visitor.user_id = user["user_id"]
        self.population.known.append(visitor)
        self.schedule.add(visit.clock, [("insert", "users", None, user)])
        self.clients.identify(visit.session, visit.clock, user)

    def _enter_payment(self, visit: Visit) -> None:
        self.clients.track(
            visit.session,
            visit.step(45),
            "Payment Info Entered",
            {"step": 2, "payment_method": self.rng.choice(("card", "paypal", "apple_pay"))},
        )

    def _place_order(self, visit: Visit, cart: Cart, amounts: Amounts) -> int:
        """The pending order and its lines, inserted when the payment is entered."""
        clock, products = visit.clock, self._products
        order_id = next(self._order_ids)
        order = {
            "order_id": order_id,
            "user_id": visit.visitor.user_id,
            "status": "pending",
            "currency": visit.currency,
            "subtotal": amounts.subtotal,
            "shipping": amounts.shipping,
            "total_amount": amounts.total,
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
                "unit_price": local_price(products[(pid,)]["price"], visit.currency),
            }
            for i, (pid, q) in enumerate(cart.items())
        ]
        self._order_lines[order_id] = [(order_id, line["line_number"]) for line in lines]
        self.schedule.add(
            clock,
            [("insert", "orders", None, order)]
            + [("insert", "order_items", None, line) for line in lines],
        )
        return order_id

    def _decline_payment(self, visit: Visit, order_id: int) -> None:
        """Payment declined: the pending order is cancelled, and purged days later."""
        clock = visit.clock
        self.schedule.add(
            clock + timedelta(hours=1),
            [("update", "orders", (order_id,), {"status": "cancelled"})],
        )
        purge = clock + timedelta(days=3, hours=self.rng.uniform(0, 12))
        self.schedule.add(
            purge,
            [("delete", "orders", (order_id,), None)]
            + [("delete", "order_items", k, None) for k in self._order_lines[order_id]],
        )

    def _complete_order(self, visit: Visit, cart: Cart, order_id: int, amounts: Amounts) -> None:
        visitor = visit.visitor
        assert visitor.user_id is not None  # signed up at checkout at the latest
        paid = visit.step(8)
        self.schedule.add(
            paid, [("update", "orders", (order_id,), {"status": "paid", "paid_at": paid})]
        )
        visitor.orders += 1
        self.counts["orders"] += 1
        products = self._products
        self.clients.track(
            visit.session,
            paid,
            "Order Completed",
            {
                "order_id": str(order_id),
                "total": float(amounts.total),
                "subtotal": float(amounts.subtotal),
                "revenue": float(amounts.subtotal),
                "shipping": float(amounts.shipping),
                "currency": visit.currency,
                "products": [
                    product_props(products[(p,)], visit.currency, quantity=q)
                    for p, q in cart.items()
                ],
            },
        )
        self._order_lifecycle(order_id, visitor.user_id, paid, amounts.total, visit.currency)

    def _leave(self, visit: Visit) -> None:
        self.clients.finish(visit.session)

    # --- after the order ---------------------------------------------------------------

    def _order_lifecycle(
        self, order_id: int, user_id: int, paid: datetime, total: Decimal, currency: str
    ) -> None:
        rng = self.rng
        if rng.random() < 0.03:  # cancelled by the customer before shipping: refunded at once
            refunded = paid + timedelta(hours=rng.uniform(1, 20))
            self._refund(order_id, user_id, refunded, total, currency)
            return
        shipped = paid + timedelta(hours=rng.uniform(12, 48))
        delivered = shipped + timedelta(hours=rng.uniform(36, 120))
        shipping: list[Any] = [("update", "orders", (order_id,), {"status": "shipped"})]
        lines = self._order_lines[order_id]
        if len(lines) > 1 and rng.random() < self.config.renumber_lines_rate:
            # the warehouse system sorts the lines by product: a primary-key change
            shipping.append(("renumber", "order_items", (order_id,), {"keys": list(lines)}))
        self.schedule.add(shipped, shipping)
        self.schedule.add(delivered, [("update", "orders", (order_id,), {"status": "delivered"})])
        if rng.random() < 0.05:  # returned after delivery
            refunded = delivered + timedelta(hours=rng.uniform(6, 240))
            self._refund(order_id, user_id, refunded, total, currency)

    def _refund(
        self, order_id: int, user_id: int, at: datetime, total: Decimal, currency: str
    ) -> None:
        self.schedule.add(
            at, [("update", "orders", (order_id,), {"status": "refunded", "refunded_at": at})]
        )
        self.clients.server_event(
            at,
            "Order Refunded",
            user_id,
            {"order_id": str(order_id), "total": float(total), "currency": currency},
        )
