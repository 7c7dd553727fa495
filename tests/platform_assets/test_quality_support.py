"""Builders shared by the quality tests: a tiny warehouse (DuckDB file) and raw lake (Parquet).

No tests here; the test_quality_* modules import these helpers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from platform_assets.dbt.read_snapshot import publish_read_snapshot

AS_OF = datetime(2026, 11, 21, 0, 5)  # judges 2026-11-20
DAY = date(2026, 11, 20)
WEEKDAY = (0.92, 0.94, 0.97, 1.0, 1.06, 1.22, 1.16)


@dataclass
class TinyPlatform:
    root: Path

    @property
    def lake(self) -> Path:
        return self.root / "lake"

    @property
    def warehouse_path(self) -> Path:
        return self.root / "warehouse.duckdb"

    def write_raw(
        self,
        table: str,
        rows: list[dict[str, Any]],
        name: str = "part-0",
        partition: str | None = None,
    ) -> None:
        folder = self.lake / table / (partition or "all")
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), folder / f"{name}.parquet")

    @property
    def read_path(self) -> Path:
        """Where readers open it (Settings.warehouse_read_path for this DUCKDB_PATH)."""
        return self.root / "read" / "warehouse.duckdb"

    def sql(self, *statements: str) -> None:
        with duckdb.connect(str(self.warehouse_path)) as con:
            con.execute("create schema if not exists staging; create schema if not exists mart")
            for statement in statements:
                con.execute(statement)
        publish_read_snapshot(self.warehouse_path, self.read_path)  # as after a dbt run

    def table(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Create `name` (schema.table) from rows via Arrow."""
        arrow = pa.Table.from_pylist(rows)
        with duckdb.connect(str(self.warehouse_path)) as con:
            con.execute("create schema if not exists staging; create schema if not exists mart")
            con.register("rows_in", arrow)
            con.execute(f"create or replace table {name} as select * from rows_in")
            con.unregister("rows_in")
        publish_read_snapshot(self.warehouse_path, self.read_path)


def daily_counts(
    days: int = 35, base: int = 1000, end: date = DAY, jitter: Iterable[float] | None = None
) -> dict[date, int]:
    """Weekday-seasonal counts per day up to `end`, with a deterministic small wobble."""
    wobble = (
        list(jitter) if jitter is not None else [1 + 0.02 * ((i * 7) % 5 - 2) for i in range(days)]
    )
    out = {}
    for i in range(days):
        day = end - timedelta(days=days - 1 - i)
        out[day] = round(base * WEEKDAY[day.weekday()] * wobble[i])
    return out


def event_rows(
    counts: dict[date, int],
    *,
    source: str = "web",
    null_page_share: dict[date, float] | None = None,
    duplicate_share: dict[date, float] | None = None,
) -> list[dict[str, Any]]:
    """raw.events-like rows: one per count, spread over each day."""
    rows = []
    for day, n in counts.items():
        nulls = (null_page_share or {}).get(day, 0.1)
        dups = (duplicate_share or {}).get(day, 0.0)
        for i in range(n):
            at = datetime.combine(day, datetime.min.time()) + timedelta(seconds=i * 86000 / n)
            row = {
                "message_id": f"{day}-{i}",
                "source": source,
                "received_at": at,
                "ingested_at": at + timedelta(seconds=2),
                "event_date": day,
                "page_path": None if (i % 100) < nulls * 100 else "/p",
            }
            rows.append(row)
            if (i % 100) < dups * 100:
                rows.append(dict(row, ingested_at=at + timedelta(minutes=1)))
    return rows
