"""The CDC capture: PostgreSQL's pgoutput replication slot → Debezium change events in Kafka.

The local stand-in for Debezium's PostgreSQL connector (production runs the real one). It

* creates the logical replication slot (pgoutput) if there is none, exporting the snapshot
  the slot starts from, and reads every published table under that snapshot as ``op=r``
  events (``source.snapshot`` "true", the very last one "last");
* then streams the slot with the replication protocol (proto_version 1, the publication),
  emitting one event per inserted/updated/deleted row (``c``/``u``/``d``, with the whole old
  row as ``before`` thanks to REPLICA IDENTITY FULL), a tombstone after each delete, and a
  ``t`` event per truncated table, to ``<prefix>.<schema>.<table>`` keyed by the primary key;
* confirms the slot's flushed LSN only up to the end of the last transaction whose every
  event Kafka acknowledged (idempotent producer, acks=all, delivery callbacks), so a crash at
  any moment replays from there and loses nothing;
* writes heartbeats and, while nothing is in flight, confirms the server's WAL end from its
  keepalives, so an idle (or unpublished-tables-only) database does not pile up WAL.

LSNs: a streamed change carries its own WAL record's LSN (unique, and per row in commit order,
because row locks serialise writers). Snapshot events carry the slot's restart LSN, which is
not above any change the slot will stream, so "latest LSN wins" in staging always prefers a
streamed change over the snapshot row, including changes of transactions that began before
the snapshot and committed after it (their records precede the slot's consistent point).

The replication protocol is driven through psycopg's libpq binding (``psycopg.pq``): COPY BOTH
gives full control over status updates. (psycopg2's replication cursor moves the flushed LSN
forward by itself on keepalives, which could confirm transactions Kafka has not acknowledged.)
"""

# The capture's parts, each in a module of its own next to this one:
#   capture_config       CaptureConfig, CaptureStats, CaptureError, defaults
#   capture_catalog      wal_level and publication checks, published tables and their keys
#   capture_replication  the slot's row and the replication-protocol session (libpq COPY BOTH)
#   capture_snapshot     the initial snapshot (op=r) and the "snapshot complete" state record
#   capture_changes      pgoutput messages -> Debezium change events
#   capture_outbox       the producer, and which transactions Kafka has fully acknowledged
#   capture_metrics      Prometheus metrics
# This module runs them in order (`Capture.run`) and is the command line.

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from confluent_kafka import KafkaError, Producer
from prometheus_client import start_http_server
from psycopg.conninfo import conninfo_to_dict

from platform_core.settings import Settings, get_settings, resolve_source_db_dsn
from streaming.cdc import pgoutput
from streaming.cdc.capture_catalog import PublicationCatalog, TableInfo
from streaming.cdc.capture_changes import ChangeEvents
from streaming.cdc.capture_config import (
    CAPTURE_LOGGER,
    DEFAULT_PUBLICATION,
    DEFAULT_SLOT,
    SESSION_OPTIONS,
    CaptureConfig,
    CaptureError,
    CaptureStats,
)
from streaming.cdc.capture_metrics import CaptureMetrics
from streaming.cdc.capture_outbox import Outbox, TransactionAcks
from streaming.cdc.capture_replication import ReplicationSession, SlotPosition, read_slot
from streaming.cdc.capture_snapshot import InitialSnapshot, state_key
from streaming.cdc.kafka import (
    heartbeat_topic,
    producer_config,
    read_state,
    resolve_bootstrap,
    state_topic,
)

__all__ = [
    "DEFAULT_PUBLICATION",
    "DEFAULT_SLOT",
    "Capture",
    "CaptureConfig",
    "CaptureError",
    "CaptureMetrics",
    "CaptureStats",
    "TableInfo",
    "main",
]

log = logging.getLogger(CAPTURE_LOGGER)

ProducerFactory = Callable[[dict[str, Any]], Producer]


