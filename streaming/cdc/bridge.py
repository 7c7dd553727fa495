"""The CDC bridge: Debezium change events in Kafka → raw CDC rows → a sink (Pub/Sub or raw).

A consumer group member reads the CDC topics (``<prefix>.<schema>.<table>``), turns each
record into the raw CDC row it stands for with `parse_record` (tombstones, heartbeats and
transaction metadata carry no row and are only acknowledged), buffers rows and delivers them
in batches (by size or age) through a `CdcSink`. Offsets are committed only after the sink
acknowledged the batch, so a crash replays, never skips: raw is at-least-once and staging
deduplicates (same pk + LSN).

A record that cannot be turned into a raw row (`bridge_records.read_change`: an envelope the
parser rejects, a table the raw layer does not know, a row that does not fit the raw schema, or
any other exception its content causes) goes to the dead-letter topic ``<prefix>.dlq``
unchanged, with Kafka Connect's error headers (``__connect.errors.topic`` / ``partition`` /
``offset`` / ``exception.class.name`` / ``exception.message`` ...); its offset is committed only
once the dead letter is acknowledged. No record's content can crash (or crash-loop) the bridge.
SIGTERM delivers what is buffered, commits and leaves the group (well within 60 s). Prometheus
metrics: consumer lag (of the partitions this member owns), changes, batch latency, dead
letters, commit-to-raw lag.
"""

# The bridge's parts, each in a module of its own next to this one:
#   bridge_config        BridgeConfig, BridgeStats, BridgeError, DEFAULT_GROUP
#   bridge_batches       the row buffer, batches written by one thread, offsets committed after
#   bridge_records       a Kafka record -> its raw row, or why it is a poison record
#   bridge_dead_letters  the dead-letter topic and Kafka Connect's error headers
#   bridge_metrics       Prometheus metrics
# This module is the consumer loop (`Bridge.run`), group membership, and the command line.

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import start_http_server

from platform_core.settings import Settings, get_settings
from streaming.cdc.bridge_batches import BatchDelivery, Partition
from streaming.cdc.bridge_config import (
    BRIDGE_LOGGER,
    DEFAULT_GROUP,
    BridgeConfig,
    BridgeError,
    BridgeStats,
)
from streaming.cdc.bridge_dead_letters import DeadLetters
from streaming.cdc.bridge_metrics import BridgeMetrics
from streaming.cdc.bridge_records import PoisonRecord, read_change
from streaming.cdc.kafka import producer_config, resolve_bootstrap
from streaming.cdc.sinks import CdcSink, sink_for

__all__ = [
    "DEFAULT_GROUP",
    "Bridge",
    "BridgeConfig",
    "BridgeError",
    "BridgeMetrics",
    "BridgeStats",
    "main",
]

log = logging.getLogger(BRIDGE_LOGGER)

# Commit errors that mean "this member's generation ended": the partitions are being handed out
# again, and whoever owns them next resumes from the last committed offset.
_GROUP_CHANGING = frozenset(
    {
        KafkaError.REBALANCE_IN_PROGRESS,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError._ASSIGNMENT_LOST,
    }
)


