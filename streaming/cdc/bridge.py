"""The CDC bridge: Debezium change events in Kafka → raw CDC rows → a sink (Pub/Sub or raw).

A consumer group member reads the CDC topics (``<prefix>.<schema>.<table>``), turns each
record into the raw CDC row it stands for with `parse_record` (tombstones, heartbeats and
transaction metadata carry no row and are only acknowledged), buffers rows and delivers them
in batches (by size or age) through a `CdcSink`. Offsets are committed only after the sink
acknowledged the batch, so a crash replays, never skips: raw is at-least-once and staging
deduplicates (same pk + LSN).

A record that cannot be read (`DebeziumParseError`, or a table the raw layer does not know)
goes to the dead-letter topic ``<prefix>.dlq`` unchanged, with Kafka Connect's error headers
(``__connect.errors.topic`` / ``partition`` / ``offset`` / ``exception.message`` ...); its offset
is committed only once the dead letter is acknowledged. SIGTERM delivers what is buffered,
commits and leaves the group (well within 60 s). Prometheus metrics: consumer lag, changes,
batch latency, dead letters, commit-to-raw lag.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from platform_core.raw.schema import RAW_TABLES
from streaming.cdc.debezium import DebeziumParseError, parse_record
from streaming.cdc.kafka import cdc_topics, dead_letter_topic, producer_config
from streaming.cdc.sinks import CdcSink

log = logging.getLogger("streaming.cdc.bridge")

DEFAULT_GROUP = "cdc-bridge"


class BridgeError(RuntimeError):
    """The bridge cannot go on without risking loss (it exits; a restart resumes)."""


@dataclass
class BridgeConfig:
    bootstrap: str
    prefix: str = "shop"
    topics: list[str] | None = None  # default: the shop's four tables
    group: str = DEFAULT_GROUP
    batch_size: int = 5000
    max_delay: float = 1.0  # seconds a row may wait in the buffer
    session_timeout_ms: int = 10000
    dead_letter_topic: str | None = None
    consumer: dict[str, Any] = field(default_factory=dict)

    @property
    def subscribed(self) -> list[str]:
        return self.topics or cdc_topics(self.prefix)

    @property
    def dlq(self) -> str:
        return self.dead_letter_topic or dead_letter_topic(self.prefix)


@dataclass
class BridgeStats:
    records: int = 0
    rows: int = 0
    skipped: int = 0  # tombstones, heartbeats, transaction markers
    dead_letters: int = 0
    batches: int = 0
    commits: int = 0


class BridgeMetrics:
    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = registry or CollectorRegistry()
        self.lag = Gauge(
            "cdc_bridge_consumer_lag",
            "Records behind the partition's end",
            ["topic", "partition"],
            registry=self.registry,
        )
        self.changes = Counter(
            "cdc_bridge_changes", "Raw CDC rows delivered", ["table", "op"], registry=self.registry
        )
        self.dead_letters = Counter(
            "cdc_bridge_dead_letters",
            "Records sent to the dead-letter topic",
            ["topic"],
            registry=self.registry,
        )
        self.batch_seconds = Histogram(
            "cdc_bridge_batch_seconds",
            "Sink write + offset commit time per batch",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "cdc_bridge_batch_rows",
            "Rows per batch",
            buckets=(1, 10, 100, 500, 1000, 5000, 10000, 50000),
            registry=self.registry,
        )
        self.commit_lag = Histogram(
            "cdc_bridge_source_to_raw_seconds",
            "Source commit to raw row written",
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )


def _dead_letter_headers(message: Message, error: str) -> list[tuple[str, bytes]]:
    return [
        ("__connect.errors.topic", message.topic().encode()),
        ("__connect.errors.partition", str(message.partition()).encode()),
        ("__connect.errors.offset", str(message.offset()).encode()),
        ("__connect.errors.stage", b"VALUE_CONVERTER"),
        ("__connect.errors.class.name", b"streaming.cdc.bridge"),
        ("__connect.errors.exception.class.name", b"DebeziumParseError"),
        ("__connect.errors.exception.message", error[:2000].encode()),
    ]


@dataclass
class _Batch:
    rows: dict[str, list[dict[str, Any]]]
    offsets: dict[tuple[str, int], int]
    count: int
    oldest: float
    submitted: float
    future: Future | None = None


class Bridge:
    def __init__(
        self,
        config: BridgeConfig,
        sink: CdcSink,
        metrics: BridgeMetrics | None = None,
        clock: Any = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.metrics = metrics
        self.stats = BridgeStats()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()
        self._rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._pending_rows = 0
        self._offsets: dict[tuple[str, int], int] = {}  # next offset to commit
        self._oldest: float | None = None
        self._dlq_error: KafkaError | None = None
        self._dlq_pending = 0
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cdc-bridge-write")
        self._inflight: _Batch | None = None
        self._lost: set[tuple[str, int]] = set()
        self._failed = False
        self._last_activity = time.monotonic()
        self._assigned = False

    def stop(self) -> None:
        self._stop.set()

    # --- main loop ---------------------------------------------------------------------

    def run(self, max_idle: float | None = None) -> BridgeStats:
        """Consume until stopped (or until nothing arrived for `max_idle` seconds)."""
        cfg = self.config
        consumer_conf = {
            "bootstrap.servers": cfg.bootstrap,
            "group.id": cfg.group,
            "client.id": f"{cfg.prefix}-cdc-bridge",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # a committed offset that no longer exists is data loss: fail, never skip
            "auto.offset.reset": "error",
            "session.timeout.ms": cfg.session_timeout_ms,
            "heartbeat.interval.ms": max(500, cfg.session_timeout_ms // 5),
            "allow.auto.create.topics": True,
            "fetch.wait.max.ms": 100,
            "topic.metadata.refresh.interval.ms": 10000,  # notice new topics soon
            "statistics.interval.ms": 5000 if self.metrics else 0,
            **({"stats_cb": self._stats} if self.metrics else {}),
            **cfg.consumer,
        }
        self._consumer = Consumer(consumer_conf)
        self._dlq = Producer(
            producer_config(cfg.bootstrap, **{"client.id": f"{cfg.prefix}-cdc-dlq"})
        )
        for topic in cfg.subscribed:  # let a broker that auto-creates topics create them now
            try:
                self._dlq.list_topics(topic, timeout=10)
            except KafkaException as error:
                log.warning("could not look up %s: %s", topic, error)
        self._consumer.subscribe(
            cfg.subscribed,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._last_activity = time.monotonic()
        try:
            while not self._stop.is_set():
                wait = (
                    0.1
                    if self._oldest is None
                    else max(0.0, min(0.1, cfg.max_delay - (time.monotonic() - self._oldest)))
                )
                messages = self._consumer.consume(
                    num_messages=max(1, min(cfg.batch_size - self._pending_rows, 5000)),
                    timeout=wait,
                )
                for message in messages:
                    self._handle(message)
                if messages:
                    self._last_activity = time.monotonic()
                if self._inflight is not None and self._inflight.future.done():
                    self._complete()
                if self._due():
                    self._seal()
                if (
                    max_idle is not None
                    and self._assigned
                    and self._inflight is None
                    and not self._offsets
                    and time.monotonic() - self._last_activity > max_idle
                ):
                    break
            self.flush()
        except BaseException:
            self._failed = True  # leaving the group must not deliver (or commit) anything more
            raise
        finally:
            self._close()
        return self.stats

    def _due(self) -> bool:
        if self._pending_rows >= self.config.batch_size:
            return True
        return self._oldest is not None and time.monotonic() - self._oldest >= self.config.max_delay

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            if error.code() in (KafkaError.OFFSET_OUT_OF_RANGE, KafkaError._AUTO_OFFSET_RESET):
                raise BridgeError(
                    f"{message.topic()} [{message.partition()}]: the committed offset no longer "
                    f"exists in Kafka (retention dropped unread records): {error}"
                )
            if error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                # a table without changes yet: its topic appears with its first event
                log.info("waiting for topic: %s", error.str())
                return
            if error.fatal() or not error.retriable():
                raise BridgeError(f"Kafka consumer error: {error}")
            log.warning("consumer: %s", error)
            return
        self.stats.records += 1
        if self._oldest is None:
            self._oldest = time.monotonic()
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        try:
            record = parse_record(message.key(), message.value())
            if record is not None and f"cdc_{record.table}" not in RAW_TABLES:
                raise DebeziumParseError(f"no raw table for source table {record.table!r}")
        except DebeziumParseError as parse_error:
            self._dead_letter(message, str(parse_error))
        else:
            if record is None:
                self.stats.skipped += 1
            else:
                row = record.to_raw_row(
                    ingested_at=self._clock(),
                    kafka_topic=topic,
                    kafka_partition=partition,
                    kafka_offset=offset,
                )
                self._rows[f"cdc_{record.table}"].append(row)
                self._pending_rows += 1
        self._offsets[(topic, partition)] = offset + 1

    def _dead_letter(self, message: Message, error: str) -> None:
        assert self._dlq is not None
        log.warning(
            "dead letter %s [%d] @%d: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            error,
        )
        self._dlq_pending += 1
        self._dlq.produce(
            self.config.dlq,
            key=message.key(),
            value=message.value(),
            headers=_dead_letter_headers(message, error),
            on_delivery=self._dlq_delivered,
        )
        self._dlq.poll(0)
        self.stats.dead_letters += 1
        if self.metrics:
            self.metrics.dead_letters.labels(message.topic()).inc()

    def _dlq_delivered(self, err: KafkaError | None, _message: Any) -> None:
        if err is not None:
            self._dlq_error = err
        else:
            self._dlq_pending -= 1

    # --- delivery ----------------------------------------------------------------------

    def flush(self) -> None:
        """Deliver everything buffered and in flight, and commit the offsets it came from."""
        if self._inflight is not None:
            self._complete()
        if self._offsets:
            self._seal()
            self._complete()
        self._oldest = None

    def _seal(self) -> None:
        """Hand the buffer to the writer thread as one batch (waiting for the previous one:
        one batch is written while the next is read). Offsets are committed in `_complete`."""
        if self._inflight is not None:
            self._complete()
        if not self._offsets:
            self._oldest = None
            return
        if self._dlq_pending:
            assert self._dlq is not None
            self._dlq.flush(60)
            if self._dlq_pending or self._dlq_error is not None:
                raise BridgeError(f"dead-letter topic did not acknowledge: {self._dlq_error}")
        rows = self._rows
        count = self._pending_rows
        if count:
            now = self._clock().astimezone(UTC).replace(tzinfo=None)  # readable from about now
            today = now.date()
            for table_rows in rows.values():
                for row in table_rows:
                    row["ingested_at"] = now
                    row["ingest_date"] = today
        batch = _Batch(
            rows, dict(self._offsets), count, self._oldest or time.monotonic(), time.monotonic()
        )
        batch.future = self._writer.submit(self.sink.write, rows) if count else None
        self._inflight = batch
        self._rows = defaultdict(list)
        self._offsets = {}
        self._pending_rows = 0
        self._oldest = None

    def _complete(self) -> None:
        """Wait for the in-flight batch's write, then commit its offsets."""
        batch = self._inflight
        assert batch is not None
        self._inflight = None
        if batch.future is not None:
            batch.future.result()  # a failed write raises here: nothing gets committed
        written = time.monotonic()
        offsets = {k: v for k, v in batch.offsets.items() if k not in self._lost}
        self._commit(offsets)
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
            self.metrics.batch_seconds.observe(done - batch.submitted)
            self.metrics.batch_rows.observe(batch.count)
            now = time.time()
            for table, table_rows in batch.rows.items():
                for row in table_rows:
                    self.metrics.changes.labels(table, row["op"]).inc()
                    if row["snapshot"] in (None, "false"):
                        source = row["source_ts"].replace(tzinfo=UTC).timestamp()
                        self.metrics.commit_lag.observe(max(0.0, now - source))

    def _commit(self, positions: dict[tuple[str, int], int]) -> None:
        assert self._consumer is not None
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(positions.items())]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # Rows are delivered but their offsets are not committed: they come again after
            # a restart (duplicates that staging removes). Never carry on past this silently.
            raise BridgeError(f"offset commit failed: {error}") from error
        self.stats.commits += 1

    # --- group membership --------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self._last_activity = time.monotonic()
        self._assigned = True
        self._lost -= {(p.topic, p.partition) for p in partitions}
        # A partition without a committed offset starts from the beginning (auto.offset.reset
        # is "error" so that a vanished offset is never silently skipped).
        committed = consumer.committed(partitions, timeout=30)
        start = []
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else -2  # OFFSET_BEGINNING
            start.append(TopicPartition(tp.topic, tp.partition, offset))
        consumer.assign(start)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._failed:
            return
        log.info("revoked %d partitions: delivering what is buffered first", len(partitions))
        self.flush()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Another member may own these already: drop what we buffered from them (it will be
        # read again by the new owner from the last committed offset).
        lost = {(p.topic, p.partition) for p in partitions}
        log.warning("lost %d partitions", len(lost))
        self._lost |= lost  # the batch in flight is written but not committed for these
        self._rows = defaultdict(
            list,
            {
                table: [r for r in rows if (r["kafka_topic"], r["kafka_partition"]) not in lost]
                for table, rows in self._rows.items()
            },
        )
        self._pending_rows = sum(len(r) for r in self._rows.values())
        for key in lost:
            self._offsets.pop(key, None)

    def _stats(self, payload: str) -> None:
        if not self.metrics:
            return
        try:
            stats = json.loads(payload)
        except ValueError:
            return
        for topic, info in (stats.get("topics") or {}).items():
            for partition, pinfo in (info.get("partitions") or {}).items():
                if partition == "-1" or pinfo.get("consumer_lag", -1) < 0:
                    continue
                self.metrics.lag.labels(topic, partition).set(pinfo["consumer_lag"])

    def _close(self) -> None:
        self._writer.shutdown(wait=not self._failed, cancel_futures=self._failed)
        if self._dlq is not None:
            self._dlq.flush(30)
        if self._consumer is not None:
            self._consumer.close()  # leaves the group at once
            self._consumer = None
        self.sink.close()


def main(argv: list[str] | None = None) -> int:
    from platform_core.settings import get_settings
    from streaming.cdc.kafka import resolve_bootstrap
    from streaming.cdc.sinks import sink_for

    settings = get_settings()
    parser = argparse.ArgumentParser(
        prog="python -m streaming.cdc.bridge",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sink", choices=("raw", "pubsub"), default="raw")
    parser.add_argument(
        "--bootstrap", help="Kafka (default: KAFKA_BOOTSTRAP_SERVERS or the local one)"
    )
    parser.add_argument("--prefix", default=settings.cdc_topic_prefix)
    parser.add_argument(
        "--topic",
        action="append",
        dest="topics",
        help="CDC topic to read (repeatable; default: the four shop tables)",
    )
    parser.add_argument("--group", default=DEFAULT_GROUP)
    parser.add_argument("--batch-size", type=int, default=5000)
    parser.add_argument("--max-delay", type=float, default=1.0, help="seconds a row may wait")
    parser.add_argument("--session-timeout-ms", type=int, default=10000)
    parser.add_argument(
        "--metrics-port", type=int, default=0, help="Prometheus metrics port (0: off)"
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        help="address of the metrics endpoint (0.0.0.0 in a pod, for Prometheus)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = BridgeConfig(
        bootstrap=resolve_bootstrap(settings, args.bootstrap),
        prefix=args.prefix,
        topics=args.topics,
        group=args.group,
        batch_size=args.batch_size,
        max_delay=args.max_delay,
        session_timeout_ms=args.session_timeout_ms,
    )
    metrics = None
    if args.metrics_port:
        from prometheus_client import start_http_server

        metrics = BridgeMetrics()
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    bridge = Bridge(config, sink_for(args.sink, settings), metrics)
    signal.signal(signal.SIGTERM, lambda *_: bridge.stop())
    signal.signal(signal.SIGINT, lambda *_: bridge.stop())
    try:
        stats = bridge.run()
    except BridgeError as error:
        log.error("%s", error)
        return 1
    log.info(
        "stopped: %d records, %d rows in %d batches, %d dead letters",
        stats.records,
        stats.rows,
        stats.batches,
        stats.dead_letters,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
