"""Local warehouse access for the optimizer: read-only, and through one door.

`open_warehouse` is the only place this package opens the DuckDB warehouse (staging and mart
tables in the read snapshot dbt publishes after each invocation, raw tables as the Parquet
lake). It reads the snapshot, as every other reader does (platform_assets/dbt/read_snapshot.py),
never the file dbt writes: a reader of that file holds dbt's write lock up, so an audit
would stall a refresh, or a refresh fail. The snapshot is attached read-only, the
session is in UTC (as BigQuery is) and locked down: no file outside the lake can be read, no
other database attached, no setting changed back. Queries reach it as BigQuery SQL
transpiled by sqlglot, every table reference pointed at its local relation (`localize`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlglot
from sqlglot import exp

from platform_assets.genai.sql_optimizer.schema import TableInfo, WarehouseSchema
from platform_assets.quality.warehouse import DuckDBWarehouse, sql_literal

DUCKDB_TYPES = {
    "STRING": "VARCHAR", "INT64": "BIGINT", "FLOAT64": "DOUBLE", "NUMERIC": "DECIMAL(38, 9)",
    "BOOL": "BOOLEAN", "DATE": "DATE", "TIMESTAMP": "TIMESTAMP", "DATETIME": "TIMESTAMP",
    "BYTES": "BLOB",
}  # fmt: skip


class LocalQueryError(RuntimeError):
    """The local warehouse could not run a query (missing table, timeout, too many rows)."""


def _attach(con: Any, path: Path, lock_timeout: float) -> None:
    """Attach the warehouse snapshot read-only (waiting, in case a writer holds the file
    anyway: someone pointed DUCKDB_PATH at the snapshot)."""
    import duckdb

    deadline = time.monotonic() + lock_timeout
    pause = 0.2
    while True:
        try:
            con.execute(f"ATTACH {sql_literal(str(path))} AS warehouse (READ_ONLY)")
            con.execute("USE warehouse")
            return
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise LocalQueryError(f"cannot open {path}: {error}") from None
            time.sleep(pause)
            pause = min(pause * 2, 5.0)
        except duckdb.Error as error:  # e.g. the file is open in this process already
            raise LocalQueryError(f"cannot open {path}: {error}") from None


def open_warehouse(settings: Any, *, lock_timeout: float = 60.0) -> Any:
    """A read-only connection to the local warehouse's read snapshot, locked down to the lake.

    A private in-memory DuckDB attaches the warehouse file read-only, so the lock-down below
    (no file access outside the lake, no setting changed back) applies to this connection
    only, not to other DuckDB users of the file in the same process."""
    import duckdb

    con = duckdb.connect(":memory:")
    try:
        if Path(settings.warehouse_read_path).exists():
            _attach(con, Path(settings.warehouse_read_path), lock_timeout)
        lake = str(settings.lake_path).rstrip("/") + "/"
        con.execute(f"SET allowed_directories = [{sql_literal(lake)}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def _empty_relation(table: TableInfo) -> exp.Expression:
    columns = ", ".join(
        f'CAST(NULL AS {DUCKDB_TYPES.get(bq_type, "VARCHAR")}) AS "{name}"'
        for name, bq_type in table.columns
    )
    return sqlglot.parse_one(f"(SELECT {columns} WHERE FALSE)", read="duckdb")


def local_relation(settings: Any, table: TableInfo) -> exp.Expression:
    """What a table reference reads locally: the lake for raw, the DuckDB file otherwise."""
    if table.kind == "raw":
        if not any((settings.lake_path / table.name).glob("**/*.parquet")):
            return _empty_relation(table)  # read_parquet fails on a glob with no file
        relation = DuckDBWarehouse(settings.warehouse_path, settings.lake_path).relation(
            f"raw/{table.name}"
        )
        return sqlglot.parse_one(f"SELECT * FROM {relation}", read="duckdb").args["from_"].this
    return exp.table_(table.name, db=table.dataset, quoted=True)


def localize(tree: exp.Expression, schema: WarehouseSchema, settings: Any) -> str:
    """BigQuery SQL as the local warehouse runs it (DuckDB dialect, local relations)."""
    tree = tree.copy()
    for table in list(tree.find_all(exp.Table)):
        info = schema.lookup(table)
        if info is None:
            continue
        relation = local_relation(settings, info).copy()
        alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(table.name))
        if isinstance(relation, exp.Table):
            relation.set("alias", alias)
            table.replace(relation)
        else:
            table.replace(exp.Subquery(this=relation.unnest(), alias=alias))
    return tree.sql(dialect="duckdb")


@dataclass
class LocalResult:
    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]


def run_select(
    con: Any, sql: str, *, timeout: float = 60.0, max_rows: int = 500_000
) -> LocalResult:
    """Run one (already vetted) SELECT within `timeout` seconds and `max_rows` rows."""
    import duckdb

    timer = threading.Timer(timeout, con.interrupt)
    timer.start()
    try:
        cursor = con.execute(sql)
        rows = cursor.fetchmany(max_rows + 1)
        description = cursor.description or []
    except duckdb.InterruptException:
        raise LocalQueryError(f"did not finish within {timeout:g}s") from None
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise LocalQueryError(f"{type(error).__name__}: {first}") from None
    finally:
        timer.cancel()
    if len(rows) > max_rows:
        raise LocalQueryError(f"more than {max_rows} rows: too many to compare")
    return LocalResult(
        columns=[d[0] for d in description],
        types=[str(d[1]) for d in description],
        rows=rows,
    )
