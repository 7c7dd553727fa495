"""Warehouses of growing size for bench.scale, without simulating every session.

Simulating a shop costs ~5 ms of CPU per session here (a year at 10k sessions/day would take
hours), so the benchmark simulates a short base window once (`simulate_base`: 1k sessions/day,
every realism of devtools/shop: retries, late deliveries, clock skew, CDC) and grows the
events table from it (`grow_events`): the base window is repeated back in time, shifted by
whole days, as many times as it takes to cover the history, and each day is copied
`copies` times (10 copies = 10k sessions/day) with fresh message and anonymous ids, so each
copy is a distinct set of shoppers and deliveries that dedup and sessionisation treat as new.
The source-database tables (raw.cdc_*) stay those of the base window: the history grows in
events (what dominates the lake and the refresh), not in orders.
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from devtools.shop.load import load_shop
from devtools.shop.model import ShopConfig
from streaming.raw.writer import ParquetRawWriter

BASE_SESSIONS = 1000
TIMESTAMPS = ("original_timestamp", "sent_at", "received_at", "event_timestamp", "ingested_at")


def simulate_base(lake: Path, *, days: int, end: date, seed: int) -> None:
    """The base window: `days` days of the synthetic shop at 1k sessions/day, landed in raw."""
    config = ShopConfig(seed=seed, days=days, sessions_per_day=BASE_SESSIONS, end_date=end)
    load_shop(ParquetRawWriter(lake), config)


def grow_events(
    base: Path, lake: Path, *, days: int, copies: int, base_days: int, end: date
) -> int:
    """A lake of `days` days x `copies` x 1k sessions/day grown from the base lake; returns the
    events rows written. Non-event tables are copied from the base as they are."""
    for table in base.iterdir():
        if table.is_dir() and table.name != "events":
            shutil.copytree(table, lake / table.name, dirs_exist_ok=True)
    events = lake / "events"
    events.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(base / "events" / "_schema.parquet", events / "_schema.parquet")
    blocks = -(-days // base_days)  # the base window repeated this many times, back in time
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"SET temp_directory = '{lake.parent / 'duckdb_tmp'}'")
        first_day = end - timedelta(days=days - 1)
        back = f"to_days(cast(block.n * {base_days} as integer))"
        shift = ", ".join(f"{c} - {back} as {c}" for c in TIMESTAMPS)
        con.execute(
            f"""
            copy (
                select
                    e.* replace (
                        message_id || '~b' || block.n || 'c' || copy.k as message_id,
                        anonymous_id || '~c' || copy.k as anonymous_id,
                        {shift},
                        cast(event_date - {back} as date)
                            as event_date
                    )
                from {_events(base)} as e,
                    range({blocks}) as block(n),
                    range({copies}) as copy(k)
                where e.event_date - {back}
                    >= date '{first_day}'
            ) to '{events}' (
                format parquet, partition_by (event_date), write_partition_columns true,
                filename_pattern 'part-grown-{{i}}', overwrite_or_ignore true
            )
            """
        )
        return con.execute(f"select count(*) from {_events(lake)}").fetchone()[0]


def land_today(base: Path, lake: Path, *, copies: int, day: date, at: datetime) -> int:
    """New deliveries of `day`, the last day (its events again with new ids, ingested at
    `at`): what a refresh of today picks up. Returns the rows landed."""
    with duckdb.connect() as con:
        target = lake / "events" / f"event_date={day}"
        target.mkdir(parents=True, exist_ok=True)
        relation = f"""
            select
                e.* replace (
                    message_id || '~today' || copy.k as message_id,
                    anonymous_id || '~today' || copy.k as anonymous_id,
                    timestamp '{at:%Y-%m-%d %H:%M:%S}' as ingested_at
                )
            from {_events(base)} as e, range({copies}) as copy(k)
            where e.event_date = date '{day}'
        """
        rows = con.execute(f"select count(*) from ({relation})").fetchone()[0]
        con.execute(f"copy ({relation}) to '{target / 'part-today.parquet'}' (format parquet)")
    return rows


def _events(lake: Path) -> str:
    return (
        f"read_parquet('{lake / 'events'}/event_date=*/*.parquet', "
        "union_by_name = true, hive_partitioning = false)"
    )
