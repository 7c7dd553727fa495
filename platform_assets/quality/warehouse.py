"""Read-only access to the warehouse for the quality rules: DuckDB locally, BigQuery in prod.

Rules write their SQL once, in DuckDB's dialect, with `{rel}`-style relations from
`Warehouse.relation(asset)`. The DuckDB warehouse runs it as is (raw tables are the Parquet
lake, read in place like dbt does); the BigQuery warehouse transpiles it with sqlglot.

DuckDB allows one writer per file and dbt is that writer: connections here are read-only,
short-lived (one per asset evaluation) and retried while dbt holds the lock. They can in
turn make dbt wait for the lock; dbt-duckdb's `retries: {connect_attempts: N}` covers that.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from platform_core.settings import Settings

log = logging.getLogger(__name__)

LAYER_SCHEMAS = {"staging": "staging", "mart": "mart"}


class WarehouseError(RuntimeError):
    """The warehouse could not answer (missing table, lock held too long, bad SQL)."""


class Session(Protocol):
    def query(self, sql: str) -> list[dict[str, Any]]:
        """Run one DuckDB-dialect SELECT; rows as dicts."""

    def columns(self, asset: str) -> list[tuple[str, str]]:
        """(name, type) of an asset's columns, in order."""


class Warehouse(Protocol):
    dialect: str

    def relation(self, asset: str) -> str:
        """SQL relation (DuckDB dialect) reading an asset: a table name or a table function."""

    def session(self) -> contextlib.AbstractContextManager[Session]:
        """A short-lived read-only session."""


def split_asset(asset: str) -> tuple[str, str]:
    layer, _, name = asset.strip("/").partition("/")
    if not name or layer not in ("raw", *LAYER_SCHEMAS):
        raise WarehouseError(f"not a raw/staging/mart asset key: {asset!r}")
    return layer, name


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _is_lock_error(error: Exception) -> bool:
    text = str(error).lower()
    return "lock" in text and ("conflicting" in text or "could not set" in text)


class DuckDBWarehouse:
    """The local warehouse file (staging, mart) plus the raw Parquet lake."""

    dialect = "duckdb"

    def __init__(
        self, warehouse_path: Path | str, lake_path: Path | str, *, lock_timeout: float = 300.0
    ) -> None:
        self.warehouse_path = Path(warehouse_path)
        self.lake_path = Path(lake_path)
        self.lock_timeout = lock_timeout

    def relation(self, asset: str) -> str:
        layer, name = split_asset(asset)
        if layer == "raw":
            glob = self.lake_path / name / "**" / "*.parquet"
            return (
                f"read_parquet({sql_literal(str(glob))}, union_by_name = true, "
                f"hive_partitioning = false)"
            )
        return f"{quote(LAYER_SCHEMAS[layer])}.{quote(name)}"

    def connect(self) -> Any:
        import duckdb

        if not self.warehouse_path.exists():
            return _tuned(duckdb.connect(":memory:"))  # raw-only until dbt built the warehouse
        deadline = time.monotonic() + self.lock_timeout
        pause = 0.2
        while True:
            try:
                return _tuned(duckdb.connect(str(self.warehouse_path), read_only=True))
            except duckdb.IOException as error:
                if not _is_lock_error(error) or time.monotonic() > deadline:
                    raise WarehouseError(f"cannot open {self.warehouse_path}: {error}") from error
                log.info("warehouse locked by a writer (dbt?), retrying in %.1fs", pause)
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

    @contextlib.contextmanager
    def session(self) -> Iterator[_DuckDBSession]:
        con = self.connect()
        try:
            yield _DuckDBSession(self, con)
        finally:
            con.close()


def _tuned(con: Any) -> Any:
    """An evaluation reads the same Parquet files of the raw lake a dozen times (one query per
    metric): DuckDB's object cache keeps their metadata between queries of a session."""
    con.execute("set enable_object_cache = true")
    return con


class _DuckDBSession:
    def __init__(self, warehouse: DuckDBWarehouse, con: Any) -> None:
        self.warehouse = warehouse
        self.con = con

    def query(self, sql: str) -> list[dict[str, Any]]:
        import duckdb

        try:
            cursor = self.con.execute(sql)
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except duckdb.Error as error:
            raise WarehouseError(f"{type(error).__name__}: {error}") from error

    def columns(self, asset: str) -> list[tuple[str, str]]:
        rows = self.query(f"describe select * from {self.warehouse.relation(asset)}")
        return [(r["column_name"], str(r["column_type"])) for r in rows]


def to_bigquery(sql: str) -> str:
    """The DuckDB-dialect SQL of a rule, as BigQuery runs it."""
    import sqlglot

    return sqlglot.transpile(sql, read="duckdb", write="bigquery")[0]


class BigQueryWarehouse:
    """Production: the raw, staging and mart datasets of one project (dbt's prod target)."""

    dialect = "bigquery"

    def __init__(
        self,
        client: Any,
        project: str,
        *,
        raw_dataset: str = "raw",
        location: str | None = None,
        schemas: dict[str, str] | None = None,
    ) -> None:
        self.client = client
        self.project = project
        self.location = location
        self.datasets = {"raw": raw_dataset, **(schemas or LAYER_SCHEMAS)}

    def dataset(self, asset: str) -> tuple[str, str]:
        layer, name = split_asset(asset)
        return self.datasets[layer], name

    def relation(self, asset: str) -> str:
        dataset, name = self.dataset(asset)
        return ".".join(quote(part) for part in (self.project, dataset, name))

    @contextlib.contextmanager
    def session(self) -> Iterator[_BigQuerySession]:
        yield _BigQuerySession(self)


class _BigQuerySession:
    def __init__(self, warehouse: BigQueryWarehouse) -> None:
        self.warehouse = warehouse

    def query(self, sql: str) -> list[dict[str, Any]]:
        bq_sql = to_bigquery(sql)
        try:
            job = self.warehouse.client.query(bq_sql, location=self.warehouse.location)
            return [dict(row.items()) for row in job.result()]
        except Exception as error:  # google.api_core errors have no common cheap import
            raise WarehouseError(f"BigQuery: {error}") from error

    def columns(self, asset: str) -> list[tuple[str, str]]:
        dataset, name = self.warehouse.dataset(asset)
        info = ".".join(
            quote(p) for p in (self.warehouse.project, dataset, "INFORMATION_SCHEMA", "COLUMNS")
        )
        rows = self.query(
            f"select column_name, data_type from {info} "
            f"where table_name = {sql_literal(name)} order by ordinal_position"
        )
        return [(r["column_name"], r["data_type"]) for r in rows]


def warehouse_for(settings: Settings, *, lock_timeout: float = 300.0) -> Warehouse:
    """The configured deployment's warehouse (no connection is made here)."""
    if settings.is_local:
        return DuckDBWarehouse(  # the read snapshot: dbt's own file is never opened here
            settings.warehouse_read_path, settings.lake_path, lock_timeout=lock_timeout
        )
    from google.cloud import bigquery

    client = bigquery.Client(project=settings.gcp_project, location=settings.bq_location)
    return BigQueryWarehouse(
        client,
        settings.gcp_project,
        raw_dataset=settings.bq_raw_dataset,
        location=settings.bq_location,
    )


def column_list(columns: Sequence[str]) -> str:
    return ", ".join(quote(c) for c in columns)
