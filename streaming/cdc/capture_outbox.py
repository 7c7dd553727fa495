"""The capture's Kafka side: producing with back-pressure, and the bookkeeping of which source
transactions Kafka has fully acknowledged.

The slot may be confirmed only up to the end of the last transaction whose every event Kafka
acknowledged (and whose predecessors all were): `TransactionAcks.confirmed` is that LSN.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from streaming.cdc.capture_config import CAPTURE_LOGGER, CaptureError

log = logging.getLogger(CAPTURE_LOGGER)

DeliveryCallback = Callable[[KafkaError | None, Any], None]


class Outbox:
    """The capture's producer and the first delivery error it reported (after which the
    capture stops: nothing past a lost event may be confirmed)."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.delivery_error: KafkaError | None = None

    def delivered(self, err: KafkaError | None, _message: Any) -> None:
        """Delivery callback of events no transaction waits for (snapshot, state, heartbeat)."""
        if err is not None:
            self.delivery_error = err

    def raise_if_failed(self) -> None:
        if self.delivery_error is not None:
            raise CaptureError(f"Kafka delivery failed: {self.delivery_error}")

    def ensure_topics(self, topics: Iterable[str]) -> None:
        """Ask for each topic so that it exists (auto-created) before its first event: the
        bridge subscribes to every table's topic from the start."""
        for topic in topics:
            try:
                self.producer.list_topics(topic, timeout=10)
            except KafkaException as error:
                log.warning("could not look up %s: %s", topic, error)

    def produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        callback: DeliveryCallback | None = None,
    ) -> None:
        """Queue one message, waiting for room while librdkafka's queue is full."""
        while True:
            try:
                self.producer.produce(
                    topic, value=value, key=key, on_delivery=callback or self.delivered
                )
                return
            except BufferError:
                self.producer.poll(0.05)
                if self.delivery_error is not None:
                    raise CaptureError(f"Kafka delivery failed: {self.delivery_error}") from None

    def produce_in(
        self, txn: PendingTransaction, topic: str, key: bytes | None, value: bytes | None
    ) -> None:
        """Queue one event of a source transaction; the transaction waits for its ack."""
        txn.pending += 1
        self.produce(topic, key, value, txn.delivered)

    def poll(self) -> None:
        self.producer.poll(0)

    def flush(self, timeout: float) -> int:
        return self.producer.flush(timeout)

    def flush_all(self, what: str) -> None:
        """Wait until Kafka acknowledged everything queued, or give up."""
        remaining = self.producer.flush(120)
        if remaining or self.delivery_error is not None:
            raise CaptureError(
                f"Kafka did not acknowledge the {what}: "
                f"{self.delivery_error or f'{remaining} messages outstanding'}"
            )


class PendingTransaction:
    """One source transaction in flight: how many of its events Kafka has yet to ack."""

    __slots__ = ("xid", "commit_time", "end_lsn", "pending", "complete", "outbox")

    def __init__(self, outbox: Outbox, xid: int | None, commit_time: datetime) -> None:
        self.outbox = outbox
        self.xid = xid
        self.commit_time = commit_time
        self.end_lsn = 0
        self.pending = 0
        self.complete = False

    def delivered(self, err: KafkaError | None, _message: Any) -> None:
        if err is not None:
            self.outbox.delivery_error = err
        else:
            self.pending -= 1


class TransactionAcks:
    """The transactions received from the slot, in commit order, until Kafka acked them."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox
        self._inflight: deque[PendingTransaction] = deque()
        self.current: PendingTransaction | None = None  # between BEGIN and COMMIT
        self.confirmed = 0  # every change before this LSN is in Kafka

    @property
    def inflight(self) -> int:
        """Transactions received (or being received) and not yet acknowledged."""
        return len(self._inflight)

    def begin(self, xid: int | None, commit_time: datetime) -> PendingTransaction:
        self.current = PendingTransaction(self._outbox, xid, commit_time)
        self._inflight.append(self.current)
        return self.current

    def commit(self, end_lsn: int) -> PendingTransaction:
        txn = self.current
        if txn is None:
            raise CaptureError("commit without begin")
        txn.end_lsn = end_lsn
        txn.complete = True
        self.current = None
        return txn

    def advance(self) -> None:
        """Move `confirmed` past every leading transaction Kafka has fully acknowledged."""
        inflight = self._inflight
        while inflight and inflight[0].complete and inflight[0].pending <= 0:
            txn = inflight.popleft()
            if txn.end_lsn > self.confirmed:
                self.confirmed = txn.end_lsn

    def caught_up_to(self, wal_end: int) -> None:
        """The server's WAL end, from a keepalive."""
        if not self._inflight and wal_end > self.confirmed:
            # Nothing received is unacknowledged and no transaction is open: every change
            # before the server's WAL end is in Kafka already.
            self.confirmed = wal_end
