"""Writers of the append-only raw layer: a Parquet lake locally, BigQuery in production.

Both take rows as dicts keyed by the raw schema's column names and append them; neither ever
rewrites or deletes what is there (compaction is a separate, row-preserving step).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from platform_core.durable import replace_atomically
from platform_core.raw.schema import RAW_TABLES, RawTable, raw_table
from platform_core.settings import Settings

Row = Mapping[str, Any]
SCHEMA_FILE = "_schema.parquet"


class RawWriteError(RuntimeError):
    """Rows could not be written; nothing of the failed call is visible to readers."""


class RawWriter(Protocol):
    def ensure_tables(self) -> None:
        """Create the raw tables (idempotent)."""

    def write(self, table: str, rows: Sequence[Row]) -> int:
        """Append rows durably; return how many were written."""


def write_parquet_atomically(table: pa.Table, target: Path) -> None:
    """Write to a hidden temp file, fsync, then rename: a reader sees all of it or none."""
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(target, lambda handle: pq.write_table(table, handle, compression="zstd"))


def to_arrow(spec: RawTable, rows: Sequence[Row]) -> pa.Table:
    """Rows as an Arrow table of the raw schema; RawWriteError names what does not fit."""
    unknown = set().union(*(row.keys() for row in rows)) - set(spec.column_names) if rows else set()
    if unknown:
        raise RawWriteError(f"{spec.name}: unknown columns {sorted(unknown)}")
    try:
        table = pa.Table.from_pylist([dict(row) for row in rows], schema=spec.arrow_schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as error:
        raise RawWriteError(f"{spec.name}: rows do not match the raw schema: {error}") from error
    # from_pylist does not enforce non-nullable fields
    missing = [c.name for c in spec.columns if c.required and table.column(c.name).null_count]
    if missing:
        raise RawWriteError(f"{spec.name}: required columns without a value: {missing}")
    return table


class ParquetRawWriter:
    """Local raw layer: `<lake>/<table>/<partition>=<value>/part-*.parquet`.

    Each `write` call adds one new file per partition it touches, so concurrent writers never
    share a file and dbt (reading the lake as external sources) never holds a lock on them.
    """

    def __init__(self, lake_path: Path | str) -> None:
        self.lake_path = Path(lake_path)

    def table_path(self, table: str) -> Path:
        return self.lake_path / raw_table(table).name

    def glob(self, table: str) -> str:
        return str(self.table_path(table) / "**" / "*.parquet")

    def ensure_tables(self) -> None:
        # A zero-row file per table lets readers resolve the schema before any data lands.
        for spec in RAW_TABLES.values():
            target = self.table_path(spec.name) / SCHEMA_FILE
            if not target.exists():
                write_parquet_atomically(spec.arrow_schema.empty_table(), target)

    def write(self, table: str, rows: Sequence[Row]) -> int:
        spec = raw_table(table)
        if not rows:
            return 0
        by_partition: dict[date, list[Row]] = defaultdict(list)
        for row in rows:
            value = row.get(spec.partition_column)
            if not isinstance(value, date) or isinstance(value, datetime):
                raise RawWriteError(
                    f"{table}: {spec.partition_column} must be a date, got {value!r}"
                )
            by_partition[value].append(row)
        # validate every partition before the first file lands
        tables = {value: to_arrow(spec, part) for value, part in by_partition.items()}
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        for value, arrow in sorted(tables.items()):
            name = f"part-{stamp}-{uuid.uuid4().hex[:12]}.parquet"
            write_parquet_atomically(arrow, self.partition_path(spec, value) / name)
        return len(rows)

    def partition_path(self, spec: RawTable, value: date) -> Path:
        return self.table_path(spec.name) / f"{spec.partition_column}={value.isoformat()}"


def _json_ready(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


class BigQueryRawWriter:
    """Production raw layer: day-partitioned, clustered BigQuery tables fed by load jobs.

    Load jobs (not the legacy streaming API) are free, atomic per call and leave no streaming
    buffer behind; the Beam job uses the Storage Write API for the live path.
    """

    def __init__(self, client: Any, project: str, dataset: str, location: str = "EU") -> None:
        self.client = client
        self.project = project
        self.dataset = dataset
        self.location = location

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{raw_table(table).name}"

    def bigquery_table(self, spec: RawTable) -> Any:
        from google.cloud import bigquery

        table = bigquery.Table(self.table_id(spec.name), schema=bq_schema(spec))
        table.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=spec.partition_column
        )
        table.clustering_fields = list(spec.cluster_columns)
        table.description = spec.description
        return table

    def ensure_tables(self) -> None:
        from google.cloud import bigquery

        dataset = bigquery.Dataset(f"{self.project}.{self.dataset}")
        dataset.location = self.location
        self.client.create_dataset(dataset, exists_ok=True)
        for spec in RAW_TABLES.values():
            self.client.create_table(self.bigquery_table(spec), exists_ok=True)

    def load_job_config(self, spec: RawTable) -> Any:
        from google.cloud import bigquery

        return bigquery.LoadJobConfig(
            schema=bq_schema(spec),
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            time_partitioning=bigquery.TimePartitioning(
                type_=bigquery.TimePartitioningType.DAY, field=spec.partition_column
            ),
            clustering_fields=list(spec.cluster_columns),
            ignore_unknown_values=False,
        )

    def write(self, table: str, rows: Sequence[Row]) -> int:
        spec = raw_table(table)
        if not rows:
            return 0
        to_arrow(spec, rows)  # same validation as local: fail before anything is sent
        payload = [{k: _json_ready(v) for k, v in row.items()} for row in rows]
        job = self.client.load_table_from_json(
            payload,
            self.table_id(table),
            job_config=self.load_job_config(spec),
            location=self.location,
        )
        job.result()
        if job.errors:
            raise RawWriteError(f"{table}: BigQuery load failed: {job.errors}")
        return len(rows)


def bq_schema(spec: RawTable) -> list[Any]:
    from google.cloud import bigquery

    return [
        bigquery.SchemaField(
            c.name,
            c.bq_type,
            mode="REQUIRED" if c.required else "NULLABLE",
            description=c.description,
        )
        for c in spec.columns
    ]


def writer_for(settings: Settings) -> RawWriter:
    """The raw writer of the configured deployment."""
    if settings.is_local:
        return ParquetRawWriter(settings.lake_path)
    from google.cloud import bigquery

    client = bigquery.Client(project=settings.gcp_project, location=settings.bq_location)
    return BigQueryRawWriter(
        client, settings.gcp_project, settings.bq_raw_dataset, settings.bq_location
    )


def chunked(rows: Iterable[Row], size: int) -> Iterable[list[Row]]:
    batch: list[Row] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
