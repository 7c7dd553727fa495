"""What the CDC benchmarks (bench.cdc, bench.freshness's CDC leg) share: the catalog they
seed in the shop's database before the capture starts, and how many CDC rows raw holds."""

from __future__ import annotations

from pathlib import Path

import duckdb
import psycopg


def seed(dsn: str, products: int, users: int) -> None:
    """`products` products and `users` users, ids 1..n (orders reference them)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "insert into products select g, 'SKU-' || g, 'Product ' || g, 'Category', 'Brand',"
            " 9.99 + g %% 50, 'USD', true, now(), now() from generate_series(1, %s) g",
            (products,),
        )
        conn.execute(
            "insert into users select g, 'user' || g || '@example.com', 'User ' || g, 'DE',"
            " g %% 3 = 0, now(), now() from generate_series(1, %s) g",
            (users,),
        )


def raw_rows(lake: Path, tables: str = "cdc_*") -> int:
    """Rows in the raw CDC tables matching `tables` (a table name or a glob)."""
    if not list(lake.glob(f"{tables}/ingest_date=*/*.parquet")):
        return 0
    with duckdb.connect() as con:
        return con.execute(
            f"select count(*) from read_parquet('{lake}/{tables}/ingest_date=*/*.parquet',"
            " union_by_name = true)"
        ).fetchone()[0]
