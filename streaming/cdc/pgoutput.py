"""Decode PostgreSQL's pgoutput logical replication messages (protocol version 1).

One function per message type, each taking the message bytes as they arrive in an XLogData
('w') frame of the streaming replication protocol. Column values arrive in text form and are
turned into the Python values the snapshot reader gets from the driver (int, Decimal, bool,
datetime, date, str), so a row renders the same whether it was read or streamed.

Reference: "Logical Replication Message Formats" in the PostgreSQL manual.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)

_I8 = struct.Struct("!b")
_I16 = struct.Struct("!h")
_I32 = struct.Struct("!i")
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_BEGIN = struct.Struct("!Qqi")  # final lsn, commit timestamp, xid
_COMMIT = struct.Struct("!bQQq")  # flags, commit lsn, end lsn, commit timestamp
_XLOGDATA = struct.Struct("!QQq")  # data start, wal end, send time
_KEEPALIVE = struct.Struct("!Qq?")  # wal end, send time, reply requested


class PgOutputError(ValueError):
    """A replication message that does not follow the pgoutput protocol."""


def pg_timestamp(micros: int) -> datetime:
    """A protocol timestamp (microseconds since 2000-01-01 UTC) as an aware datetime."""
    return PG_EPOCH + timedelta(microseconds=micros)


def to_pg_micros(moment: datetime) -> int:
    return (moment - PG_EPOCH) // timedelta(microseconds=1)


def format_lsn(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def parse_lsn(text: str) -> int:
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) | int(low, 16)


# --- values --------------------------------------------------------------------------------


def _bool(text: str) -> bool:
    return text == "t"


def _numeric(text: str) -> Decimal | str:
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def _timestamptz(text: str) -> datetime | str:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return text  # infinity, BC dates, years past 9999


def _timestamp(text: str) -> datetime | str:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError:
        return text


def _date(text: str) -> date | str:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return text


def _float(text: str) -> float:
    return float(text)


# type oid -> text parser (pg_type.oid values are fixed for built-in types)
TEXT_PARSERS: dict[int, Callable[[str], Any]] = {
    16: _bool,  # bool
    20: int,  # int8
    21: int,  # int2
    23: int,  # int4
    26: int,  # oid
    700: _float,  # float4
    701: _float,  # float8
    1700: _numeric,  # numeric
    1082: _date,  # date
    1114: _timestamp,  # timestamp (no time zone: taken as UTC, as Debezium does)
    1184: _timestamptz,  # timestamptz
}


def parse_text_value(type_oid: int, text: str) -> Any:
    parser = TEXT_PARSERS.get(type_oid)
    return parser(text) if parser else text


# --- messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    name: str
    type_oid: int
    flags: int  # 1: part of the replica identity (every column under REPLICA IDENTITY FULL)


@dataclass(frozen=True)
class Relation:
    relation_id: int
    schema: str
    table: str
    replica_identity: str  # d default, n nothing, f full, i index
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    commit_time: datetime
    xid: int


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int
    commit_time: datetime


@dataclass(frozen=True)
class Change:
    """Insert ('c'), update ('u') or delete ('d') of one row."""

    relation_id: int
    op: str
    old: list[tuple[str, Any]] | None  # (kind, value) per column; kind n/u/t
    new: list[tuple[str, Any]] | None


@dataclass(frozen=True)
class Truncate:
    relation_ids: tuple[int, ...]
    cascade: bool
    restart_identity: bool


@dataclass(frozen=True)
class Other:
    """Origin, Type and logical decoding messages: nothing a change event is made of."""

    kind: str


Message = Relation | Begin | Commit | Change | Truncate | Other


def _cstring(data: bytes, pos: int) -> tuple[str, int]:
    end = data.index(b"\0", pos)
    return data[pos:end].decode(), end + 1


_T, _N, _U, _B = ord("t"), ord("n"), ord("u"), ord("b")


def _tuple(data: bytes, pos: int) -> tuple[list[tuple[str, Any]], int]:
    (count,) = _I16.unpack_from(data, pos)
    pos += 2
    values: list[tuple[str, Any]] = []
    append = values.append
    unpack = _I32.unpack_from
    for _ in range(count):
        kind = data[pos]
        pos += 1
        if kind == _T:
            (length,) = unpack(data, pos)
            pos += 4
            append(("t", data[pos : pos + length].decode()))
            pos += length
        elif kind == _N:
            append(("n", None))
        elif kind == _U:
            append(("u", None))
        elif kind == _B:
            (length,) = unpack(data, pos)
            pos += 4
            append(("b", data[pos : pos + length]))
            pos += length
        else:
            raise PgOutputError(f"unknown tuple column kind {chr(kind)!r}")
    return values, pos


def decode(data: bytes) -> Message:
    """One pgoutput message (the payload of an XLogData frame)."""
    if not data:
        raise PgOutputError("empty message")
    kind = chr(data[0])
    try:
        if kind == "B":
            final_lsn, ts, xid = _BEGIN.unpack_from(data, 1)
            return Begin(final_lsn, pg_timestamp(ts), xid & 0xFFFFFFFF)
        if kind == "C":
            _, commit_lsn, end_lsn, ts = _COMMIT.unpack_from(data, 1)
            return Commit(commit_lsn, end_lsn, pg_timestamp(ts))
        if kind == "R":
            (relation_id,) = _U32.unpack_from(data, 1)
            schema, pos = _cstring(data, 5)
            table, pos = _cstring(data, pos)
            identity = chr(data[pos])
            (ncols,) = _I16.unpack_from(data, pos + 1)
            pos += 3
            columns = []
            for _ in range(ncols):
                flags = data[pos]
                name, pos = _cstring(data, pos + 1)
                (type_oid,) = _U32.unpack_from(data, pos)
                pos += 8  # type oid, type modifier
                columns.append(Column(name, type_oid, flags))
            return Relation(relation_id, schema, table, identity, tuple(columns))
        if kind == "I":
            (relation_id,) = _U32.unpack_from(data, 1)
            if data[5:6] != b"N":
                raise PgOutputError("insert without a new tuple")
            new, _ = _tuple(data, 6)
            return Change(relation_id, "c", None, new)
        if kind == "U":
            (relation_id,) = _U32.unpack_from(data, 1)
            pos = 5
            old = None
            if data[pos : pos + 1] in (b"K", b"O"):
                old, pos = _tuple(data, pos + 1)
            if data[pos : pos + 1] != b"N":
                raise PgOutputError("update without a new tuple")
            new, _ = _tuple(data, pos + 1)
            return Change(relation_id, "u", old, new)
        if kind == "D":
            (relation_id,) = _U32.unpack_from(data, 1)
            if data[5:6] not in (b"K", b"O"):
                raise PgOutputError("delete without an old tuple")
            old, _ = _tuple(data, 6)
            return Change(relation_id, "d", old, None)
        if kind == "T":
            (count,) = _I32.unpack_from(data, 1)
            options = data[5]
            ids = struct.unpack_from(f"!{count}I", data, 6)
            return Truncate(tuple(ids), bool(options & 1), bool(options & 2))
        if kind in ("O", "Y", "M"):
            return Other(kind)
    except (struct.error, IndexError, UnicodeDecodeError) as error:
        raise PgOutputError(f"truncated or malformed {kind!r} message: {error}") from None
    raise PgOutputError(f"unknown pgoutput message type {kind!r}")


def row_values(
    relation: Relation, values: list[tuple[str, Any]], fallback: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A tuple as {column: Python value}. Unchanged TOAST values come from `fallback` (the old
    row, complete under REPLICA IDENTITY FULL)."""
    columns = relation.columns
    if len(values) != len(columns):
        raise PgOutputError(
            f"{relation.schema}.{relation.table}: tuple has {len(values)} columns, "
            f"relation {len(columns)}"
        )
    row: dict[str, Any] = {}
    parsers = TEXT_PARSERS
    for column, (kind, raw) in zip(columns, values):  # noqa: B905 - lengths checked above
        if kind == "t":
            parser = parsers.get(column.type_oid)
            row[column.name] = parser(raw) if parser else raw
        elif kind == "n":
            row[column.name] = None
        elif kind == "u":
            row[column.name] = fallback.get(column.name) if fallback else None
        else:  # binary: only with the `binary` option, which the capture does not ask for
            row[column.name] = raw
    return row


# --- replication protocol frames (CopyData payloads) --------------------------------------


@dataclass(frozen=True)
class XLogData:
    data_start: int
    wal_end: int
    send_time: int
    payload: bytes


@dataclass(frozen=True)
class Keepalive:
    wal_end: int
    send_time: int
    reply_requested: bool


def decode_frame(frame: bytes) -> XLogData | Keepalive:
    tag = frame[:1]
    if tag == b"w":
        data_start, wal_end, send_time = _XLOGDATA.unpack_from(frame, 1)
        return XLogData(data_start, wal_end, send_time, frame[25:])
    if tag == b"k":
        wal_end, send_time, reply = _KEEPALIVE.unpack_from(frame, 1)
        return Keepalive(wal_end, send_time, reply)
    raise PgOutputError(f"unknown replication frame {tag!r}")


def standby_status_update(
    write_lsn: int, flush_lsn: int, apply_lsn: int, reply: bool = False, now: datetime | None = None
) -> bytes:
    """The 'r' frame that reports (and for a logical slot: confirms) positions."""
    clock = to_pg_micros(now or datetime.now(UTC))
    return b"r" + struct.pack("!QQQq?", write_lsn, flush_lsn, apply_lsn, clock, reply)
