"""What the order and customer marts must say, computed in plain Python from the synthetic
shop's own database history (every transaction it committed, the outage the CDC path had),
the finance rates seed as data, and the metric definitions of the README.

A sale is an order whose payment succeeded, on the day of paid_at; a refund reverses it on
the day of refunded_at; amounts convert to USD at the rate of the sale day, per order,
rounded half up to cents. What CDC could not see (statuses set and left again during the
outage) is left out exactly as the definitions say.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from devtools.shop.model import Snapshot, Transaction

CENT = Decimal("0.01")
RATES_SEED = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "currency_rates.csv"


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def naive(value: datetime | None) -> datetime | None:
    return None if value is None else value.replace(tzinfo=None)


def average(total: Decimal, count: int) -> Decimal | None:
    return cents(total / count) if count else None


def read_rates(path: Path = RATES_SEED) -> dict[str, list[tuple[date, Decimal]]]:
    rates: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    with path.open() as handle:
        for row in csv.DictReader(handle):
            rates[row["currency"]].append(
                (date.fromisoformat(row["valid_from"]), Decimal(row["rate_to_usd"]))
            )
    return {c: sorted(r) for c, r in rates.items()}


@dataclass
class Order:
    order_id: int
    user_id: int
    currency: str
    subtotal: Decimal
    shipping: Decimal
    total: Decimal
    created_at: datetime
    status: str = "pending"
    in_source: bool = True
    paid_at: datetime | None = None
    refunded_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    cancelled_at: datetime | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    rate: Decimal | None = None
    # every status set: (when, status, commit time as the source recorded it)
    history: list[tuple[datetime, str, datetime]] = field(default_factory=list)
    # the statuses the warehouse can see: (changed_at, status)
    seen: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def is_sale(self) -> bool:
        return self.paid_at is not None

    @property
    def is_refunded(self) -> bool:
        return self.refunded_at is not None

    @property
    def sale_date(self) -> date | None:
        return self.paid_at.date() if self.paid_at else None

    @property
    def refund_date(self) -> date | None:
        return self.refunded_at.date() if self.refunded_at else None

    @property
    def cancel_date(self) -> date | None:
        return self.cancelled_at.date() if self.cancelled_at else None

    @property
    def usd(self) -> Decimal:
        assert self.rate is not None
        return cents(self.total * self.rate)

    @property
    def items(self) -> int:
        return sum(line["quantity"] for line in self.lines)

    def line_usd(self, line: dict[str, Any]) -> Decimal:
        assert self.rate is not None
        return cents(line["quantity"] * line["unit_price"] * self.rate)


class OrdersTruth:
    """Every order the shop ever placed, as the facts must keep it."""

    def __init__(
        self,
        items: list[Any],
        outage: tuple[datetime, datetime] | None,
        rates: dict[str, list[tuple[date, Decimal]]],
    ) -> None:
        self.outage = outage
        self.rates = rates
        self.orders: dict[int, Order] = {}
        snapshot = items[0]
        assert isinstance(snapshot, Snapshot) and not snapshot.rows["orders"]
        transactions = [i for i in items if isinstance(i, Transaction)]
        status_at_outage_end: dict[int, tuple[str, datetime]] = {}
        for tx in transactions:
            if outage and tx.at >= outage[1] and not status_at_outage_end:
                status_at_outage_end = self._statuses()
            self._apply(tx)
        if outage and not status_at_outage_end:
            status_at_outage_end = self._statuses()
        self._mark_seen(transactions, status_at_outage_end)
        for order in self.orders.values():
            order.rate = self.rate(order.currency, order.sale_date or order.created_at.date())

    def rate(self, currency: str, day: date) -> Decimal:
        return [rate for start, rate in self.rates[currency] if start <= day][-1]

    # --- the shop's history -------------------------------------------------------------

    def _apply(self, tx: Transaction) -> None:
        at = naive(tx.at)
        for change in tx.changes:
            if change.table == "orders" and change.op == "c":
                row = change.after
                self.orders[row["order_id"]] = Order(
                    order_id=row["order_id"],
                    user_id=row["user_id"],
                    currency=row["currency"],
                    subtotal=row["subtotal"],
                    shipping=row["shipping"],
                    total=row["total_amount"],
                    created_at=naive(row["created_at"]),
                )
                self.orders[row["order_id"]].history.append((at, row["status"], tx.at))
            elif change.table == "orders" and change.op == "u":
                order = self.orders[change.after["order_id"]]
                status = change.after["status"]
                order.status = status
                order.paid_at = naive(change.after["paid_at"])
                order.refunded_at = naive(change.after["refunded_at"])
                order.history.append((at, status, tx.at))
            elif change.table == "orders" and change.op == "d":
                self.orders[change.before["order_id"]].in_source = False
            elif change.table == "order_items" and change.op == "c":
                # a renumbering creates lines again under new numbers: keep one per number
                order = self.orders[change.after["order_id"]]
                number = change.after["line_number"]
                order.lines = [li for li in order.lines if li["line_number"] != number]
                order.lines.append(change.after)

    def _statuses(self) -> dict[int, tuple[str, datetime]]:
        """Each existing order's status and the time it was set (what a snapshot reads)."""
        return {
            o.order_id: (o.status, o.history[-1][0]) for o in self.orders.values() if o.in_source
        }

    def _captured(self, at: datetime) -> bool:
        return self.outage is None or not self.outage[0] <= at < self.outage[1]

    def _mark_seen(
        self, transactions: list[Transaction], at_outage_end: dict[int, tuple[str, datetime]]
    ) -> None:
        """The statuses CDC carried: changes outside the outage, and the re-snapshot's."""
        for order in self.orders.values():
            images = [
                (at, status) for at, status, committed in order.history if self._captured(committed)
            ]
            if order.order_id in at_outage_end:
                status, changed = at_outage_end[order.order_id]
                assert self.outage is not None
                images.append((changed, status))
                images.sort(key=lambda image: image[0])
            seen: list[tuple[datetime, str]] = []
            for changed, status in images:
                if not seen or seen[-1][1] != status:
                    seen.append((changed, status))
            order.seen = seen
            first = {status: changed for changed, status in reversed(seen)}
            order.shipped_at = first.get("shipped")
            order.delivered_at = first.get("delivered")
            order.cancelled_at = first.get("cancelled")

    # --- marts ------------------------------------------------------------------------

    def sales(self) -> list[Order]:
        return [o for o in self.orders.values() if o.is_sale]

    def daily_sales(self) -> dict[date, tuple]:
        """day -> orders, gross, items, customers, AOV, refunded, refunds, net, cancelled."""
        days: set[date] = set()
        for o in self.orders.values():
            days |= {d for d in (o.sale_date, o.refund_date, o.cancel_date) if d}
        out = {}
        day = min(days)
        while day <= max(days):
            sold = [o for o in self.sales() if o.sale_date == day]
            refunded = [o for o in self.orders.values() if o.refund_date == day]
            cancelled = [o for o in self.orders.values() if o.cancel_date == day]
            gross = sum((o.usd for o in sold), Decimal(0))
            refunds = sum((o.usd for o in refunded), Decimal(0))
            out[day] = (
                len(sold),
                gross,
                sum(o.items for o in sold),
                len({o.user_id for o in sold}),
                average(gross, len(sold)),
                len(refunded),
                refunds,
                gross - refunds,
                len(cancelled),
            )
            day += timedelta(days=1)
        return out

    def daily_sales_by_currency(self) -> dict[tuple[date, str], tuple]:
        rows: dict[tuple[date, str], list] = defaultdict(lambda: [0, Decimal(0), 0, Decimal(0)])
        for o in self.sales():
            row = rows[(o.sale_date, o.currency)]
            row[0] += 1
            row[1] += o.total
        for o in self.orders.values():
            if o.is_refunded:
                row = rows[(o.refund_date, o.currency)]
                row[2] += 1
                row[3] += o.total
        return {k: (v[0], v[1], v[2], v[3], v[1] - v[3]) for k, v in rows.items()}

    def customers_daily(self) -> dict[date, tuple]:
        """day -> customers, new, returning, new revenue, returning revenue, customers to
        date, repeat customers to date."""
        by_user: dict[int, list[Order]] = defaultdict(list)
        for o in self.sales():
            by_user[o.user_id].append(o)
        first = {u: min(o.sale_date for o in s) for u, s in by_user.items()}
        second = {
            u: sorted(s, key=lambda o: (o.paid_at, o.order_id))[1].sale_date
            for u, s in by_user.items()
            if len(s) > 1
        }
        out = {}
        day, last = min(first.values()), max(o.sale_date for o in self.sales())
        while day <= last:
            sold = [o for o in self.sales() if o.sale_date == day]
            users = {o.user_id for o in sold}
            new = {u for u in users if first[u] == day}
            out[day] = (
                len(users),
                len(new),
                len(users) - len(new),
                sum((o.usd for o in sold if o.user_id in new), Decimal(0)),
                sum((o.usd for o in sold if o.user_id not in new), Decimal(0)),
                sum(1 for d in first.values() if d <= day),
                sum(1 for d in second.values() if d <= day),
            )
            day += timedelta(days=1)
        return out

    def fulfilment(self) -> dict[date, tuple]:
        """sale day -> orders, shipped, delivered, avg/max hours to ship, avg/max in transit."""

        def hours(start: datetime | None, end: datetime | None) -> float | None:
            return (end - start).total_seconds() / 3600 if start and end else None

        by_day: dict[date, list[Order]] = defaultdict(list)
        for o in self.sales():
            by_day[o.sale_date].append(o)
        out = {}
        for day, orders in by_day.items():
            ship = [h for o in orders if (h := hours(o.paid_at, o.shipped_at)) is not None]
            transit = [h for o in orders if (h := hours(o.shipped_at, o.delivered_at)) is not None]
            out[day] = (
                len(orders),
                sum(1 for o in orders if o.shipped_at),
                sum(1 for o in orders if o.delivered_at),
                sum(ship) / len(ship) if ship else None,
                max(ship, default=None),
                sum(transit) / len(transit) if transit else None,
                max(transit, default=None),
            )
        return out

    def product_sales(self) -> dict[int, tuple]:
        """product -> units, units refunded, revenue, refunded revenue, orders, refunded orders."""
        rows: dict[int, list] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0), set(), set()])
        for o in self.sales():
            for line in o.lines:
                row = rows[line["product_id"]]
                usd = o.line_usd(line)
                row[0] += line["quantity"]
                row[2] += usd
                row[4].add(o.order_id)
                if o.is_refunded:
                    row[1] += line["quantity"]
                    row[3] += usd
                    row[5].add(o.order_id)
        return {p: (r[0], r[1], r[2], r[3], len(r[4]), len(r[5])) for p, r in rows.items()}

    def as_of(self) -> date:
        """The order data's as-of date: the day of the latest order placed."""
        return max(o.created_at.date() for o in self.orders.values())

    def kept(self, user_id: int) -> list[Order]:
        return [o for o in self.sales() if o.user_id == user_id and not o.is_refunded]


def segment(orders: int, recency: int | None) -> str:
    if orders == 0:
        return "prospect"
    assert recency is not None
    if orders >= 3 and recency <= 14:
        return "champion"
    if orders >= 2 and recency <= 30:
        return "loyal"
    if orders == 1 and recency <= 14:
        return "new"
    return "at_risk"


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def month_start(day: date) -> date:
    return day.replace(day=1)
