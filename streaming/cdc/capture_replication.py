"""The capture's replication side: the slot's row in ``pg_replication_slots`` and the
replication-protocol session (CREATE_REPLICATION_SLOT, START_REPLICATION, the COPY BOTH
stream of frames, standby status updates).

The session is driven through psycopg's libpq binding (``psycopg.pq``): COPY BOTH gives full
control over status updates. (psycopg2's replication cursor moves the flushed LSN forward by
itself on keepalives, which could confirm transactions Kafka has not acknowledged.)
"""

from __future__ import annotations

import select
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from psycopg import pq
from psycopg.conninfo import make_conninfo

from streaming.cdc import pgoutput
from streaming.cdc.capture_config import SESSION_OPTIONS, CaptureError


@dataclass(frozen=True)
class SlotPosition:
    restart_lsn: int
    confirmed_lsn: int
    active_pid: int | None  # the walsender holding the slot, if any


def read_slot(conn: psycopg.Connection, slot: str) -> SlotPosition | None:
    """The slot's positions, None when there is no such slot."""
    row = conn.execute(
        "select restart_lsn::text, confirmed_flush_lsn::text, active_pid, plugin, wal_status "
        "from pg_replication_slots where slot_name = %s",
        (slot,),
    ).fetchone()
    if row is None:
        return None
    if row[3] != "pgoutput":
        raise CaptureError(f"slot {slot!r} uses {row[3]!r}, not pgoutput")
    if row[4] == "lost" or row[0] is None:
        # max_slot_wal_keep_size let the server remove WAL the slot still needed
        raise CaptureError(
            f"slot {slot!r} has lost WAL it had not streamed (wal_status=lost: it fell more "
            f"than max_slot_wal_keep_size behind). Changes were skipped: drop the slot "
            f"(select pg_drop_replication_slot('{slot}')) and restart the capture for a new "
            f"snapshot; the reconciliation check then confirms staging matches the source."
        )
    return SlotPosition(pgoutput.parse_lsn(row[0]), pgoutput.parse_lsn(row[1]), row[2])


class ReplicationSession:
    """One replication connection (``replication=database``)."""

    def __init__(self, conn: pq.PGconn) -> None:
        self._conn = conn

    @classmethod
    def connect(cls, dsn: str, prefix: str) -> ReplicationSession:
        conninfo = make_conninfo(
            dsn,
            replication="database",
            options=SESSION_OPTIONS,
            application_name=f"{prefix}-cdc-capture",
        )
        conn = pq.PGconn.connect(conninfo.encode())
        if conn.status != pq.ConnStatus.OK:
            message = conn.get_error_message()
            conn.finish()
            raise CaptureError(f"replication connection failed: {message}")
        return cls(conn)

    @property
    def ok(self) -> bool:
        return self._conn.status == pq.ConnStatus.OK

    def create_slot(self, slot: str) -> tuple[int, str]:
        """Create the pgoutput slot; returns its consistent point and the exported snapshot."""
        result = self._exec(
            f'CREATE_REPLICATION_SLOT "{slot}" LOGICAL pgoutput EXPORT_SNAPSHOT',
            pq.ExecStatus.TUPLES_OK,
        )
        consistent = pgoutput.parse_lsn(result.get_value(0, 1).decode())
        exported = result.get_value(0, 2).decode()
        return consistent, exported

    def start(self, slot: str, publication: str, start_lsn: int) -> None:
        """Start streaming the slot (from its confirmed position when `start_lsn` is 0)."""
        quoted = publication.replace("'", "''").replace('"', '""')
        self._exec(
            f'START_REPLICATION SLOT "{slot}" LOGICAL {pgoutput.format_lsn(start_lsn)} '
            f"(proto_version '1', publication_names '\"{quoted}\"')",
            pq.ExecStatus.COPY_BOTH,
        )
        self._conn.nonblocking = 1

    def frames(self, limit: int) -> Iterator[bytes]:
        """The frames that have arrived (at most `limit`), without waiting for more."""
        conn = self._conn
        conn.consume_input()
        for _ in range(limit):
            size, data = conn.get_copy_data(1)
            if size > 0:
                yield bytes(data)
                continue
            if size == 0:
                return
            result = conn.get_result()
            message = result.get_error_message() if result is not None else ""
            raise CaptureError(f"replication stream ended: {message or conn.get_error_message()}")

    def wait_readable(self, timeout: float) -> None:
        select.select([self._conn.socket], [], [], timeout)

    def send_status(self, received: int, confirmed: int, reply: bool) -> None:
        """Report `received` as written and confirm `confirmed` as flushed and applied."""
        conn = self._conn
        frame = pgoutput.standby_status_update(received, confirmed, confirmed, reply=reply)
        conn.put_copy_data(frame)
        while conn.flush() == 1:
            select.select([], [conn.socket], [], 1.0)

    def close(self) -> None:
        self._conn.finish()

    def _exec(self, command: str, expect: pq.ExecStatus) -> pq.PGresult:
        result = self._conn.exec_(command.encode())
        if result.status != expect:
            raise CaptureError(
                f"{command.split()[0]} failed: {result.get_error_message() or result.status.name}"
            )
        return result
