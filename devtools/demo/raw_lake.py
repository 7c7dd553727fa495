"""How far the raw lake has got: rows per raw table, and waiting until the live path has
carried everything into it."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import duckdb

from devtools.stack import LocalStack
from platform_core.raw.schema import RAW_TABLES
from streaming.raw.writer import ParquetRawWriter


def raw_counts(lake: ParquetRawWriter) -> dict[str, int]:
    with duckdb.connect() as con:
        return {
            table: con.execute(
                f"select count(*) from read_parquet('{lake.glob(table)}', union_by_name=true)"
            ).fetchone()[0]
            for table in RAW_TABLES
        }


def wait_until(condition: Callable[[], bool], what: str, timeout: float, stack: LocalStack) -> None:
    """Poll `condition` every second; fail at once if a service of the stack died."""
    deadline = time.monotonic() + timeout
    while not condition():
        stack.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1)


def drained(lake: ParquetRawWriter, before: dict[str, int], events: int, cdc: Counter[str]) -> bool:
    """At least `events` events and the `cdc` changes per raw table arrived since `before`."""
    now = raw_counts(lake)
    return now["events"] - before["events"] >= events and all(
        now[t] - before[t] >= n for t, n in cdc.items()
    )
