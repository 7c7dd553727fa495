"""Where the raw rows go: the local Parquet lake in micro-batches, or BigQuery (Storage Write API).

Both sinks take the `(raw table, row)` pairs of `streaming.beam.transforms`.

Parquet (local): rows are grouped per table with `GroupIntoBatches`, which flushes a batch when
it holds `flush_rows` rows or when its first row has waited `flush_seconds` (a processing-time
timer), and each batch is written by `ParquetRawWriter` (one file per partition touched,
temp file + fsync + rename, so a reader sees all of a file or none of it).

BigQuery (production): one `WriteToBigQuery(method=STORAGE_WRITE_API)` per raw table into the
existing day-partitioned, clustered tables (`BigQueryRawWriter.ensure_tables()` or Terraform
creates them: the Storage Write API cannot create partitioned tables). At-least-once by
default; see `bigquery_write_kwargs`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from platform_core.raw.rows import dead_letter_row
from platform_core.raw.schema import RAW_TABLES, RawTable, raw_table
from streaming.beam.metrics import NAMESPACE as METRICS_NAMESPACE
from streaming.beam.metrics import Count
from streaming.beam.transforms import DEAD_LETTER, PIPELINE_STAGE, utc_now
from streaming.raw.writer import ParquetRawWriter, RawWriteError, RawWriter, to_arrow

TABLES: tuple[str, ...] = tuple(RAW_TABLES)


# --- local: Parquet lake ---------------------------------------------------------------------


def check_row(spec: RawTable, row: dict[str, Any]) -> None:
    """Raise RawWriteError if this one row cannot be written to its table."""
    value = row.get(spec.partition_column)
    if not isinstance(value, date) or isinstance(value, datetime):
        raise RawWriteError(f"{spec.name}: {spec.partition_column} must be a date, got {value!r}")
    to_arrow(spec, [row])


def _payload_of(table: str, row: dict[str, Any]) -> str:
    if table == "events" and isinstance(row.get("payload"), str):
        return row["payload"]
    return json.dumps(row, default=str, sort_keys=True)


def write_rows(
    writer: RawWriter, table: str, rows: Sequence[dict[str, Any]], now: datetime | None = None
) -> tuple[int, int]:
    """Write one batch; rows the raw schema refuses become dead letters. (written, rejected).

    The fast path writes the batch in one call. Only if the writer refuses it (a row that does
    not fit the schema) is the batch checked row by row, so one poison row never blocks the
    others and is never lost.
    """
    if not rows:
        return 0, 0
    try:
        return writer.write(table, rows), 0
    except RawWriteError:
        if table == DEAD_LETTER:
            raise  # nowhere left to put them: fail loudly rather than drop
    spec = raw_table(table)
    now = now or utc_now()
    good: list[dict[str, Any]] = []
    letters: list[dict[str, Any]] = []
    for row in rows:
        try:
            check_row(spec, row)
            good.append(row)
        except RawWriteError as error:
            letters.append(
                dead_letter_row(
                    stage=PIPELINE_STAGE,
                    error=f"raw schema: {error}",
                    payload=_payload_of(table, row),
                    ingested_at=now,
                    source=row.get("source") if table == "events" else None,
                    message_id=row.get("message_id") if table == "events" else None,
                    pubsub_message_id=row.get("ingestion_id") if table == "events" else None,
                )
            )
    written = writer.write(table, good) if good else 0
    if letters:
        writer.write(DEAD_LETTER, letters)
    return written, len(letters)


class WriteParquetBatch(beam.DoFn):
    """(table, rows) -> files in the lake; yields (table, rows written)."""

    def __init__(self, lake_dir: str, writer_factory: Callable[[str], RawWriter] | None = None):
        self.lake_dir = str(lake_dir)
        self.writer_factory = writer_factory
        self.rows_written = Count("rows_written")
        self.rows_rejected = Count("rows_rejected_by_schema")
        self.batches = Count("batches_written")
        self.batch_size = Metrics.distribution(METRICS_NAMESPACE, "batch_rows")
        self.per_table = {t: Count(f"rows_written_{t}") for t in TABLES}

    def setup(self) -> None:
        factory = self.writer_factory or ParquetRawWriter
        self.writer = factory(self.lake_dir)
        self.writer.ensure_tables()

    def process(self, element: tuple[str, Iterable[dict[str, Any]]]) -> Iterator[tuple[str, int]]:
        table, rows = element
        batch = list(rows)
        written, rejected = write_rows(self.writer, table, batch)
        self.rows_written.inc(written)
        self.per_table[table].inc(written)
        if rejected:
            self.rows_rejected.inc(rejected)
            self.per_table[DEAD_LETTER].inc(rejected)
        self.batches.inc()
        self.batch_size.update(len(batch))
        yield table, written


class WriteRawParquet(beam.PTransform):
    """Micro-batches per table, flushed by size or by time, written atomically to the lake."""

    def __init__(
        self,
        lake_dir: str,
        flush_rows: int = 5000,
        flush_seconds: float = 2.0,
        clock: Callable[[], float] | None = None,
        writer_factory: Callable[[str], RawWriter] | None = None,
    ) -> None:
        super().__init__()
        if flush_rows < 1 or flush_seconds <= 0:
            raise ValueError("flush_rows must be >= 1 and flush_seconds > 0")
        self.lake_dir = str(lake_dir)
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self.clock = clock
        self.writer_factory = writer_factory

    def expand(self, rows: beam.PCollection) -> beam.PCollection:
        kwargs = {"clock": self.clock} if self.clock is not None else {}
        return (
            rows
            | "Micro-batch per table"
            >> beam.GroupIntoBatches(
                self.flush_rows, max_buffering_duration_secs=self.flush_seconds, **kwargs
            )
            | "Write Parquet files"
            >> beam.ParDo(WriteParquetBatch(self.lake_dir, self.writer_factory))
        )


# --- production: BigQuery Storage Write API --------------------------------------------------


def bigquery_schema(table: str) -> dict[str, list[dict[str, str]]]:
    spec = raw_table(table)
    return {
        "fields": [
            {"name": c.name, "type": c.bq_type, "mode": "REQUIRED" if c.required else "NULLABLE"}
            for c in spec.columns
        ]
    }


def to_bigquery_row(row: dict[str, Any]) -> dict[str, Any]:
    """The Storage Write API's Python types: TIMESTAMP as Beam Timestamp, DATE as date."""
    from apache_beam.utils.timestamp import Timestamp

    out: dict[str, Any] = {}
    for name, value in row.items():
        if isinstance(value, datetime):
            aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            value = Timestamp.from_utc_datetime(aware)
        out[name] = value
    return out


