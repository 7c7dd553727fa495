"""The synthetic shop: deterministic behaviour traffic and source-database changes from a seed.

Visitors arrive with weekday and hour-of-day seasonality, from devices and traffic sources,
and walk a conversion funnel with drop-off (list → product → cart → checkout → payment →
order), sometimes buying an abandoned cart in a later session. Buyers come back more often.
Customers pay in their market's currency (USD, EUR, GBP). The shop's database (users,
products, orders, order_items) changes along the way: sign-ups, profile edits, account
deletions, price changes, new products, the order status lifecycle, order lines renumbered
(a primary-key change), refunds, and clean-up deletes of abandoned orders.

`SyntheticShop.run()` yields, in the order they happen: one `Snapshot` (the database before the
window), then `Delivery` items (an event as a client sent it, with its own clock skew (a few
clocks are years off), batching delay, rare offline delay, retry duplicates, retries after the
clock was corrected, server events without a messageId; and the truth about when it happened)
and `Transaction` items (row changes committed together). Everything depends only on the seed
and the configuration.
"""

# The shop's parts, each in a module of its own next to this one:
#   model     ShopConfig and what the shop yields (Snapshot, Delivery, Transaction), money
#   database  the source tables, and intents committed as transactions
#   schedule  what will happen, in time order
#   people    products, accounts and visitors, and who visits next
#   session   one visit walked through the funnel, and the order's life afterwards
#   messages  Segment messages as the clients build and send them
# This module runs the days (`SyntheticShop.run`): the catalog and accounts change, sessions
# happen, and the schedule is drained in time order.

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from devtools.shop import catalog
from devtools.shop.database import ShopDatabase
from devtools.shop.messages import Clients
from devtools.shop.model import (
    CENT,
    FREE_SHIPPING_FROM,
    KEY_COLUMNS,
    MARKET_CURRENCY,
    PAID_STATUSES,
    PRICE_LIST,
    SHIPPING_FEE,
    Delivery,
    Intent,
    Item,
    RowChange,
    ShopConfig,
    Snapshot,
    Transaction,
    local_price,
    money,
    whole_ms,
)
from devtools.shop.people import Population
from devtools.shop.schedule import Schedule
from devtools.shop.session import SessionWalk

__all__ = [
    "CENT",
    "FREE_SHIPPING_FROM",
    "KEY_COLUMNS",
    "MARKET_CURRENCY",
    "PAID_STATUSES",
    "PRICE_LIST",
    "SHIPPING_FEE",
    "Delivery",
    "Intent",
    "Item",
    "RowChange",
    "ShopConfig",
    "Snapshot",
    "SyntheticShop",
    "Transaction",
    "local_price",
    "money",
    "whole_ms",
]


