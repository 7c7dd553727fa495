"""The bridge's buffer and its batches: rows read from Kafka wait in a buffer until it is full
or its oldest row is `max_delay` old; then the buffer is sealed into a batch that one writer
thread hands to the sink while the next batch is read. A batch's offsets are committed only
after the sink acknowledged its rows (a failed write raises, and nothing gets committed), so a
crash replays and never skips.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streaming.cdc.bridge_config import BRIDGE_LOGGER, BridgeConfig, BridgeStats
from streaming.cdc.bridge_dead_letters import DeadLetters
from streaming.cdc.bridge_metrics import BridgeMetrics
from streaming.cdc.sinks import CdcSink

log = logging.getLogger(BRIDGE_LOGGER)

Partition = tuple[str, int]  # (topic, partition)
Rows = dict[str, list[dict[str, Any]]]  # raw table -> rows


@dataclass
class Batch:
    rows: Rows
    offsets: dict[Partition, int]
    count: int
    oldest: float
    submitted: float
    future: Future | None = None


class BatchDelivery:
    def __init__(
        self,
        config: BridgeConfig,
        sink: CdcSink,
        dead_letters: DeadLetters,
        commit: Callable[[dict[Partition, int]], None],
        stats: BridgeStats,
        metrics: BridgeMetrics | None,
        clock: Callable[[], datetime],
    ) -> None:
        self.config = config
        self.sink = sink
        self._dead_letters = dead_letters
        self._commit = commit
        self.stats = stats
        self.metrics = metrics
        self._clock = clock
        self._rows: Rows = defaultdict(list)
        self.pending_rows = 0
        self.offsets: dict[Partition, int] = {}  # next offset to commit
        self.oldest: float | None = None  # when the oldest buffered record was read
        self.inflight: Batch | None = None
        self._lost: set[Partition] = set()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdc-bridge-write")

    # --- the buffer --------------------------------------------------------------------

    def record_read(self) -> None:
        if self.oldest is None:
            self.oldest = time.monotonic()

    def add_row(self, table: str, row: dict[str, Any]) -> None:
        self._rows[table].append(row)
        self.pending_rows += 1

    def mark_done(self, topic: str, partition: int, offset: int) -> None:
        """The record at `offset` is buffered, dead-lettered or skipped."""
        self.offsets[(topic, partition)] = offset + 1

    def due(self) -> bool:
        if self.pending_rows >= self.config.batch_size:
            return True
        return self.oldest is not None and time.monotonic() - self.oldest >= self.config.max_delay

    def inflight_written(self) -> bool:
        """The batch in flight is in the sink (a batch without rows, of tombstones, markers
        or dead letters only, has nothing to write: only its offsets to commit)."""
        batch = self.inflight
        return batch is not None and (batch.future is None or batch.future.done())

    # --- batches -----------------------------------------------------------------------

    def flush(self) -> None:
        """Deliver everything buffered and in flight, and commit the offsets it came from."""
        if self.inflight is not None:
            self.complete()
        if self.offsets:
            self.seal()
            self.complete()
        self.oldest = None

    def seal(self) -> None:
        """Hand the buffer to the writer thread as one batch (waiting for the previous one:
        one batch is written while the next is read). Offsets are committed in `complete`."""
        if self.inflight is not None:
            self.complete()
        if not self.offsets:
            self.oldest = None
            return
        self._dead_letters.wait_acknowledged()
        rows = self._rows
        count = self.pending_rows
        if count:
            self._stamp_ingestion(rows)
        batch = Batch(
            rows, dict(self.offsets), count, self.oldest or time.monotonic(), time.monotonic()
        )
        batch.future = self._writer.submit(self.sink.write, rows) if count else None
        self.inflight = batch
        self._rows = defaultdict(list)
        self.offsets = {}
        self.pending_rows = 0
        self.oldest = None

    def complete(self) -> None:
        """Wait for the in-flight batch's write, then commit its offsets."""
        batch = self.inflight
        assert batch is not None
        self.inflight = None
        if batch.future is not None:
            batch.future.result()  # a failed write raises here: nothing gets committed
        written = time.monotonic()
        self._commit({k: v for k, v in batch.offsets.items() if k not in self._lost})
        done = time.monotonic()
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "batch: %d rows; buffered %.3fs, write %.3fs, commit %.3fs",
                batch.count,
                batch.submitted - batch.oldest,
                written - batch.submitted,
                done - written,
            )
        self.stats.batches += 1
        self.stats.rows += batch.count
        if self.metrics:
            self.metrics.record_batch(batch.rows, batch.count, done - batch.submitted, time.time())

    def _stamp_ingestion(self, rows: Rows) -> None:
        now = self._clock().astimezone(UTC).replace(tzinfo=None)  # readable from about now
        today = now.date()
        for table_rows in rows.values():
            for row in table_rows:
                row["ingested_at"] = now
                row["ingest_date"] = today

    # --- partitions moving between group members ----------------------------------------

    def regained(self, partitions: set[Partition]) -> None:
        self._lost -= partitions

    def drop_lost(self, lost: set[Partition]) -> None:
        """Another member may own these already: drop what we buffered from them (the new
        owner reads it again from the last committed offset)."""
        self._lost |= lost  # the batch in flight is written but not committed for these
        self._rows = defaultdict(
            list,
            {
                table: [r for r in rows if (r["kafka_topic"], r["kafka_partition"]) not in lost]
                for table, rows in self._rows.items()
            },
        )
        self.pending_rows = sum(len(r) for r in self._rows.values())
        for key in lost:
            self.offsets.pop(key, None)

    def close(self, failed: bool) -> None:
        """Stop the writer thread; after a failure, without writing what is queued."""
        self._writer.shutdown(wait=not failed, cancel_futures=failed)
