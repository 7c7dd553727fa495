"""Where the CDC bridge delivers raw CDC rows: one small interface, two destinations.

`write(batch)` returns only once the destination has acknowledged every row of the batch (the
bridge commits Kafka offsets after that); it raises if anything was not accepted.

* `RawWriterSink`: straight into the raw layer through the raw writer (Parquet files written
  to a temp name, fsynced and renamed locally; BigQuery load jobs in production).
* `PubSubSink`: one message per row to the `cdc` Pub/Sub topic for the Beam job, in the format
  of notes/interfaces.md (data = `encode_raw_row`, attributes table/op/lsn); waits for every
  publish future.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from platform_core.raw.codec import encode_raw_row
from platform_core.settings import Settings
from streaming.raw.writer import RawWriter, writer_for

Batch = Mapping[str, Sequence[dict[str, Any]]]  # raw table name -> rows


class CdcSink(Protocol):
    name: str

    def write(self, batch: Batch) -> int:
        """Deliver every row durably; return how many. Raise if any was not accepted."""

    def close(self) -> None:
        """Release clients (after the last write)."""


class RawWriterSink:
    """Tables of a batch are written in parallel (Parquet encoding and fsync release the GIL)."""

    name = "raw"

    def __init__(self, writer: RawWriter, parallel: int = 4) -> None:
        self.writer = writer
        writer.ensure_tables()
        self._pool = (
            ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="raw-sink")
            if parallel > 1
            else None
        )

    def write(self, batch: Batch) -> int:
        work = [(table, list(rows)) for table, rows in batch.items() if rows]
        if self._pool is None or len(work) < 2:
            return sum(self.writer.write(table, rows) for table, rows in work)
        futures = [self._pool.submit(self.writer.write, table, rows) for table, rows in work]
        return sum(f.result() for f in futures)  # raises the first failure

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class PubSubSink:
    name = "pubsub"

    def __init__(
        self, project: str, topic: str, publisher: Any | None = None, timeout: float = 60.0
    ) -> None:
        from google.cloud import pubsub_v1

        self.publisher = publisher or pubsub_v1.PublisherClient(
            batch_settings=pubsub_v1.types.BatchSettings(
                max_messages=1000, max_bytes=4 * 1024 * 1024, max_latency=0.05
            ),
        )
        self.topic_path = self.publisher.topic_path(project, topic)
        self.timeout = timeout

    def ensure_topic(self) -> None:
        """Create the topic when missing (the local emulator starts empty)."""
        from google.api_core.exceptions import AlreadyExists

        with contextlib.suppress(AlreadyExists):
            self.publisher.create_topic(name=self.topic_path)

    def write(self, batch: Batch) -> int:
        futures = []
        for table, rows in batch.items():
            for row in rows:
                futures.append(
                    self.publisher.publish(
                        self.topic_path,
                        encode_raw_row(table, row),
                        table=table,
                        op=str(row["op"]),
                        lsn=str(row["lsn"]),
                    )
                )
        for future in futures:
            future.result(timeout=self.timeout)  # raises when the publish failed
        return len(futures)

    def close(self) -> None:
        stop = getattr(self.publisher, "stop", None)
        if stop is not None:
            stop()


def sink_for(kind: str, settings: Settings) -> CdcSink:
    """The sink named on the bridge's command line, configured from the settings."""
    if kind == "raw":
        return RawWriterSink(writer_for(settings))
    if kind == "pubsub":
        sink = PubSubSink(settings.gcp_project, settings.pubsub_cdc_topic)
        if settings.is_local:
            sink.ensure_topic()
        return sink
    raise ValueError(f"unknown sink {kind!r}: raw or pubsub")
