"""Drive the synthetic shop into a real PostgreSQL: the database changes the CDC path captures.

`load_snapshot` writes the shop as it stood before the simulated window (COPY, one
transaction). `ShopDriver.apply` turns one simulator `Transaction` into one database
transaction: inserts, updates of the columns that changed, deletes by primary key, each
checked to touch exactly one row. `replay` runs a whole simulation, optionally compressing
simulated time (``speed=3600``: an hour per second) or capping transactions per second.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from devtools.shop.simulator import (
    KEY_COLUMNS,
    Delivery,
    RowChange,
    ShopConfig,
    Snapshot,
    SyntheticShop,
    Transaction,
)

TABLE_ORDER = ("users", "products", "orders", "order_items")


class DriftError(RuntimeError):
    """The database is not in the state the simulation expects (a change touched no row)."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class DriveStats:
    transactions: int = 0
    changes: int = 0
    by_op: dict[str, int] = field(default_factory=lambda: {"c": 0, "u": 0, "d": 0})
    last_commit: datetime | None = None


class ShopDriver:
    """Applies simulator transactions to the source database, one DB transaction each."""

    def __init__(self, conn: psycopg.Connection, schema: str = "public") -> None:
        self.conn = conn
        self.schema = schema
        self.stats = DriveStats()
        self._sql: dict[tuple[Any, ...], str] = {}

    def _table(self, table: str) -> str:
        return f"{_ident(self.schema)}.{_ident(table)}"

    def _insert_sql(self, table: str, columns: tuple[str, ...]) -> str:
        key = ("c", table, columns)
        if key not in self._sql:
            names = ", ".join(_ident(c) for c in columns)
            marks = ", ".join(["%s"] * len(columns))
            self._sql[key] = f"insert into {self._table(table)} ({names}) values ({marks})"
        return self._sql[key]

    def _update_sql(self, table: str, columns: tuple[str, ...]) -> str:
        key = ("u", table, columns)
        if key not in self._sql:
            sets = ", ".join(f"{_ident(c)} = %s" for c in columns)
            where = " and ".join(f"{_ident(c)} = %s" for c in KEY_COLUMNS[table])
            self._sql[key] = f"update {self._table(table)} set {sets} where {where}"
        return self._sql[key]

    def _delete_sql(self, table: str) -> str:
        key = ("d", table)
        if key not in self._sql:
            where = " and ".join(f"{_ident(c)} = %s" for c in KEY_COLUMNS[table])
            self._sql[key] = f"delete from {self._table(table)} where {where}"
        return self._sql[key]

    def statement(self, change: RowChange) -> tuple[str, tuple[Any, ...]]:
        keys = KEY_COLUMNS[change.table]
        if change.op == "c":
            assert change.after is not None
            columns = tuple(change.after)
            return self._insert_sql(change.table, columns), tuple(change.after[c] for c in columns)
        if change.op == "u":
            assert change.before is not None and change.after is not None
            changed = tuple(
                c for c, v in change.after.items() if c not in keys and change.before.get(c) != v
            )
            if not changed:
                changed = tuple(c for c in change.after if c not in keys)
            params = tuple(change.after[c] for c in changed) + tuple(change.before[c] for c in keys)
            return self._update_sql(change.table, changed), params
        if change.op == "d":
            assert change.before is not None
            return self._delete_sql(change.table), tuple(change.before[c] for c in keys)
        raise ValueError(f"unknown op {change.op!r}")

    def apply(self, tx: Transaction) -> None:
        """One simulator transaction as one database transaction."""
        with self.conn.transaction(), self.conn.cursor() as cur:
            for change in tx.changes:
                sql, params = self.statement(change)
                cur.execute(sql, params, prepare=True)
                if cur.rowcount != 1:
                    raise DriftError(
                        f"tx {tx.tx_id}: {change.op} on {change.table} {change.key} "
                        f"touched {cur.rowcount} rows"
                    )
                self.stats.by_op[change.op] += 1
        self.stats.transactions += 1
        self.stats.changes += len(tx.changes)
        self.stats.last_commit = tx.at

    def load_snapshot(self, snapshot: Snapshot) -> int:
        """Insert the shop as it stood before the window (COPY, one transaction)."""
        count = 0
        with self.conn.transaction(), self.conn.cursor() as cur:
            for table in TABLE_ORDER:
                rows = snapshot.rows.get(table) or []
                if not rows:
                    continue
                columns = tuple(rows[0])
                names = ", ".join(_ident(c) for c in columns)
                with cur.copy(f"copy {self._table(table)} ({names}) from stdin") as copy:
                    for row in rows:
                        copy.write_row([row[c] for c in columns])
                count += len(rows)
        return count


def replay(
    conn: psycopg.Connection,
    items: Iterable[Any],
    *,
    speed: float | None = None,
    max_tps: float | None = None,
    load_snapshot: bool = True,
    limit: int | None = None,
    on_commit: Callable[[Transaction], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> DriveStats:
    """Apply a simulation's Snapshot and Transactions to the database in order.

    speed: simulated seconds per wall-clock second (None: as fast as the database allows).
    max_tps: cap on transactions per second. limit: stop after this many transactions.
    """
    driver = ShopDriver(conn)
    started = time.monotonic()
    first_at: datetime | None = None
    for item in items:
        if should_stop is not None and should_stop():
            break
        if isinstance(item, Snapshot):
            if load_snapshot:
                driver.load_snapshot(item)
            continue
        if isinstance(item, Delivery) or not isinstance(item, Transaction):
            continue
        if first_at is None:
            first_at = item.at
        due = 0.0
        if speed:
            due = (item.at - first_at).total_seconds() / speed
        if max_tps:
            due = max(due, driver.stats.transactions / max_tps)
        wait = due - (time.monotonic() - started)
        if wait > 0:
            time.sleep(wait)
        driver.apply(item)
        if on_commit is not None:
            on_commit(item)
        if limit is not None and driver.stats.transactions >= limit:
            break
    return driver.stats


def drive_shop(dsn: str, config: ShopConfig, **kwargs: Any) -> DriveStats:
    """Simulate the shop and replay it into the database at `dsn`."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return replay(conn, SyntheticShop(config).run(), **kwargs)
