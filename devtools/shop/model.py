"""The synthetic shop's configuration and what it yields: a `Snapshot` of the database before
the window, `Delivery` items (events as clients sent them, with the truth about when they
happened) and `Transaction` items (row changes committed together); plus the shop's money
rules (prices in USD, orders in the customer's currency, cents rounded half up) and its clock
(every simulated instant is a whole millisecond, as Segment's timestamps are)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from platform_core.raw.schema import CDC_KEY_COLUMNS

KEY_COLUMNS = CDC_KEY_COLUMNS  # the source tables and their primary keys
PAID_STATUSES = ("paid", "shipped", "delivered", "refunded")
CENT = Decimal("0.01")
FREE_SHIPPING_FROM = Decimal("50.00")
SHIPPING_FEE = Decimal("4.99")


# The market a customer buys in decides the currency of their orders; the shop's price list
# converts its USD catalogue prices with these factors (its own, not finance's rates).
MARKET_CURRENCY = {"US": "USD", "CA": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR"}
PRICE_LIST = {"USD": Decimal("1"), "EUR": Decimal("0.92"), "GBP": Decimal("0.79")}


def money(value: float | Decimal) -> Decimal:
    return Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)


def local_price(usd_price: Decimal, currency: str) -> Decimal:
    """A catalogue price (USD) in the customer's currency, as the shop's price list shows it."""
    return money(usd_price * PRICE_LIST[currency])


def whole_ms(value: datetime) -> datetime:
    """An instant truncated to the millisecond (Segment's clocks send milliseconds)."""
    return value - timedelta(microseconds=value.microsecond % 1000)


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
    # realism: a device's clock corrected (NTP) between a send and its retry, so the retry
    # carries another event time; server events sent without a messageId; carts bought in a
    # later session; clocks years off; order lines renumbered when the order ships (a
    # primary-key change)
    clock_fix_retry_rate: float = 0.25
    # the collector derives an id from the source and the content (a retry gets the same one)
    missing_message_id_rate: float = 0.3
    cart_return_rate: float = 0.35
    far_off_clock_rate: float = 0.003
    renumber_lines_rate: float = 0.25
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
    """One event as a client sent it: the JSON message, the source and when it arrived, and
    the truth the message only approximates: when it really happened and was really sent
    (true UTC, not the client's clock), and how wrong the client's clock was."""

    at: datetime  # when the collector received it
    source: str
    payload: dict[str, Any]
    happened_at: datetime | None = None
    sent_at: datetime | None = None
    # what the client's clock read minus the true time, when the event happened and when
    # the message was sent (they differ when the clock was corrected in between)
    clock_error_at_event: timedelta | None = None
    clock_error_at_send: timedelta | None = None

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
