"""The synthetic shop's database: its tables as they stand, and intents (insert, update,
delete, renumber) committed against them as `Transaction`s of row changes.

A renumbering changes rows' primary keys (order lines sorted by product); it is committed
the way PostgreSQL's logical decoding and Debezium then report a key change: a delete of the
old key and a create of the new one."""

from __future__ import annotations

import itertools
from datetime import datetime
from typing import Any

from devtools.shop.model import KEY_COLUMNS, Intent, RowChange, Snapshot, Transaction

Table = dict[tuple[Any, ...], dict[str, Any]]  # primary key -> row


class ShopDatabase:
    def __init__(self) -> None:
        self.tables: dict[str, Table] = {t: {} for t in KEY_COLUMNS}
        self._tx_ids = itertools.count(1000)

    def insert_now(self, table: str, row: dict[str, Any]) -> None:
        """A row that exists before the window (no change event)."""
        self.tables[table][tuple(row[c] for c in KEY_COLUMNS[table])] = row

    def snapshot(self, at: datetime) -> Snapshot:
        return Snapshot(
            at=at,
            rows={t: [dict(r) for r in rows.values()] for t, rows in self.tables.items()},
        )

    def commit(self, at: datetime, intents: list[Intent]) -> Transaction | None:
        """Apply the intents that still make sense (an update of a row deleted since, or one
        that changes nothing, is dropped); None when nothing changed."""
        changes: list[RowChange] = []
        for op, table, key, values in intents:
            rows = self.tables[table]
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
            elif op == "renumber":
                assert values is not None
                changes.extend(self._renumber(table, values["keys"]))
        if not changes:
            return None
        return Transaction(at=at, tx_id=next(self._tx_ids), changes=tuple(changes))

    def _renumber(self, table: str, keys: list[tuple[Any, ...]]) -> list[RowChange]:
        """Number an order's lines 1, 2, ... by product: the moved lines are deleted under
        their old keys, then created under their new ones."""
        rows = self.tables[table]
        lines = [rows[k] for k in sorted(keys) if k in rows]
        wanted = sorted(lines, key=lambda row: (row["product_id"], row["line_number"]))
        moved = [
            (row, number)
            for number, row in enumerate(wanted, start=1)
            if row["line_number"] != number
        ]
        deletes = [RowChange(table, "d", dict(row), None) for row, _ in moved]
        for row, _ in moved:
            del rows[(row["order_id"], row["line_number"])]
        creates = []
        for row, number in moved:
            new = {**row, "line_number": number}
            rows[(new["order_id"], number)] = new
            creates.append(RowChange(table, "c", None, dict(new)))
        return deletes + creates