def bigquery_write_kwargs(
    project: str,
    dataset: str,
    table: str,
    *,
    at_least_once: bool = True,
    triggering_seconds: int = 5,
) -> dict[str, Any]:
    """Arguments of the WriteToBigQuery of one raw table.

    At-least-once (the Storage Write API's default stream) is the default: rows are visible to
    queries within seconds, there is no commit interval to wait for and no per-stream quota to
    manage, and it costs less than exactly-once (which needs application-created streams,
    a triggering frequency and an extra shuffle). Duplicates it may add on a worker retry are
    harmless: Pub/Sub is at-least-once anyway and staging deduplicates events by messageId and
    CDC by primary key + LSN, so results are exact either way.
    """
    kwargs: dict[str, Any] = dict(
        table=f"{project}:{dataset}.{table}",
        schema=bigquery_schema(table),
        method=beam.io.WriteToBigQuery.Method.STORAGE_WRITE_API,
        create_disposition=beam.io.BigQueryDisposition.CREATE_NEVER,
        write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND,
        use_at_least_once=at_least_once,
        type_overrides={"DATE": date},
    )
    if not at_least_once:
        kwargs.update(triggering_frequency=triggering_seconds, with_auto_sharding=True)
    return kwargs


def failed_row_to_dead_letter(table: str, failure: dict[str, Any]) -> dict[str, Any]:
    row = dict(failure.get("failed_row") or {})
    return dead_letter_row(
        stage=PIPELINE_STAGE,
        error=f"bigquery ({table}): {failure.get('error_message') or 'write failed'}",
        payload=_payload_of(table, row),
        ingested_at=utc_now(),
        source=row.get("source") if table == "events" else None,
        message_id=row.get("message_id") if table == "events" else None,
        pubsub_message_id=row.get("ingestion_id") if table == "events" else None,
    )


class WriteRawToBigQuery(beam.PTransform):
    """One Storage Write API write per raw table; rows BigQuery refuses become dead letters."""

    def __init__(
        self,
        project: str,
        dataset: str,
        *,
        at_least_once: bool = True,
        triggering_seconds: int = 5,
        write_factory: Callable[..., beam.PTransform] | None = None,
    ) -> None:
        super().__init__()
        self.project = project
        self.dataset = dataset
        self.at_least_once = at_least_once
        self.triggering_seconds = triggering_seconds
        self.write_factory = write_factory or beam.io.WriteToBigQuery

    def kwargs(self, table: str) -> dict[str, Any]:
        return bigquery_write_kwargs(
            self.project,
            self.dataset,
            table,
            at_least_once=self.at_least_once,
            triggering_seconds=self.triggering_seconds,
        )

    def expand(self, rows: beam.PCollection) -> dict[str, Any]:
        index = {table: i for i, table in enumerate(TABLES)}
        parts = rows | "Split by table" >> beam.Partition(
            lambda element, _n: index[element[0]], len(TABLES)
        )
        failures = []
        results = {}
        for table in TABLES:
            if table == DEAD_LETTER:
                continue
            result = (
                parts[index[table]]
                | f"BigQuery types {table}" >> beam.Map(lambda e: to_bigquery_row(e[1]))
                | f"Write {table}" >> self.write_factory(**self.kwargs(table))
            )
            results[table] = result
            failures.append(
                result.failed_rows_with_errors
                | f"Dead-letter failed {table}"
                >> beam.Map(lambda f, t=table: failed_row_to_dead_letter(t, f))
            )
        dead_letters = (
            [parts[index[DEAD_LETTER]] | "Dead letter rows" >> beam.Map(lambda e: e[1])] + failures
        ) | "All dead letters" >> beam.Flatten()
        results[DEAD_LETTER] = (
            dead_letters
            | f"BigQuery types {DEAD_LETTER}" >> beam.Map(to_bigquery_row)
            | f"Write {DEAD_LETTER}" >> self.write_factory(**self.kwargs(DEAD_LETTER))
        )
        return results


class RecordedBigQueryWrite(beam.PTransform):
    """Stand-in for WriteToBigQuery in dry runs and tests: records its arguments, writes nothing.

    WriteToBigQuery(STORAGE_WRITE_API) is a cross-language transform: applying it starts the
    Java expansion service (downloaded from Maven), so an offline dry run cannot apply it.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.write_kwargs = kwargs

    def expand(self, rows: beam.PCollection) -> Any:
        class _Result:
            failed_rows_with_errors = rows | "No failures" >> beam.FlatMap(lambda _row: [])
            failed_rows = failed_rows_with_errors

        return _Result()
