"""The CDC bridge against a Kafka-protocol broker (librdkafka's mock cluster).

Offsets are committed only after the sink acknowledged; poison records go to the dead-letter
topic with the error and are never dropped; tombstones and heartbeats carry no row; a vanished
offset fails loudly; SIGTERM delivers what is buffered; the Pub/Sub sink publishes the
contract's message format; metrics are exported.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from devtools.cdc.mock_kafka import start_cluster
from devtools.cdc.processes import start_bridge
from platform_core.raw.codec import decode_raw_row
from streaming.cdc.bridge import Bridge, BridgeConfig, BridgeError, BridgeMetrics
from streaming.cdc.debezium import build_envelope
from streaming.cdc.kafka import dead_letter_topic, producer_config
from streaming.cdc.sinks import PubSubSink, RawWriterSink
from streaming.raw.writer import ParquetRawWriter

pytestmark = pytest.mark.slow  # a Kafka cluster and consumer-group joins (~5 s per test)

COMMIT = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def kafka() -> Iterator[str]:
    cluster, bootstrap = start_cluster()
    yield bootstrap
    cluster.close()


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return "b" + "".join(ch for ch in request.node.name.lower() if ch.isalnum())[:40]


class RecordingSink:
    name = "recording"

    def __init__(self, fail_first: int = 0, gate: threading.Event | None = None) -> None:
        self.batches: list[dict[str, list[dict[str, Any]]]] = []
        self.fail_first = fail_first
        self.gate = gate
        self.calls = 0

    def write(self, batch: Any) -> int:
        self.calls += 1
        if self.gate is not None:
            assert self.gate.wait(30)
        if self.calls <= self.fail_first:
            raise RuntimeError("sink unavailable")
        self.batches.append({t: [dict(r) for r in rows] for t, rows in batch.items()})
        return sum(len(r) for r in batch.values())

    def close(self) -> None:
        pass

    @property
    def rows(self) -> list[dict[str, Any]]:
        return [row for batch in self.batches for rows in batch.values() for row in rows]


def order(order_id: int, status: str = "pending") -> dict[str, Any]:
    return {
        "order_id": order_id,
        "user_id": 7,
        "status": status,
        "total_amount": "25.50",
        "created_at": COMMIT,
    }


def produce(
    bootstrap: str, prefix: str, records: list[tuple[str, bytes | None, bytes | None]]
) -> None:
    producer = Producer(producer_config(bootstrap))
    for table, key, value in records:
        producer.produce(f"{prefix}.public.{table}", key=key, value=value)
    assert producer.flush(30) == 0


def change(
    prefix: str, op: str, order_id: int, lsn: int, table: str = "orders", status: str = "pending"
) -> tuple[str, bytes | None, bytes]:
    row = order(order_id, status)
    before = row if op in ("u", "d") else None
    after = None if op == "d" else row
    key, value = build_envelope(
        prefix=prefix,
        db="shop",
        schema="public",
        table=table,
        op=op,
        key_columns=("order_id",),
        before=before,
        after=after,
        lsn=lsn,
        tx_id=900 + lsn,
        commit_ts=COMMIT + timedelta(seconds=lsn),
    )
    return table, key, value


def existing(consumer: Consumer, topics: list[str]) -> list[TopicPartition]:
    metadata = consumer.list_topics(timeout=10).topics
    return [
        TopicPartition(t, p)
        for t in topics
        if t in metadata
        for p in sorted(metadata[t].partitions)
    ]


def committed(bootstrap: str, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = existing(consumer, topics)
        if not partitions:
            return {}
        return {
            (tp.topic, tp.partition): tp.offset
            for tp in consumer.committed(partitions, timeout=10)
            if tp.offset >= 0
        }
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        ends = {}
        for tp in existing(consumer, topics):
            high = consumer.get_watermark_offsets(tp, timeout=10)[1]
            if high > 0:
                ends[(tp.topic, tp.partition)] = high
        return ends
    finally:
        consumer.close()


def config(bootstrap: str, prefix: str, **overrides: Any) -> BridgeConfig:
    return BridgeConfig(
        bootstrap=bootstrap,
        prefix=prefix,
        group=f"{prefix}-group",
        session_timeout_ms=6000,
        **{"max_delay": 0.2, **overrides},
    )


def run(bridge: Bridge, max_idle: float = 1.5) -> Any:
    return bridge.run(max_idle=max_idle)


def topics(prefix: str) -> list[str]:
    return [f"{prefix}.public.{t}" for t in ("users", "products", "orders", "order_items")]


def test_rows_reach_the_sink_and_offsets_follow(kafka: str, prefix: str) -> None:
    produce(
        kafka,
        prefix,
        [change(prefix, "c", i, 100 + i) for i in range(1, 31)]
        + [change(prefix, "u", 1, 200, status="paid")],
    )
    sink = RecordingSink()
    stats = run(Bridge(config(kafka, prefix, batch_size=7), sink))
    assert stats.rows == 31 and stats.batches >= 5
    assert len(sink.rows) == 31
    row = next(r for r in sink.rows if r["op"] == "u")
    assert json.loads(row["after"])["status"] == "paid" and row["lsn"] == 200
    assert row["kafka_topic"] == f"{prefix}.public.orders" and row["kafka_offset"] >= 0
    assert row["source_ts"] == (COMMIT + timedelta(seconds=200)).replace(tzinfo=None)
    assert committed(kafka, f"{prefix}-group", topics(prefix)) == end_offsets(kafka, topics(prefix))


def test_offsets_are_committed_only_after_the_sink_acknowledged(kafka: str, prefix: str) -> None:
    produce(kafka, prefix, [change(prefix, "c", i, i) for i in range(1, 11)])
    group = f"{prefix}-group"
    # a sink that fails: nothing is committed
    with pytest.raises(RuntimeError, match="sink unavailable"):
        run(Bridge(config(kafka, prefix), RecordingSink(fail_first=1)))
    assert committed(kafka, group, topics(prefix)) == {}
    # a sink that is slow to acknowledge: nothing is committed while it works
    gate = threading.Event()
    sink = RecordingSink(gate=gate)
    bridge = Bridge(config(kafka, prefix), sink)
    thread = threading.Thread(target=run, args=(bridge,), daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while sink.calls == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sink.calls == 1
    time.sleep(0.5)
    assert committed(kafka, group, topics(prefix)) == {}
    gate.set()
    thread.join(30)
    assert len(sink.rows) == 10  # the failed batch came again: at least once
    assert committed(kafka, group, topics(prefix)) == end_offsets(kafka, topics(prefix))


def test_poison_records_go_to_the_dead_letter_topic(kafka: str, prefix: str) -> None:
    good = change(prefix, "c", 1, 10)
    produce(
        kafka,
        prefix,
        [
            ("orders", b'{"order_id": 2}', b"not json at all"),
            ("orders", b'{"order_id": 3}', json.dumps({"op": "x", "source": {}}).encode()),
            good,
        ],
    )
    sink = RecordingSink()
    stats = run(Bridge(config(kafka, prefix), sink))
    assert stats.dead_letters == 2 and stats.rows == 1
    assert [r["lsn"] for r in sink.rows] == [10]
    assert committed(kafka, f"{prefix}-group", topics(prefix)) == end_offsets(kafka, topics(prefix))
    consumer = Consumer(
        {"bootstrap.servers": kafka, "group.id": "dlq-reader", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([dead_letter_topic(prefix)])
    letters = []
    deadline = time.monotonic() + 30
    while len(letters) < 2 and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            letters.append(message)
    consumer.close()
    assert len(letters) == 2
    by_value = {m.value(): dict(m.headers()) for m in letters}
    headers = by_value[b"not json at all"]
    assert b"not JSON" in headers["__connect.errors.exception.message"]
    assert headers["__connect.errors.topic"] == f"{prefix}.public.orders".encode()
    assert int(headers["__connect.errors.offset"]) >= 0
    assert int(headers["__connect.errors.partition"]) in range(4)
    assert any(
        b"unknown or missing op" in h["__connect.errors.exception.message"]
        for h in by_value.values()
    )


def hostile(prefix: str) -> list[tuple[str, bytes | None, bytes]]:
    """Records of issue 12's reproductions: each once crashed the bridge (and, its offset
    uncommitted, again after every restart)."""
    table, key, value = change(prefix, "c", 9, 90)
    document = json.loads(value)

    def with_source(**fields: Any) -> bytes:
        return json.dumps({**document, "source": {**document["source"], **fields}}).encode()

    decimal_field = {
        "field": "total_amount",
        "name": "org.apache.kafka.connect.data.Decimal",
        "parameters": {"scale": "2"},
    }
    bad_decimal = {
        "schema": {"type": "struct", "fields": [{"field": "after", "fields": [decimal_field]}]},
        "payload": {**document, "after": {"order_id": 9, "total_amount": "%%%"}},
    }
    return [
        (table, key, b'{"op":"c","after":{},"source":{"table":"orders","lsn":1,"ts_ms":1e20}}'),
        (table, key, with_source(txId="x")),
        (table, key, with_source(txId={})),
        (table, key, json.dumps({"schema": "x", "payload": document}).encode()),
        (table, key, json.dumps(bad_decimal).encode()),
        (table, key, b"[" * 100_000 + b"]" * 100_000),
        (table, key, with_source(lsn=2**64)),
    ]


def dead_letters(bootstrap: str, prefix: str, count: int) -> list[Any]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{prefix}-dlq-reader",
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([dead_letter_topic(prefix)])
    letters = []
    deadline = time.monotonic() + 60
    while len(letters) < count and time.monotonic() < deadline:
        message = consumer.poll(1)
        if message is not None and message.error() is None:
            letters.append(message)
    consumer.close()
    return letters


def test_hostile_records_are_dead_lettered_and_never_stop_the_bridge(
    kafka: str, prefix: str
) -> None:
    records = hostile(prefix)
    produce(kafka, prefix, [*records, change(prefix, "c", 1, 10)])
    sink = RecordingSink()
    stats = run(Bridge(config(kafka, prefix), sink))
    assert stats.dead_letters == len(records)
    assert [r["lsn"] for r in sink.rows] == [10]
    assert committed(kafka, f"{prefix}-group", topics(prefix)) == end_offsets(kafka, topics(prefix))
    letters = dead_letters(kafka, prefix, len(records))
    assert sorted(m.value() for m in letters) == sorted(value for _, _, value in records)
    reasons = [dict(m.headers())["__connect.errors.exception.message"] for m in letters]
    assert all(reasons), reasons
    kinds = {dict(m.headers())["__connect.errors.exception.class.name"] for m in letters}
    assert b"RawSchemaMismatch" in kinds  # the LSN of 2**64: parsed, then refused by INT64
    # a restart finds nothing left to trip over
    again = run(Bridge(config(kafka, prefix), RecordingSink()))
    assert again.records == 0 and again.dead_letters == 0


def test_a_batch_without_rows_is_committed(kafka: str, prefix: str) -> None:
    """Regression of 48af0c6: a sealed batch of only a tombstone has no write, and the loop
    called .done() on its missing future (AttributeError), again after every restart."""
    table, key, _ = change(prefix, "d", 3, 30)
    produce(kafka, prefix, [(table, key, None)])
    sink = RecordingSink()
    stats = run(Bridge(config(kafka, prefix), sink), max_idle=2)
    assert stats.skipped == 1 and stats.rows == 0 and sink.calls == 0
    assert stats.batches == 1
    assert committed(kafka, f"{prefix}-group", topics(prefix)) == end_offsets(kafka, topics(prefix))


def test_tombstones_heartbeats_and_unknown_tables(kafka: str, prefix: str) -> None:
    table, key, value = change(prefix, "d", 5, 50)
    unknown = change(prefix, "c", 6, 60, table="coupons")
    produce(
        kafka,
        prefix,
        [
            change(prefix, "c", 5, 40),
            (table, key, value),
            (table, key, None),
            ("orders", None, b'{"ts_ms": 1763632800000}'),
            unknown,
        ],
    )
    sink = RecordingSink()
    bridge = Bridge(
        config(kafka, prefix, topics=[*topics(prefix), f"{prefix}.public.coupons"]), sink
    )
    stats = run(bridge)
    assert sorted(r["op"] for r in sink.rows) == ["c", "d"]
    assert stats.skipped == 2  # the tombstone and the heartbeat
    assert stats.dead_letters == 1  # no raw table for "coupons"
    delete = next(r for r in sink.rows if r["op"] == "d")
    assert delete["after"] is None and json.loads(delete["before"])["order_id"] == 5


def test_a_vanished_offset_fails_instead_of_skipping(kafka: str, prefix: str) -> None:
    """The mock keeps 5 MB per partition; a committed offset older than that is gone."""
    topic = f"{prefix}.public.orders"
    producer = Producer({"bootstrap.servers": kafka, "compression.type": "none", "linger.ms": 50})
    for i in range(9000):
        producer.produce(topic, key=b"k", value=os.urandom(700), partition=0)
        if i % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    group = f"{prefix}-group"
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": group})
    assert consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[0] > 0
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    consumer.close()
    with pytest.raises(BridgeError, match="no longer exists"):
        run(Bridge(config(kafka, prefix, topics=[topic]), RecordingSink()), max_idle=10)


def test_metrics(kafka: str, prefix: str) -> None:
    produce(
        kafka,
        prefix,
        [
            change(prefix, "c", 1, 1),
            change(prefix, "u", 1, 2, status="paid"),
            ("orders", b"{}", b"[]"),
        ],
    )
    metrics = BridgeMetrics()
    run(Bridge(config(kafka, prefix), RecordingSink(), metrics))
    value = metrics.registry.get_sample_value
    assert value("cdc_bridge_changes_total", {"table": "cdc_orders", "op": "c"}) == 1
    assert value("cdc_bridge_changes_total", {"table": "cdc_orders", "op": "u"}) == 1
    assert value("cdc_bridge_dead_letters_total", {"topic": f"{prefix}.public.orders"}) == 1
    assert value("cdc_bridge_batch_seconds_count") >= 1
    assert value("cdc_bridge_source_to_raw_seconds_count") == 2


def lag_series(metrics: BridgeMetrics) -> set[tuple[str, str]]:
    return {
        (sample.labels["topic"], sample.labels["partition"])
        for family in metrics.registry.collect()
        if family.name == "cdc_bridge_consumer_lag"
        for sample in family.samples
    }


def test_lag_is_reported_once_per_partition_after_a_rebalance(kafka: str, prefix: str) -> None:
    """Two members of one group: each partition's lag series lives in exactly one of them.
    Before the fix the first member kept the series of the partitions it handed over, so a
    sum over pods counted them twice."""
    topic = f"{prefix}.public.orders"
    produce(kafka, prefix, [change(prefix, "c", i, i) for i in range(1, 41)])
    partitions = {(topic, str(tp.partition)) for tp in existing_partitions(kafka, topic)}
    assert len(partitions) >= 2  # the mock cluster makes 4
    fast_stats = {"statistics.interval.ms": 300}
    members = []
    try:
        for _ in range(2):
            metrics = BridgeMetrics()
            bridge = Bridge(
                config(kafka, prefix, topics=[topic], consumer=fast_stats), RecordingSink(), metrics
            )
            thread = threading.Thread(target=bridge.run, daemon=True)
            thread.start()
            members.append((bridge, metrics, thread))
            if len(members) == 1:  # the first one alone reports every partition
                wait_until(lambda m=metrics: lag_series(m) == partitions, "the first member's lag")

        def split_once() -> bool:
            first, second = (lag_series(m) for _, m, _ in members)
            return bool(first) and bool(second) and first | second == partitions

        wait_until(
            split_once,
            lambda: f"both members to report lag: {[lag_series(m) for _, m, _ in members]}",
        )
        time.sleep(1.5)  # a few more statistics callbacks: no stale series comes back
        first, second = (lag_series(m) for _, m, _ in members)
        assert not first & second, f"reported twice: {first & second}"
        assert first | second == partitions
        assert all(thread.is_alive() for _, _, thread in members), "a member stopped"
    finally:
        for bridge, _, thread in members:
            bridge.stop()
            thread.join(60)


def existing_partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "metadata"})
    try:
        return existing(consumer, [topic])
    finally:
        consumer.close()


def wait_until(condition: Any, what: Any, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, (
            f"timed out waiting for {what() if callable(what) else what}"
        )
        time.sleep(0.1)


def test_sigterm_delivers_what_is_buffered(kafka: str, prefix: str, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    bridge = start_bridge(
        tmp_path / "logs",
        kafka,
        prefix=prefix,
        env={"LAKE_DIR": str(lake)},
        extra=[
            "--group",
            f"{prefix}-group",
            "--max-delay",
            "600",
            "--batch-size",
            "1000000",
            "--session-timeout-ms",
            "6000",
        ],
    )
    try:
        deadline = time.monotonic() + 60
        while "assigned" not in bridge.log_tail() and time.monotonic() < deadline:
            assert bridge.alive(), bridge.log_tail()
            time.sleep(0.2)
        produce(kafka, prefix, [change(prefix, "c", i, i) for i in range(1, 201)])
        time.sleep(3)  # read and buffered; nothing is due for ten minutes
        assert not list(lake.glob("cdc_orders/ingest_date=*/*.parquet"))
        started = time.monotonic()
        os.killpg(bridge.pid, signal.SIGTERM)
        assert bridge.process.wait(60) == 0, bridge.log_tail()
        assert time.monotonic() - started < 60
    finally:
        bridge.kill()
    with duckdb.connect() as con:
        count = con.execute(
            f"select count(*) from read_parquet('{lake}/cdc_orders/*/*.parquet')"
        ).fetchone()[0]
    assert count == 200
    assert committed(kafka, f"{prefix}-group", topics(prefix)) == end_offsets(kafka, topics(prefix))


def test_raw_writer_sink_writes_every_table(tmp_path: Path, kafka: str, prefix: str) -> None:
    produce(kafka, prefix, [change(prefix, "c", 1, 1), change(prefix, "c", 2, 2, table="users")])
    sink = RawWriterSink(ParquetRawWriter(tmp_path))
    run(Bridge(config(kafka, prefix), sink))
    with duckdb.connect() as con:
        for table in ("cdc_orders", "cdc_users"):
            rows = con.execute(
                f"select op, lsn from read_parquet('{tmp_path}/{table}/*/*.parquet')"
            ).fetchall()
            assert len(rows) == 1, table


def test_pubsub_sink_publishes_the_contract_format(
    kafka: str, prefix: str, pubsub_emulator: str
) -> None:
    from google.cloud import pubsub_v1

    project = "local-project"
    sink = PubSubSink(project, f"{prefix}-cdc")
    sink.ensure_topic()
    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(project, f"{prefix}-sub")
    subscriber.create_subscription(name=subscription, topic=sink.topic_path)
    produce(kafka, prefix, [change(prefix, "c", 1, 11), change(prefix, "u", 1, 12, status="paid")])
    recorded: list[dict[str, Any]] = []

    class Both(RecordingSink):
        def write(self, batch: Any) -> int:
            recorded.extend(dict(r) for rows in batch.values() for r in rows)
            return sink.write(batch)

    run(Bridge(config(kafka, prefix), Both()))
    sink.close()
    received: list[Any] = []
    deadline = time.monotonic() + 30
    while len(received) < 2 and time.monotonic() < deadline:
        response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
        received += [m.message for m in response.received_messages]
        if response.received_messages:
            subscriber.acknowledge(
                subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
            )
    subscriber.close()
    assert len(received) == 2
    decoded = sorted(
        ((decode_raw_row(m.data), dict(m.attributes)) for m in received),
        key=lambda item: item[0][1]["lsn"],
    )
    for (table, row), attributes in decoded:
        assert table == "cdc_orders"
        assert attributes == {"table": "cdc_orders", "op": row["op"], "lsn": str(row["lsn"])}
    assert [row for (_, row), _ in decoded] == sorted(recorded, key=lambda r: r["lsn"])
