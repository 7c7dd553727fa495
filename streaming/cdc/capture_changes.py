"""From decoded pgoutput messages to Debezium change events in Kafka.

One event per inserted/updated/deleted row (``c``/``u``/``d``, with the whole old row as
``before`` thanks to REPLICA IDENTITY FULL), a tombstone after each delete, and a ``t`` event
per truncated table, to ``<prefix>.<schema>.<table>`` keyed by the primary key; every event is
counted against its source transaction (`TransactionAcks`) until Kafka acknowledges it.

A streamed change carries its own WAL record's LSN (unique, and per row in commit order,
because row locks serialise writers).
"""

from __future__ import annotations

from typing import Any

from streaming.cdc import pgoutput
from streaming.cdc.capture_catalog import PublicationCatalog, TableInfo
from streaming.cdc.capture_config import CaptureError, CaptureStats
from streaming.cdc.capture_metrics import CaptureMetrics
from streaming.cdc.capture_outbox import Outbox, PendingTransaction, TransactionAcks
from streaming.cdc.debezium import build_envelope, topic_for


class ChangeEvents:
    """The streamed messages of one replication session, turned into events."""

    def __init__(
        self,
        prefix: str,
        db: str,
        catalog: PublicationCatalog,
        outbox: Outbox,
        acks: TransactionAcks,
        stats: CaptureStats,
        metrics: CaptureMetrics | None,
    ) -> None:
        self.prefix = prefix
        self.db = db
        self.catalog = catalog
        self.outbox = outbox
        self.acks = acks
        self.stats = stats
        self.metrics = metrics
        self._relations: dict[int, pgoutput.Relation] = {}

    def handle(self, message: pgoutput.Message, lsn: int) -> None:
        """One decoded message; `lsn` is where its WAL record starts."""
        if isinstance(message, pgoutput.Change):
            self._change(message, lsn)
        elif isinstance(message, pgoutput.Begin):
            self.acks.begin(message.xid, message.commit_time)
        elif isinstance(message, pgoutput.Commit):
            self._commit(message)
        elif isinstance(message, pgoutput.Relation):
            self._relations[message.relation_id] = message
            self.catalog.table(message.schema, message.table)
        elif isinstance(message, pgoutput.Truncate):
            self._truncate(message, lsn)

    def _commit(self, message: pgoutput.Commit) -> None:
        self.acks.commit(message.end_lsn)
        self.stats.transactions += 1
        self.stats.last_commit = message.commit_time
        if self.metrics:
            self.metrics.last_commit.set(message.commit_time.timestamp())

    def _change(self, change: pgoutput.Change, lsn: int) -> None:
        txn = self.acks.current
        relation = self._relations.get(change.relation_id)
        if txn is None or relation is None:
            raise CaptureError("change outside a transaction or for an unknown relation")
        before = pgoutput.row_values(relation, change.old) if change.old is not None else None
        after = (
            pgoutput.row_values(relation, change.new, before) if change.new is not None else None
        )
        info = self.catalog.table(relation.schema, relation.table)
        keys = info.key_columns
        if (
            change.op == "u"
            and before is not None
            and keys
            and any(before.get(k) != after.get(k) for k in keys)  # type: ignore[union-attr]
        ):
            # A primary-key change is a delete of the old key and a create of the new one,
            # as Debezium emits it.
            self._event(txn, info, "d", before, None, lsn)
            self._event(txn, info, "c", None, after, lsn)
            return
        self._event(txn, info, change.op, before, after, lsn)

    def _truncate(self, message: pgoutput.Truncate, lsn: int) -> None:
        txn = self.acks.current
        if txn is None:
            raise CaptureError("truncate outside a transaction")
        for relation_id in message.relation_ids:
            relation = self._relations.get(relation_id)
            if relation is None:
                raise CaptureError(f"truncate of unknown relation {relation_id}")
            info = self.catalog.table(relation.schema, relation.table)
            self._event(txn, info, "t", None, None, lsn)

    def _event(
        self,
        txn: PendingTransaction,
        info: TableInfo,
        op: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        lsn: int,
    ) -> None:
        key, value = build_envelope(
            prefix=self.prefix,
            db=self.db,
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
        topic = topic_for(self.prefix, info.schema, info.table)
        self.outbox.produce_in(txn, topic, key, value)
        if op == "d":
            self.outbox.produce_in(txn, topic, key, None)  # tombstone: lets compaction drop the key
        self.stats.changes += 1
        self.stats.by_op[op] = self.stats.by_op.get(op, 0) + 1
        if self.metrics:
            self.metrics.changes.labels(info.table, op).inc()
