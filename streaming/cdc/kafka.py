"""Kafka plumbing shared by the capture and the bridge: client settings, topic names, the
capture's state topic, and where the local Kafka's address is found.

Locally Kafka is librdkafka's mock cluster hosted by `python -m streaming.cdc.mock_kafka`,
which writes its bootstrap address to ``DATA_DIR/cdc/kafka.bootstrap``; KAFKA_BOOTSTRAP_SERVERS
wins when set.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from streaming.shop.simulator import KEY_COLUMNS

DEFAULT_SCHEMA = "public"


class KafkaUnavailable(RuntimeError):
    """No Kafka bootstrap address is configured or reachable."""


def local_state_dir(settings: Any) -> Path:
    return settings.data_path / "cdc"


def kafka_address_file(settings: Any) -> Path:
    return local_state_dir(settings) / "kafka.bootstrap"


def resolve_bootstrap(settings: Any, explicit: str | None = None) -> str:
    """KAFKA_BOOTSTRAP_SERVERS, else the local mock cluster's address file."""
    if explicit:
        return explicit
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    path = kafka_address_file(settings)
    if settings.is_local and path.exists():
        address = path.read_text().strip()
        if address:
            return address
    raise KafkaUnavailable(
        "no Kafka: set KAFKA_BOOTSTRAP_SERVERS or start the local one with "
        "`python -m streaming.cdc.mock_kafka`"
    )


def cdc_topics(
    prefix: str, tables: tuple[str, ...] | None = None, schema: str = DEFAULT_SCHEMA
) -> list[str]:
    return [f"{prefix}.{schema}.{table}" for table in (tables or tuple(KEY_COLUMNS))]


def dead_letter_topic(prefix: str) -> str:
    return f"{prefix}.dlq"


def heartbeat_topic(prefix: str) -> str:
    return f"__debezium-heartbeat.{prefix}"  # Debezium's name for it


def state_topic(prefix: str) -> str:
    return f"{prefix}.__capture_state"


def producer_config(bootstrap: str, **extra: Any) -> dict[str, Any]:
    """Idempotent, acks=all, compressed, Java-compatible key partitioning."""
    return {
        "bootstrap.servers": bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": "zstd",
        "linger.ms": 10,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 500000,
        "queue.buffering.max.kbytes": 524288,
        "partitioner": "murmur2_random",  # same partition per key as Kafka Connect's
        "message.timeout.ms": 120000,
        **extra,
    }


def read_state(bootstrap: str, topic: str, timeout: float = 30) -> dict[str, dict[str, Any]]:
    """The latest value per key of a small state topic (read from the beginning)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "allow.auto.create.topics": True,
        }
    )
    try:
        deadline = time.monotonic() + timeout
        metadata = None
        while time.monotonic() < deadline:
            try:
                metadata = consumer.list_topics(topic, timeout=5)
            except KafkaException:
                continue
            info = metadata.topics.get(topic)
            if info is not None and info.error is None and info.partitions:
                break
            time.sleep(0.2)
        else:
            raise KafkaUnavailable(f"could not read metadata of {topic}")
        assert metadata is not None
        partitions = sorted(metadata.topics[topic].partitions)
        pending = set()
        assignment = []
        for partition in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                pending.add(partition)
                assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        state: dict[str, dict[str, Any]] = {}
        if not assignment:
            return state
        consumer.assign(assignment)
        while pending and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None:
                continue
            if message.error():
                if message.error().code() == -191:  # _PARTITION_EOF
                    pending.discard(message.partition())
                    continue
                raise KafkaException(message.error())
            key = (message.key() or b"").decode()
            value = message.value()
            if value is None:
                state.pop(key, None)
            else:
                state[key] = json.loads(value)
        if pending:
            raise KafkaUnavailable(f"timed out reading {topic}")
        return state
    finally:
        consumer.close()
