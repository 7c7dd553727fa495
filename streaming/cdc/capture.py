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

from __future__ import annotations

import argparse
import json
import logging
import select
import signal
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg
from confluent_kafka import KafkaError, KafkaException, Producer
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from platform_core.settings import resolve_source_db_dsn
from streaming.cdc import pgoutput
from streaming.cdc.debezium import build_envelope, topic_for
from streaming.cdc.kafka import heartbeat_topic, producer_config, read_state, state_topic

log = logging.getLogger("streaming.cdc.capture")

DEFAULT_SLOT = "shop_cdc"
DEFAULT_PUBLICATION = "shop_cdc"
SESSION_OPTIONS = "-c timezone=UTC -c datestyle=ISO,YMD -c extra_float_digits=3"


class CaptureError(RuntimeError):
    """The capture cannot go on safely (it exits; a restart resumes from the slot)."""


@dataclass
class CaptureConfig:
    dsn: str
    bootstrap: str
    prefix: str = "shop"
    slot: str = DEFAULT_SLOT
    publication: str = DEFAULT_PUBLICATION
    snapshot: bool = True  # initial snapshot when the slot is new (Debezium snapshot.mode=initial)
    heartbeat_interval: float = 5.0
    status_interval: float = 1.0
    slot_wait: float = 60.0  # how long to wait for a previous capture's walsender to let go
    snapshot_fetch: int = 5000
    producer: dict[str, Any] = field(default_factory=dict)


@dataclass
class CaptureStats:
    snapshot_rows: int = 0
    changes: int = 0
    transactions: int = 0
    heartbeats: int = 0
    confirmed_lsn: int = 0
    received_lsn: int = 0
    last_commit: datetime | None = None
    by_op: dict[str, int] = field(default_factory=dict)


class _Txn:
    """One source transaction in flight: how many of its events Kafka has yet to ack."""

    __slots__ = ("xid", "commit_time", "end_lsn", "pending", "complete", "owner")

    def __init__(self, owner: Capture, xid: int | None, commit_time: datetime) -> None:
        self.owner = owner
        self.xid = xid
        self.commit_time = commit_time
        self.end_lsn = 0
        self.pending = 0
        self.complete = False

    def delivered(self, err: KafkaError | None, _message: Any) -> None:
        if err is not None:
            self.owner.delivery_error = err
        else:
            self.pending -= 1


@dataclass(frozen=True)
class TableInfo:
    schema: str
    table: str
    key_columns: tuple[str, ...]


