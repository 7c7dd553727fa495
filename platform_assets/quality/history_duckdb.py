"""The local history store: `DATA_DIR/monitoring.duckdb`, attached as catalog `monitoring`.

Its own DuckDB file, not a schema of the warehouse: dbt is the warehouse's single writer and
holds its lock for a whole build while checks run; a separate file means recording never
waits for dbt and never makes dbt wait. Writers open it for a moment and retry while
another writer holds it.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

from platform_assets.quality.history_tables import (
    COLUMNS,
    LATEST_SQL,
    SCHEMAS_TABLE,
    TABLE,
    TRENDS_SQL,
    AssetMemory,
    flagged_days_of,
    to_row,
    utcnow,
)
from platform_assets.quality.results import CheckResult


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]


def _lock_error(error: Exception) -> bool:
    text = str(error).lower()
    return "lock" in text


class DuckDBHistoryStore:
    """The local monitoring file, attached as catalog `monitoring` on every connection."""

    catalog = "monitoring"

    def __init__(
        self, path: Path | str, *, lock_timeout: float = 60.0, keep_open: bool = False
    ) -> None:
        """`keep_open`: one connection for the store's life, for a single process that is the
        file's only user (the evaluation); the platform's processes share the file, so they
        open it for a moment each time."""
        self.path = Path(path)
        self.lock_timeout = lock_timeout
        self.keep_open = keep_open
        self._ready = False
        self._open: Any = None

    @contextlib.contextmanager
    def connect(self, read_only: bool = False) -> Iterator[Any]:
        if self.keep_open:
            if self._open is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._open = self._attach(read_only=False)
            yield self._open
            return
        con = self._attach(read_only)
        try:
            yield con
        finally:
            con.close()

    def _attach(self, read_only: bool) -> Any:
        import duckdb

        deadline = time.monotonic() + self.lock_timeout
        pause = 0.05
        while True:
            con = duckdb.connect(":memory:")
            try:
                mode = " (read_only)" if read_only else ""
                con.execute(f"attach '{self.path}' as {self.catalog}{mode}")
                break
            except duckdb.Error as error:
                con.close()
                if not _lock_error(error) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 2, 2.0)
        return con

    def _complete(self) -> bool:
        """Tables and views already there (checked read-only: no write lock taken)."""
        if not self.path.exists() and not self.keep_open:
            return False
        with self.connect(read_only=True) as con:
            found = {
                r[0]
                for r in con.execute(
                    "select table_name from information_schema.tables "
                    f"where table_catalog = '{self.catalog}'"
                ).fetchall()
            }
        return {TABLE, SCHEMAS_TABLE, "quality_trends", "quality_latest"} <= found

    def ensure(self) -> None:
        if self._ready:
            return
        if self._complete():
            self._ready = True
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        columns = ", ".join(f"{name} {typ}" for name, typ, _, _ in COLUMNS)
        m = self.catalog
        with self.connect() as con:
            con.execute(f"create table if not exists {m}.{TABLE} ({columns})")
            con.execute(
                f"create table if not exists {m}.{SCHEMAS_TABLE} "
                f"(asset varchar, seen_at timestamp, recorded_at timestamp, "
                f"columns varchar)"
            )
            con.execute(f"create or replace view {m}.quality_trends as {TRENDS_SQL}")
            con.execute(f"create or replace view {m}.quality_latest as {LATEST_SQL}")
        self._ready = True

    def record(
        self, results: Sequence[CheckResult], *, run_id: str = "", source: str = "dagster"
    ) -> int:
        if not results:
            return 0
        self.ensure()
        rows = [to_row(r, run_id=run_id, source=source) for r in results]
        names = [c[0] for c in COLUMNS]
        placeholders = ", ".join("?" for _ in names)
        with self.connect() as con:
            con.executemany(
                f"insert into {self.catalog}.{TABLE} ({', '.join(names)}) values ({placeholders})",
                [[row[n] for n in names] for row in rows],
            )
        return len(rows)

    def last_schema(self, asset: str) -> list[tuple[str, str]] | None:
        self.ensure()
        with self.connect(read_only=True) as con:
            row = con.execute(
                f"select columns from {self.catalog}.{SCHEMAS_TABLE} where asset = ? "
                f"order by recorded_at desc limit 1",
                [asset],
            ).fetchone()
        return [tuple(c) for c in json.loads(row[0])] if row else None

    def save_schema(self, asset: str, columns: list[tuple[str, str]], seen_at: datetime) -> None:
        self.ensure()
        with self.connect() as con:
            con.execute(
                f"insert into {self.catalog}.{SCHEMAS_TABLE} values (?, ?, ?, ?)",
                [asset, seen_at, utcnow(), json.dumps([list(c) for c in columns])],
            )

    def _select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        self.ensure()
        with self.connect(read_only=True) as con:
            cursor = con.execute(sql, params)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def recent(self, asset: str, check_name: str, limit: int = 10) -> list[dict[str, Any]]:
        return self._select(
            f"select evaluated_at, as_of, value, passed, status from {self.catalog}.{TABLE} "
            f"where asset = ? and check_name = ? order by evaluated_at desc limit ?",
            [asset, check_name, limit],
        )

    def flagged_days(self, asset: str, check_name: str, since: date) -> set[date]:
        """Days a daily rule judged anomalous (warn/fail; not evaluation errors)."""
        rows = self._select(
            f"select details from {self.catalog}.{TABLE} where asset = ? and check_name = ? "
            f"and status in ('warn', 'fail') and as_of >= ?",
            [asset, check_name, since],
        )
        return flagged_days_of(rows, since)

    def memory(self, asset: str, since: date, recent: int = 9) -> AssetMemory:
        """Flagged days and recent results of every check of an asset, on one connection
        (one connection per check made a day's evaluation three times slower)."""
        self.ensure()
        table = f"{self.catalog}.{TABLE}"
        with self.connect(read_only=True) as con:
            flagged = _rows(
                con.execute(
                    f"select check_name, details from {table} where asset = ? "
                    f"and status in ('warn', 'fail') and as_of >= ?",
                    [asset, since],
                )
            )
            latest = _rows(
                con.execute(
                    f"select check_name, evaluated_at, as_of, value, passed, status from {table} "
                    f"where asset = ? qualify row_number() over (partition by check_name "
                    f"order by evaluated_at desc, evaluation_id desc) <= ? "
                    f"order by check_name, evaluated_at desc",
                    [asset, recent],
                )
            )
        return AssetMemory.from_rows(flagged, latest, since)

    def latest_narrative(
        self, fingerprint: str, since: datetime
    ) -> tuple[dict[str, Any], str] | None:
        if not fingerprint:
            return None
        rows = self._select(
            f"select narrative, narrator from {self.catalog}.{TABLE} where fingerprint = ? "
            f"and evaluated_at >= ? and narrative is not null "
            f"order by evaluated_at desc limit 1",
            [fingerprint, since],
        )
        return (json.loads(rows[0]["narrative"]), rows[0]["narrator"] or "") if rows else None

    def rows(
        self, asset: str | None = None, limit: int = 50, failed_only: bool = False
    ) -> list[dict[str, Any]]:
        where, params = [], []
        if asset:
            where.append("asset = ?")
            params.append(asset)
        if failed_only:
            where.append("not passed")
        clause = f"where {' and '.join(where)}" if where else ""
        return self._select(
            f"select * from {self.catalog}.{TABLE} {clause} order by evaluated_at desc limit ?",
            [*params, limit],
        )

    def trends(self, asset: str | None = None) -> list[dict[str, Any]]:
        clause, params = ("where asset = ?", [asset]) if asset else ("", [])
        return self._select(
            f"select * from {self.catalog}.quality_trends {clause} order by asset, day", params
        )
