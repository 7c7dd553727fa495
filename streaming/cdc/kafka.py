"""Kafka plumbing shared by the capture and the bridge: client settings, topic names, the
capture's state topic, and where the local Kafka's address is found.

Locally Kafka is librdkafka's mock cluster hosted by `python -m devtools.cdc.mock_kafka`,
which writes its bootstrap address to ``DATA_DIR/cdc/kafka.bootstrap``; KAFKA_BOOTSTRAP_SERVERS
wins when set.
"""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

from platform_core.raw.schema import CDC_KEY_COLUMNS
from platform_core.settings import (
    ServiceUnavailable,
    Settings,
    resolve_local_address,
)

DEFAULT_SCHEMA = "public"


class KafkaUnavailable(ServiceUnavailable):
    """No Kafka bootstrap address is configured or reachable."""


def resolve_bootstrap(settings: Settings, explicit: str | None = None) -> str:
    """KAFKA_BOOTSTRAP_SERVERS (or `explicit`), else the local Kafka's address file."""
    try:
        return resolve_local_address(
            explicit or settings.kafka_bootstrap_servers,
            settings.kafka_address_file,
            settings.is_local,
            "Kafka (KAFKA_BOOTSTRAP_SERVERS)",
            "the local one with `python -m devtools.cdc.mock_kafka`",
        )
    except ServiceUnavailable as error:
        raise KafkaUnavailable(str(error)) from None


def cdc_topics(
    prefix: str, tables: tuple[str, ...] | None = None, schema: str = DEFAULT_SCHEMA
) -> list[str]:
    return [f"{prefix}.{schema}.{table}" for table in (tables or tuple(CDC_KEY_COLUMNS))]


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
