"""The synthetic shop's configuration and what it yields: a `Snapshot` of the database before
the window, `Delivery` items (events as clients sent them) and `Transaction` items (row changes
committed together); plus the shop's money rules (USD, cents rounded half up)."""

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