class Bridge:
    def __init__(
        self,
        config: BridgeConfig,
        sink: CdcSink,
        metrics: BridgeMetrics | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = config
        self.sink = sink
        self.metrics = metrics
        self.stats = BridgeStats()
        self._clock = clock or (lambda: datetime.now(UTC))
        self._stop = threading.Event()
        self._consumer: Consumer | None = None
        self._dead_letters = DeadLetters(config.dlq, metrics)
        self._batches = BatchDelivery(
            config, sink, self._dead_letters, self._commit, self.stats, metrics, self._clock
        )
        self._failed = False
        self._last_activity = time.monotonic()
        self._assigned = False

    def stop(self) -> None:
        self._stop.set()

    def flush(self) -> None:
        """Deliver everything buffered and in flight, and commit the offsets it came from."""
        self._batches.flush()

    # --- main loop ---------------------------------------------------------------------

    def run(self, max_idle: float | None = None) -> BridgeStats:
        """Consume until stopped (or until nothing arrived for `max_idle` seconds)."""
        self._join_group()
        try:
            while not self._stop.is_set():
                self._consume_once()
                if max_idle is not None and self._idle_for(max_idle):
                    break
            self.flush()
        except BaseException:
            self._failed = True  # leaving the group must not deliver (or commit) anything more
            raise
        finally:
            self._close()
        return self.stats

    def _join_group(self) -> None:
        cfg = self.config
        self._consumer = Consumer(self._consumer_config())
        self._dead_letters.open(
            Producer(producer_config(cfg.bootstrap, **{"client.id": f"{cfg.prefix}-cdc-dlq"}))
        )
        # let a broker that auto-creates topics create them now
        self._dead_letters.look_up(cfg.subscribed)
        self._consumer.subscribe(
            cfg.subscribed,
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        self._last_activity = time.monotonic()

    def _consumer_config(self) -> dict[str, Any]:
        cfg = self.config
        return {
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
            **({"stats_cb": self.metrics.record_lag} if self.metrics else {}),
            **cfg.consumer,
        }

    def _consume_once(self) -> None:
        """Read what arrived (waiting no longer than the oldest buffered row may), finish the
        batch in flight if it is written, and seal the buffer when it is due."""
        cfg = self.config
        batches = self._batches
        assert self._consumer is not None
        wait = (
            0.1
            if batches.oldest is None
            else max(0.0, min(0.1, cfg.max_delay - (time.monotonic() - batches.oldest)))
        )
        messages = self._consumer.consume(
            num_messages=max(1, min(cfg.batch_size - batches.pending_rows, 5000)),
            timeout=wait,
        )
        for message in messages:
            self._handle(message)
        if messages:
            self._last_activity = time.monotonic()
        if batches.inflight_written():
            batches.complete()
        if batches.due():
            batches.seal()

    def _idle_for(self, max_idle: float) -> bool:
        """Everything read is delivered and nothing arrived for `max_idle` seconds."""
        return (
            self._assigned
            and self._batches.inflight is None
            and not self._batches.offsets
            and time.monotonic() - self._last_activity > max_idle
        )

    # --- one record --------------------------------------------------------------------

    def _handle(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            self._consumer_error(message, error)
            return
        self.stats.records += 1
        self._batches.record_read()
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        try:
            change = read_change(
                message.key(),
                message.value(),
                ingested_at=self._clock(),
                topic=topic,
                partition=partition,
                offset=offset,
            )
        except PoisonRecord as poison:
            self._dead_letters.send(message, poison.reason, poison.kind)
            self.stats.dead_letters += 1
        else:
            if change is None:
                self.stats.skipped += 1
            else:
                self._batches.add_row(change.table, change.row)
        self._batches.mark_done(topic, partition, offset)

    def _consumer_error(self, message: Message, error: KafkaError) -> None:
        """What the consumer reported instead of a record: wait, or give up."""
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

    def _commit(self, positions: dict[Partition, int]) -> None:
        assert self._consumer is not None
        if not positions:
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in sorted(positions.items())]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # Rows are delivered but their offsets are not committed: they come again (to this
            # member or to the partition's next owner), duplicates that staging removes.
            if error.args and error.args[0].code() in _GROUP_CHANGING:
                # the group is rebalancing: nothing is lost by carrying on, and exiting would
                # turn every rebalance into a restart (and another rebalance)
                log.warning("offsets not committed while the group changes: %s", error)
                self.stats.uncommitted += 1
                return
            raise BridgeError(f"offset commit failed: {error}") from error
        self.stats.commits += 1
        if self.metrics:
            self.metrics.committed(positions)

    # --- group membership --------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %s", ", ".join(f"{p.topic}[{p.partition}]" for p in partitions))
        self._last_activity = time.monotonic()
        self._assigned = True
        self._batches.regained({(p.topic, p.partition) for p in partitions})
        # A partition without a committed offset starts from the beginning (auto.offset.reset
        # is "error" so that a vanished offset is never silently skipped).
        committed = consumer.committed(partitions, timeout=30)
        start = []
        for tp in committed:
            offset = tp.offset if tp.offset >= 0 else -2  # OFFSET_BEGINNING
            start.append(TopicPartition(tp.topic, tp.partition, offset))
        if self.metrics:
            self.metrics.own((tp.topic, tp.partition, tp.offset) for tp in committed)
        consumer.assign(start)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.metrics:
            self.metrics.disown((p.topic, p.partition) for p in partitions)
        if self._failed:
            return
        log.info("revoked %d partitions: delivering what is buffered first", len(partitions))
        self.flush()

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        log.warning("lost %d partitions", len(lost))
        if self.metrics:
            self.metrics.disown(lost)
        self._batches.drop_lost(lost)

    def _close(self) -> None:
        self._batches.close(self._failed)
        self._dead_letters.close()
        if self._consumer is not None:
            self._consumer.close()  # leaves the group at once
            self._consumer = None
        self.sink.close()


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    args = _parser(settings).parse_args(argv)
    _configure_logging(args.log_level)
    bridge = Bridge(_config(args, settings), sink_for(args.sink, settings), _serve_metrics(args))
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


def _parser(settings: Settings) -> argparse.ArgumentParser:
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
    return parser


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )


def _config(args: argparse.Namespace, settings: Settings) -> BridgeConfig:
    return BridgeConfig(
        bootstrap=resolve_bootstrap(settings, args.bootstrap),
        prefix=args.prefix,
        topics=args.topics,
        group=args.group,
        batch_size=args.batch_size,
        max_delay=args.max_delay,
        session_timeout_ms=args.session_timeout_ms,
    )


def _serve_metrics(args: argparse.Namespace) -> BridgeMetrics | None:
    """The metrics endpoint, when a port is given."""
    if not args.metrics_port:
        return None
    metrics = BridgeMetrics()
    start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    return metrics


if __name__ == "__main__":
    sys.exit(main())