class SyntheticShop:
    def __init__(
        self,
        config: ShopConfig | None = None,
        progress: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config or ShopConfig()
        self.rng = random.Random(self.config.seed)
        self.progress = progress
        self.database = ShopDatabase()
        self.state = self.database.tables  # the source tables as they now stand
        self.schedule = Schedule()
        self.population = Population(self.rng, self.config.far_off_clock_rate)
        self.counts = {"deliveries": 0, "transactions": 0, "sessions": 0, "orders": 0}
        self.clients = Clients(self.rng, self.config, self.schedule)
        self.sessions = SessionWalk(
            self.rng,
            self.database,
            self.population,
            self.clients,
            self.schedule,
            self.counts,
            self.config,
        )

    # --- public ------------------------------------------------------------------------

    def run(self) -> Iterator[Item]:
        cfg = self.config
        window_start = datetime.combine(cfg.first_day, time(), tzinfo=UTC)
        self._seed_catalog_and_users(window_start)
        yield self.database.snapshot(window_start)
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
        self.schedule.clear()  # anything still scheduled lies after the simulated "now"

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Current state of a source table (after `run` has been consumed)."""
        return list(self.state[table].values())

    # --- the timeline ------------------------------------------------------------------

    def _drain(self, until: datetime) -> Iterator[Item]:
        """What happened before `until` (and before the simulated "now"), in time order;
        database intents are committed as they come due."""
        for at, item in self.schedule.due_before(min(until, self.config.end)):
            if isinstance(item, Delivery):
                self.counts["deliveries"] += 1
                yield item
            else:
                tx = self.database.commit(at, item)
                if tx is not None:
                    self.counts["transactions"] += 1
                    yield tx

    # --- initial state -----------------------------------------------------------------

    def _seed_catalog_and_users(self, window_start: datetime) -> None:
        rng, people = self.rng, self.population
        names = list(catalog.CATEGORIES)
        shares = [catalog.CATEGORIES[c][0] for c in names]
        for _ in range(self.config.products):
            category = rng.choices(names, shares)[0]
            created = window_start - timedelta(days=rng.randint(30, 700))
            self.database.insert_now("products", people.new_product(category, created))
        for _ in range(self.config.initial_users):
            created = window_start - timedelta(
                days=rng.randint(1, 600), seconds=rng.randint(0, 86399)
            )
            visitor = people.new_visitor(returning=True)
            user = people.new_user(created, country=visitor.market)
            visitor.user_id = user["user_id"]
            visitor.orders = rng.choices((0, 1, 2, 4), (0.5, 0.3, 0.15, 0.05))[0]
            people.known.append(visitor)
            self.database.insert_now("users", user)
        # popularity: a few products sell much more than the rest (Zipf-like)
        people.popularity = {
            key[0]: 1.0 / (rank + 1) ** 0.8
            for rank, key in enumerate(
                rng.sample(list(self.state["products"]), len(self.state["products"]))
            )
        }

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
            self.sessions.walk(whole_ms(start))

    def _catalog_changes(self, midnight: datetime) -> None:
        """Price changes, a product retired now and then, new arrivals on Mondays."""
        rng = self.rng
        products = [k for k, row in self.state["products"].items() if row["active"]]
        for key in rng.sample(products, max(1, len(products) * 3 // 100)):
            factor = Decimal(str(round(rng.choice((0.85, 0.9, 0.95, 1.05, 1.1, 1.2)), 2)))
            at = midnight + timedelta(hours=2, seconds=rng.uniform(0, 3600))
            new_price = money(self.state["products"][key]["price"] * factor)
            self.schedule.add(at, [("update", "products", key, {"price": new_price})])
        if rng.random() < 0.3 and products:
            key = rng.choice(products)
            at = midnight + timedelta(hours=3, seconds=rng.uniform(0, 3600))
            self.schedule.add(at, [("update", "products", key, {"active": False})])
        if midnight.weekday() == 0:  # new arrivals every Monday
            names = list(catalog.CATEGORIES)
            for _ in range(rng.randint(2, 6)):
                at = midnight + timedelta(hours=6, seconds=rng.uniform(0, 3600))
                product = self.population.new_product(rng.choice(names), at)
                self.population.popularity[product["product_id"]] = 0.3
                self.schedule.add(at, [("insert", "products", None, product)])

    def _account_changes(self, midnight: datetime) -> None:
        """Profile edits, and now and then an account erased (the person stops visiting)."""
        rng = self.rng
        accounts = [v for v in self.population.known if v.active]
        for visitor in rng.sample(accounts, len(accounts) // 200):
            at = midnight + timedelta(seconds=rng.uniform(0, 86400))
            key = (visitor.user_id,)
            if rng.random() < 0.5:
                values: dict[str, Any] = {
                    "marketing_opt_in": lambda row: not row["marketing_opt_in"]
                }
            else:
                values = {"email": f"user{visitor.user_id}.{rng.randint(1, 999)}@example.org"}
            self.schedule.add(at, [("update", "users", key, values)])
        for visitor in rng.sample(
            accounts, max(0, round(len(accounts) * 0.0008 + rng.random() - 0.5))
        ):
            visitor.active = False  # the account is erased and the person stops visiting
            at = midnight + timedelta(seconds=rng.uniform(0, 86400))
            self.schedule.add(at, [("delete", "users", (visitor.user_id,), None)])