class Capture:
    def __init__(
        self, config: CaptureConfig, metrics: Any | None = None, producer_factory: Any = None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self._producer_factory = producer_factory or Producer
        self.stats = CaptureStats()
        self.delivery_error: KafkaError | None = None
        self._stop = threading.Event()
        self.streaming = threading.Event()  # set once the initial snapshot is done and streaming
        self._producer: Producer | None = None
        self._meta: psycopg.Connection | None = None
        self._repl: pq.PGconn | None = None
        self._db = conninfo_to_dict(config.dsn).get("dbname") or "postgres"
        self._relations: dict[int, pgoutput.Relation] = {}
        self._tables: dict[tuple[str, str], TableInfo] = {}
        self._inflight: deque[_Txn] = deque()
        self._current: _Txn | None = None
        self._confirmed = 0
        self._last_status = 0.0
        self._last_heartbeat = 0.0
        self._confirmed_sent = 0

    # --- lifecycle ---------------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> CaptureStats:
        cfg = self.config
        self._producer = self._producer_factory(
            producer_config(cfg.bootstrap, **{"client.id": f"{cfg.prefix}-capture", **cfg.producer})
        )
        self._meta = psycopg.connect(
            cfg.dsn,
            autocommit=True,
            options=SESSION_OPTIONS,
            application_name=f"{cfg.prefix}-cdc-capture-meta",
        )
        try:
            self._check_server()
            self._db = self._meta.execute("select current_database()").fetchone()[0]
            self._load_tables()
            self._ensure_topics()
            start_lsn = self._prepare_slot()
            if not self._stop.is_set():
                self._stream(start_lsn)
        finally:
            self._shutdown()
        return self.stats

    def _shutdown(self) -> None:
        producer = self._producer
        if producer is not None:
            producer.flush(30)
            self._advance()
        if self._repl is not None:
            try:
                if (
                    self.delivery_error is None
                    and self._confirmed
                    and self.streaming.is_set()
                    and self._repl.status == pq.ConnStatus.OK
                ):
                    self._send_status(force=True)
            except Exception:  # noqa: BLE001 - best effort on the way out
                log.warning("could not send the final status update", exc_info=True)
            self._repl.finish()
            self._repl = None
        if self._meta is not None:
            self._meta.close()
            self._meta = None

    # --- catalog -----------------------------------------------------------------------

    def _check_server(self) -> None:
        assert self._meta is not None
        level = self._meta.execute("show wal_level").fetchone()[0]
        if level != "logical":
            raise CaptureError(f"wal_level is {level!r}; logical decoding needs wal_level=logical")
        found = self._meta.execute(
            "select 1 from pg_publication where pubname = %s", (self.config.publication,)
        ).fetchone()
        if not found:
            raise CaptureError(
                f"publication {self.config.publication!r} does not exist (run the migrations: "
                "python -m devtools.sourcedb migrate, or the shop's own migrations)"
            )

    def _load_tables(self) -> None:
        assert self._meta is not None
        rows = self._meta.execute(
            "select schemaname, tablename from pg_publication_tables where pubname = %s "
            "order by schemaname, tablename",
            (self.config.publication,),
        ).fetchall()
        self._tables = {}
        for schema, table in rows:
            self._tables[(schema, table)] = TableInfo(
                schema, table, self._key_columns(schema, table)
            )

    def _ensure_topics(self) -> None:
        """Ask for each table's topic so that it exists (auto-created) before its first event:
        the bridge subscribes to every table's topic from the start."""
        assert self._producer is not None
        for schema, table in self._tables:
            topic = topic_for(self.config.prefix, schema, table)
            try:
                self._producer.list_topics(topic, timeout=10)
            except KafkaException as error:
                log.warning("could not look up %s: %s", topic, error)

    def _key_columns(self, schema: str, table: str) -> tuple[str, ...]:
        assert self._meta is not None
        rows = self._meta.execute(
            """
            select a.attname
            from pg_index i
            join lateral unnest(i.indkey) with ordinality as k(attnum, ord) on true
            join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
            where i.indrelid = format('%%I.%%I', %s::text, %s::text)::regclass and i.indisprimary
            order by k.ord
            """,
            (schema, table),
        ).fetchall()
        return tuple(r[0] for r in rows)

    def _table(self, schema: str, table: str) -> TableInfo:
        info = self._tables.get((schema, table))
        if info is None:  # added to the publication while we run
            info = TableInfo(schema, table, self._key_columns(schema, table))
            self._tables[(schema, table)] = info
        return info

    # --- slot and snapshot -------------------------------------------------------------

    def _slot_row(self) -> tuple[int, int, int | None] | None:
        assert self._meta is not None
        row = self._meta.execute(
            "select restart_lsn::text, confirmed_flush_lsn::text, active_pid, plugin "
            "from pg_replication_slots where slot_name = %s",
            (self.config.slot,),
        ).fetchone()
        if row is None:
            return None
        if row[3] != "pgoutput":
            raise CaptureError(f"slot {self.config.slot!r} uses {row[3]!r}, not pgoutput")
        return pgoutput.parse_lsn(row[0]), pgoutput.parse_lsn(row[1]), row[2]

    def _connect_replication(self) -> pq.PGconn:
        conninfo = make_conninfo(
            self.config.dsn,
            replication="database",
            options=SESSION_OPTIONS,
            application_name=f"{self.config.prefix}-cdc-capture",
        )
        conn = pq.PGconn.connect(conninfo.encode())
        if conn.status != pq.ConnStatus.OK:
            message = conn.get_error_message()
            conn.finish()
            raise CaptureError(f"replication connection failed: {message}")
        return conn

    def _exec(self, command: str, expect: pq.ExecStatus) -> pq.PGresult:
        assert self._repl is not None
        result = self._repl.exec_(command.encode())
        if result.status != expect:
            raise CaptureError(
                f"{command.split()[0]} failed: {result.get_error_message() or result.status.name}"
            )
        return result

    def _state_key(self) -> str:
        return f"{self._db}/{self.config.slot}"

    def _prepare_slot(self) -> int:
        """Make sure the slot exists and the initial snapshot is in Kafka; returns where the
        stream starts (0: the slot's confirmed position)."""
        cfg = self.config
        deadline = time.monotonic() + cfg.slot_wait
        slot = self._slot_row()
        while slot is not None and slot[2] is not None:  # a previous capture still holds it
            if time.monotonic() > deadline or self._stop.is_set():
                raise CaptureError(f"slot {cfg.slot!r} is in use by pid {slot[2]}")
            time.sleep(0.5)
            slot = self._slot_row()
        self._repl = self._connect_replication()
        state = read_state(cfg.bootstrap, state_topic(cfg.prefix)).get(self._state_key())
        if slot is None:
            result = self._exec(
                f'CREATE_REPLICATION_SLOT "{cfg.slot}" LOGICAL pgoutput EXPORT_SNAPSHOT',
                pq.ExecStatus.TUPLES_OK,
            )
            consistent = pgoutput.parse_lsn(result.get_value(0, 1).decode())
            exported = result.get_value(0, 2).decode()
            created = self._slot_row()
            assert created is not None
            restart_lsn = created[0]
            self._confirmed = consistent
            log.info("created slot %s at %s", cfg.slot, pgoutput.format_lsn(consistent))
            if cfg.snapshot:
                self._snapshot(restart_lsn, exported)
            self._write_state(restart_lsn, consistent)
        else:
            restart_lsn, confirmed, _ = slot
            self._confirmed = confirmed
            if state is None and cfg.snapshot:
                # The slot outlived an unfinished snapshot (or the Kafka state was lost): read
                # the tables again now. The slot never moved past its consistent point, so
                # every change since then streams after this and wins over these rows.
                log.info("slot %s exists without a finished snapshot: snapshotting again", cfg.slot)
                self._snapshot(restart_lsn, None)
                self._write_state(restart_lsn, confirmed)
        self.stats.confirmed_lsn = self._confirmed
        return 0

    def _snapshot(self, lsn: int, exported: str | None) -> None:
        """Every published table as op=r events, under the slot's exported snapshot."""
        assert self._producer is not None
        started = datetime.now(UTC)
        with psycopg.connect(
            self.config.dsn,
            options=SESSION_OPTIONS,
            application_name=f"{self.config.prefix}-cdc-snapshot",
        ) as conn:
            conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            conn.read_only = True
            with conn.transaction():
                if exported:
                    conn.execute(f"set transaction snapshot '{exported}'")
                held: tuple[TableInfo, dict[str, Any]] | None = None
                for (schema, table), info in sorted(self._tables.items()):
                    ident = f'"{schema}"."{table}"'
                    with conn.cursor(name=f"cdc_snapshot_{table}") as cursor:
                        cursor.itersize = self.config.snapshot_fetch
                        cursor.execute(f"select * from {ident}")
                        names = [d.name for d in cursor.description]
                        for values in cursor:
                            if held is not None:
                                self._emit_snapshot_row(*held, lsn, started, "true")
                            held = (info, dict(zip(names, values, strict=True)))
                    if self._stop.is_set():
                        raise CaptureError("stopped during the initial snapshot")
                if held is not None:
                    self._emit_snapshot_row(*held, lsn, started, "last")
        self._flush_all("snapshot")
        log.info("snapshot done: %d rows at %s", self.stats.snapshot_rows, pgoutput.format_lsn(lsn))

    def _emit_snapshot_row(
        self, info: TableInfo, row: dict[str, Any], lsn: int, started: datetime, marker: str
    ) -> None:
        key, value = build_envelope(
            prefix=self.config.prefix,
            db=self._db,
            schema=info.schema,
            table=info.table,
            op="r",
            key_columns=info.key_columns,
            before=None,
            after=row,
            lsn=lsn,
            tx_id=None,
            commit_ts=started,
            snapshot=marker,
        )
        self._produce(
            topic_for(self.config.prefix, info.schema, info.table),
            key,
            value,
            self._snapshot_delivered,
        )
        self.stats.snapshot_rows += 1
        if self.metrics:
            self.metrics.snapshot_rows.inc()

    def _snapshot_delivered(self, err: KafkaError | None, _message: Any) -> None:
        if err is not None:
            self.delivery_error = err

    def _write_state(self, snapshot_lsn: int, consistent_lsn: int) -> None:
        assert self._producer is not None
        value = {
            "slot": self.config.slot,
            "db": self._db,
            "snapshot_completed": True,
            "snapshot_lsn": snapshot_lsn,
            "consistent_lsn": consistent_lsn,
            "ts_ms": int(time.time() * 1000),
        }
        self._produce(
            state_topic(self.config.prefix),
            self._state_key().encode(),
            json.dumps(value).encode(),
            self._snapshot_delivered,
        )
        self._flush_all("capture state")

    def _flush_all(self, what: str) -> None:
        assert self._producer is not None
        remaining = self._producer.flush(120)
        if remaining or self.delivery_error is not None:
            raise CaptureError(
                f"Kafka did not acknowledge the {what}: "
                f"{self.delivery_error or f'{remaining} messages outstanding'}"
            )

    # --- producing ---------------------------------------------------------------------

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, callback: Any) -> None:
        producer = self._producer
        assert producer is not None
        while True:
            try:
                producer.produce(topic, value=value, key=key, on_delivery=callback)
                return
            except BufferError:
                producer.poll(0.05)
                if self.delivery_error is not None:
                    raise CaptureError(f"Kafka delivery failed: {self.delivery_error}") from None

    # --- streaming ---------------------------------------------------------------------

    def _stream(self, start_lsn: int) -> None:
        cfg = self.config
        assert self._repl is not None and self._producer is not None
        publication = cfg.publication.replace("'", "''").replace('"', '""')
        self._exec(
            f'START_REPLICATION SLOT "{cfg.slot}" LOGICAL {pgoutput.format_lsn(start_lsn)} '
            f"(proto_version '1', publication_names '\"{publication}\"')",
            pq.ExecStatus.COPY_BOTH,
        )
        self.streaming.set()
        repl = self._repl
        repl.nonblocking = 1
        sock = repl.socket
        producer = self._producer
        handled = 0
        log.info("streaming slot %s from %s", cfg.slot, pgoutput.format_lsn(self._confirmed))
        while not self._stop.is_set():
            if self.delivery_error is not None:
                raise CaptureError(f"Kafka delivery failed: {self.delivery_error}")
            repl.consume_input()
            got = 0
            while got < 2000:
                size, data = repl.get_copy_data(1)
                if size > 0:
                    self._handle_frame(bytes(data))
                    got += 1
                    continue
                if size == 0:
                    break
                result = repl.get_result()
                message = result.get_error_message() if result is not None else ""
                raise CaptureError(
                    f"replication stream ended: {message or repl.get_error_message()}"
                )
            handled += got
            producer.poll(0)
            self._advance()
            self._tick()
            if got == 0:
                select.select([sock], [], [], 0.05)

    def _handle_frame(self, frame: bytes) -> None:
        parsed = pgoutput.decode_frame(frame)
        if isinstance(parsed, pgoutput.Keepalive):
            if parsed.wal_end > self.stats.received_lsn:
                self.stats.received_lsn = parsed.wal_end
            if not self._inflight and parsed.wal_end > self._confirmed:
                # Nothing received is unacknowledged and no transaction is open: every change
                # before the server's WAL end is in Kafka already.
                self._confirmed = parsed.wal_end
            if parsed.reply_requested:
                self._send_status(force=True)
            return
        if parsed.data_start > self.stats.received_lsn:
            self.stats.received_lsn = parsed.data_start
        message = pgoutput.decode(parsed.payload)
        if isinstance(message, pgoutput.Change):
            self._change(message, parsed.data_start)
        elif isinstance(message, pgoutput.Begin):
            self._current = _Txn(self, message.xid, message.commit_time)
            self._inflight.append(self._current)
        elif isinstance(message, pgoutput.Commit):
            txn = self._current
            if txn is None:
                raise CaptureError("commit without begin")
            txn.end_lsn = message.end_lsn
            txn.complete = True
            self._current = None
            self.stats.transactions += 1
            self.stats.last_commit = message.commit_time
            if self.metrics:
                self.metrics.last_commit.set(message.commit_time.timestamp())
        elif isinstance(message, pgoutput.Relation):
            self._relations[message.relation_id] = message
            self._table(message.schema, message.table)
        elif isinstance(message, pgoutput.Truncate):
            self._truncate(message, parsed.data_start)

    def _change(self, change: pgoutput.Change, lsn: int) -> None:
        txn = self._current
        relation = self._relations.get(change.relation_id)
        if txn is None or relation is None:
            raise CaptureError("change outside a transaction or for an unknown relation")
        before = pgoutput.row_values(relation, change.old) if change.old is not None else None
        after = (
            pgoutput.row_values(relation, change.new, before) if change.new is not None else None
        )
        info = self._table(relation.schema, relation.table)
        keys = info.key_columns
        if (
            change.op == "u"
            and before is not None
            and keys
            and any(before.get(k) != after.get(k) for k in keys)
        ):  # type: ignore[union-attr]
            # A primary-key change is a delete of the old key and a create of the new one,
            # as Debezium emits it.
            self._event(txn, info, "d", before, None, lsn)
            self._event(txn, info, "c", None, after, lsn)
            return
        self._event(txn, info, change.op, before, after, lsn)

    def _event(
        self,
        txn: _Txn,
        info: TableInfo,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        lsn: int,
    ) -> None:
        cfg = self.config
        key, value = build_envelope(
            prefix=cfg.prefix,
            db=self._db,
            schema=info.schema,
            table=info.table,
            op=op,
            key_columns=info.key_columns,
            before=before,
            after=after,
            lsn=lsn,
            tx_id=txn.xid,
            commit_ts=txn.commit_time,
        )
        topic = topic_for(cfg.prefix, info.schema, info.table)
        txn.pending += 1
        self._produce(topic, key, value, txn.delivered)
        if op == "d":
            txn.pending += 1
            self._produce(
                topic, key, None, txn.delivered
            )  # tombstone: lets compaction drop the key
        self.stats.changes += 1
        self.stats.by_op[op] = self.stats.by_op.get(op, 0) + 1
        if self.metrics:
            self.metrics.changes.labels(info.table, op).inc()

    def _truncate(self, message: pgoutput.Truncate, lsn: int) -> None:
        txn = self._current
        if txn is None:
            raise CaptureError("truncate outside a transaction")
        for relation_id in message.relation_ids:
            relation = self._relations.get(relation_id)
            if relation is None:
                raise CaptureError(f"truncate of unknown relation {relation_id}")
            info = self._table(relation.schema, relation.table)
            self._event(txn, info, "t", None, None, lsn)

    def _advance(self) -> None:
        inflight = self._inflight
        while inflight and inflight[0].complete and inflight[0].pending <= 0:
            txn = inflight.popleft()
            if txn.end_lsn > self._confirmed:
                self._confirmed = txn.end_lsn

    def _tick(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= self.config.heartbeat_interval:
            self._last_heartbeat = now
            self._heartbeat()
        if now - self._last_status >= self.config.status_interval or (
            self._confirmed > self._confirmed_sent and now - self._last_status >= 0.2
        ):
            # ask for a keepalive while idle: its WAL end lets the slot move on
            self._send_status(reply=not self._inflight)

    def _heartbeat(self) -> None:
        cfg = self.config
        key = json.dumps({"serverName": cfg.prefix}).encode()
        value = json.dumps({"ts_ms": int(time.time() * 1000)}).encode()
        self._produce(heartbeat_topic(cfg.prefix), key, value, self._snapshot_delivered)
        self.stats.heartbeats += 1

    def _send_status(self, force: bool = False, reply: bool = False) -> None:
        repl = self._repl
        assert repl is not None
        confirmed = self._confirmed
        frame = pgoutput.standby_status_update(
            max(self.stats.received_lsn, confirmed), confirmed, confirmed, reply=reply
        )
        repl.put_copy_data(frame)
        while repl.flush() == 1:
            select.select([], [repl.socket], [], 1.0)
        self._last_status = time.monotonic()
        self._confirmed_sent = confirmed
        self.stats.confirmed_lsn = confirmed
        if self.metrics:
            self.metrics.confirmed_lsn.set(confirmed)
            self.metrics.inflight.set(len(self._inflight))


# --- command line --------------------------------------------------------------------------


class CaptureMetrics:
    def __init__(self, registry: Any = None) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        self.registry = registry or CollectorRegistry()
        self.changes = Counter(
            "cdc_capture_changes",
            "Change events sent to Kafka",
            ["table", "op"],
            registry=self.registry,
        )
        self.snapshot_rows = Counter(
            "cdc_capture_snapshot_rows", "Snapshot rows sent to Kafka", registry=self.registry
        )
        self.confirmed_lsn = Gauge(
            "cdc_capture_confirmed_lsn",
            "LSN confirmed to the slot (everything before is in Kafka)",
            registry=self.registry,
        )
        self.inflight = Gauge(
            "cdc_capture_inflight_transactions",
            "Transactions received but not yet acknowledged by Kafka",
            registry=self.registry,
        )
        self.last_commit = Gauge(
            "cdc_capture_last_commit_timestamp_seconds",
            "Commit time of the last streamed transaction",
            registry=self.registry,
        )


def main(argv: list[str] | None = None) -> int:
    from platform_core.settings import get_settings
    from streaming.cdc.kafka import resolve_bootstrap

    settings = get_settings()
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
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    config = CaptureConfig(
        dsn=resolve_source_db_dsn(settings, args.dsn),
        bootstrap=resolve_bootstrap(settings, args.bootstrap),
        prefix=args.prefix,
        slot=args.slot,
        publication=args.publication,
        snapshot=not args.no_snapshot,
        heartbeat_interval=args.heartbeat_interval,
    )
    metrics = None
    if args.metrics_port:
        from prometheus_client import start_http_server

        metrics = CaptureMetrics()
        start_http_server(args.metrics_port, addr=args.metrics_host, registry=metrics.registry)
    capture = Capture(config, metrics)
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


if __name__ == "__main__":
    sys.exit(main())
