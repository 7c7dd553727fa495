"""The bridge's dead-letter topic: a record it cannot read goes there unchanged, with Kafka
Connect's error headers, and its offset may be committed only once Kafka acknowledged it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from streaming.cdc.bridge_config import BRIDGE_LOGGER, BridgeError
from streaming.cdc.bridge_metrics import BridgeMetrics

log = logging.getLogger(BRIDGE_LOGGER)


def dead_letter_headers(
    message: Message, error: str, kind: str = "DebeziumParseError"
) -> list[tuple[str, bytes]]:
    """Kafka Connect's error headers (errors.deadletterqueue.context.headers.enable)."""
    return [
        ("__connect.errors.topic", message.topic().encode()),
        ("__connect.errors.partition", str(message.partition()).encode()),
        ("__connect.errors.offset", str(message.offset()).encode()),
        ("__connect.errors.stage", b"VALUE_CONVERTER"),
        ("__connect.errors.class.name", b"streaming.cdc.bridge"),
        ("__connect.errors.exception.class.name", _header(kind)),
        ("__connect.errors.exception.message", _header(error[:2000])),
    ]


def _header(text: str) -> bytes:
    """Header bytes of any text (an error quoting a record may hold lone surrogates)."""
    return text.encode("utf-8", "backslashreplace")


class DeadLetters:
    """The dead-letter producer (the bridge's only producer; `open` gives it one when the
    bridge starts) and its unacknowledged sends."""

    def __init__(self, topic: str, metrics: BridgeMetrics | None) -> None:
        self.topic = topic
        self.metrics = metrics
        self.error: KafkaError | None = None
        self.pending = 0
        self._producer: Producer | None = None

    def open(self, producer: Producer) -> None:
        self._producer = producer

    def look_up(self, topics: Iterable[str]) -> None:
        """Ask for topics, so that a broker that auto-creates topics creates them now."""
        assert self._producer is not None
        for topic in topics:
            try:
                self._producer.list_topics(topic, timeout=10)
            except KafkaException as error:
                log.warning("could not look up %s: %s", topic, error)

    def send(self, message: Message, error: str, kind: str = "DebeziumParseError") -> None:
        assert self._producer is not None
        log.warning(
            "dead letter %s [%d] @%d: %s",
            message.topic(),
            message.partition(),
            message.offset(),
            error,
        )
        self.pending += 1
        self._producer.produce(
            self.topic,
            key=message.key(),
            value=message.value(),
            headers=dead_letter_headers(message, error, kind),
            on_delivery=self._delivered,
        )
        self._producer.poll(0)
        if self.metrics:
            self.metrics.dead_letters.labels(message.topic()).inc()

    def wait_acknowledged(self) -> None:
        """Before offsets past dead letters are committed: each must be in Kafka."""
        if self.pending:
            assert self._producer is not None
            self._producer.flush(60)
            if self.pending or self.error is not None:
                raise BridgeError(f"dead-letter topic did not acknowledge: {self.error}")

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)

    def _delivered(self, err: KafkaError | None, _message: Any) -> None:
        if err is not None:
            self.error = err
        else:
            self.pending -= 1