class Capture:
    """One capture process: check the server, load the publication, make sure the slot and
    its snapshot exist, then stream until stopped (`stop`, from any thread)."""

    def __init__(
        self,
        config: CaptureConfig,
        metrics: CaptureMetrics | None = None,
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._producer_factory = producer_factory or Producer
        self.stats = CaptureStats()
        self._stop = threading.Event()
        self.streaming = threading.Event()  # set once the initial snapshot is done and streaming
        self._outbox: Outbox | None = None
        self._acks: TransactionAcks | None = None
        self._meta: psycopg.Connection | None = None
        self._replication: ReplicationSession | None = None
        self._db = conninfo_to_dict(config.dsn).get("dbname") or "postgres"
        self._last_status = 0.0
        self._last_heartbeat = 0.0
        self._confirmed_sent = 0

    @property
    def delivery_error(self) -> KafkaError | None:
        return self._outbox.delivery_error if self._outbox is not None else None

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> CaptureStats:
        cfg = self.config
        producer = self._producer_factory(
            producer_config(cfg.bootstrap, **{"client.id": f"{cfg.prefix}-capture", **cfg.producer})
        )
        outbox = self._outbox = Outbox(producer)
        acks = self._acks = TransactionAcks(outbox)
        meta = self._meta = psycopg.connect(
            cfg.dsn,
            autocommit=True,
            options=SESSION_OPTIONS,
            application_name=f"{cfg.prefix}-cdc-capture-meta",
        )
        try:
            catalog = PublicationCatalog(meta, cfg.publication)
            catalog.check_server()
            self._db = catalog.current_database()
            catalog.load()
            outbox.ensure_topics(catalog.topics(cfg.prefix))
            self._prepare_slot(meta, catalog, outbox, acks)
            if not self._stop.is_set():
                self._stream(catalog, outbox, acks)
        finally:
            self._shutdown()
        return self.stats

    # --- slot and snapshot -------------------------------------------------------------

    def _prepare_slot(
        self,
        meta: psycopg.Connection,
        catalog: PublicationCatalog,
        outbox: Outbox,
        acks: TransactionAcks,
    ) -> None:
        """Make sure the slot exists and the initial snapshot is in Kafka."""
        cfg = self.config
        slot = self._wait_for_slot(meta)
        self._replication = ReplicationSession.connect(cfg.dsn, cfg.prefix)
        state = read_state(cfg.bootstrap, state_topic(cfg.prefix)).get(
            state_key(self._db, cfg.slot)
        )
        snapshot = InitialSnapshot(
            cfg, self._db, catalog.tables, outbox, self.stats, self.metrics, self._stop
        )
        if slot is None:
            consistent, exported = self._replication.create_slot(cfg.slot)
            created = read_slot(meta, cfg.slot)
            assert created is not None
            acks.confirmed = consistent
            log.info("created slot %s at %s", cfg.slot, pgoutput.format_lsn(consistent))
            if cfg.snapshot:
                snapshot.take(created.restart_lsn, exported)
            snapshot.mark_complete(created.restart_lsn, consistent)
        else:
            acks.confirmed = slot.confirmed_lsn
            if state is None and cfg.snapshot:
                # The slot outlived an unfinished snapshot (or the Kafka state was lost): read
                # the tables again now. The slot never moved past its consistent point, so
                # every change since then streams after this and wins over these rows.
                log.info("slot %s exists without a finished snapshot: snapshotting again", cfg.slot)
                snapshot.take(slot.restart_lsn, None)
                snapshot.mark_complete(slot.restart_lsn, slot.confirmed_lsn)
        self.stats.confirmed_lsn = acks.confirmed

    def _wait_for_slot(self, meta: psycopg.Connection) -> SlotPosition | None:
        """The slot (None if there is none) once no previous capture's walsender holds it."""
        deadline = time.monotonic() + self.config.slot_wait
        slot = read_slot(meta, self.config.slot)
        while slot is not None and slot.active_pid is not None:
            if time.monotonic() > deadline or self._stop.is_set():
                raise CaptureError(f"slot {self.config.slot!r} is in use by pid {slot.active_pid}")
            time.sleep(0.5)
            slot = read_slot(meta, self.config.slot)
        return slot

    # --- streaming ---------------------------------------------------------------------

    def _stream(self, catalog: PublicationCatalog, outbox: Outbox, acks: TransactionAcks) -> None:
        """Stream the slot from its confirmed position until stopped: frames to events, Kafka's
        acks to the confirmed LSN, heartbeats and status updates on time."""
        cfg = self.config
        replication = self._replication
        assert replication is not None
        changes = ChangeEvents(
            cfg.prefix, self._db, catalog, outbox, acks, self.stats, self.metrics
        )
        replication.start(cfg.slot, cfg.publication, 0)  # 0/0: from the confirmed position
        self.streaming.set()
        log.info("streaming slot %s from %s", cfg.slot, pgoutput.format_lsn(acks.confirmed))
        while not self._stop.is_set():
            outbox.raise_if_failed()
            got = 0
            for frame in replication.frames(limit=2000):
                self._on_frame(frame, changes, acks)
                got += 1
            outbox.poll()
            acks.advance()
            self._tick(outbox, acks)
            if got == 0:
                replication.wait_readable(0.05)

    def _on_frame(self, frame: bytes, changes: ChangeEvents, acks: TransactionAcks) -> None:
        parsed = pgoutput.decode_frame(frame)
        if isinstance(parsed, pgoutput.Keepalive):
            self._received(parsed.wal_end)
            acks.caught_up_to(parsed.wal_end)
            if parsed.reply_requested:
                self._send_status()
            return
        self._received(parsed.data_start)
        changes.handle(pgoutput.decode(parsed.payload), parsed.data_start)

    def _received(self, lsn: int) -> None:
        if lsn > self.stats.received_lsn:
            self.stats.received_lsn = lsn

    def _tick(self, outbox: Outbox, acks: TransactionAcks) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= self.config.heartbeat_interval:
            self._last_heartbeat = now
            self._heartbeat(outbox)
        if now - self._last_status >= self.config.status_interval or (
            acks.confirmed > self._confirmed_sent and now - self._last_status >= 0.2
        ):
            # ask for a keepalive while idle: its WAL end lets the slot move on
            self._send_status(reply=not acks.inflight)

    def _heartbeat(self, outbox: Outbox) -> None:
        cfg = self.config
        key = json.dumps({"serverName": cfg.prefix}).encode()
        value = json.dumps({"ts_ms": int(time.time() * 1000)}).encode()
        outbox.produce(heartbeat_topic(cfg.prefix), key, value)
        self.stats.heartbeats += 1

    def _send_status(self, reply: bool = False) -> None:
        """Confirm to the slot everything Kafka has acknowledged."""
        replication, acks = self._replication, self._acks
        assert replication is not None and acks is not None
        confirmed = acks.confirmed
        replication.send_status(max(self.stats.received_lsn, confirmed), confirmed, reply)
        self._last_status = time.monotonic()
        self._confirmed_sent = confirmed
        self.stats.confirmed_lsn = confirmed
        if self.metrics:
            self.metrics.confirmed_lsn.set(confirmed)
            self.metrics.inflight.set(acks.inflight)

    # --- shutdown ----------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Give Kafka a last chance to acknowledge, confirm what it did, close connections."""
        if self._outbox is not None and self._acks is not None:
            self._outbox.flush(30)
            self._acks.advance()
        if self._replication is not None:
            try:
                if (
                    self.delivery_error is None
                    and self._acks is not None
                    and self._acks.confirmed
                    and self.streaming.is_set()
                    and self._replication.ok
                ):
                    self._send_status()
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.warning("could not send the final status update", exc_info=True)
            self._replication.close()
            self._replication = None
        if self._meta is not None:
            self._meta.close()
            self._meta = None


# --- command line --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    settings = get_settings()
    args = _parser(settings).parse_args(argv)
    _configure_logging(args.log_level)
    capture = Capture(_config(args, settings), _serve_metrics(args))
    signal.signal(signal.SIGTERM, lambda *_: capture.stop())
    signal.signal(signal.SIGINT, lambda *_: capture.stop())
    try:
        stats = capture.run()
    except CaptureError as error:
        log.error("%s", error)
        return 1
    log.info(
        "stopped: %d snapshot rows, %d changes in %d transactions, confirmed %s",
        stats.snapshot_rows,
        stats.changes,
        stats.transactions,
        pgoutput.format_lsn(stats.confirmed_lsn),
    )
    return 0


def _parser(settings: Settings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streaming.cdc.capture",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dsn", help="source database (default: SOURCE_DB_DSN or the local one)")
    parser.add_argument(
        "--bootstrap", help="Kafka (default: KAFKA_BOOTSTRAP_SERVERS or the local one)"
    )
    parser.add_argument("--prefix", default=settings.cdc_topic_prefix)
    parser.add_argument("--slot", default=DEFAULT_SLOT)
    parser.add_argument("--publication", default=DEFAULT_PUBLICATION)
    parser.add_argument(
        "--no-snapshot", action="store_true", help="stream only, no initial snapshot"
    )
    parser.add_argument("--heartbeat-interval", type=float, default=5.0)
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


def _config(args: argparse.Namespace, settings: Settings) -> CaptureConfig:
    return CaptureConfig(
        dsn=resolve_source_db_dsn(settings, args.dsn),
        bootstrap=resolve_bootstrap(settings, args.bootstrap),
        prefix=args.prefix,
        slot=args.slot,
        publication=args.publication,
        snapshot=not args.no_snapshot,
        heartbeat_interval=args.heartbeat_interval,
    )


def _serve_metrics(args: argparse.Namespace) -> CaptureMetrics | None:
    """The metrics endpoint, when a port is given."""
    if not args.metrics_port:
        return None
    metrics = CaptureMetrics()
    start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    return metrics


if __name__ == "__main__":
    sys.exit(main())
