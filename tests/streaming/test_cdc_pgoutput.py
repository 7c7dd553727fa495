"""pgoutput protocol decoding (streaming/cdc/pgoutput.py) on hand-built messages."""

from __future__ import annotations

import struct
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from streaming.cdc import pgoutput
from streaming.cdc.pgoutput import (
    Begin,
    Change,
    Commit,
    Keepalive,
    Other,
    PgOutputError,
    Relation,
    Truncate,
    XLogData,
    decode,
    decode_frame,
    format_lsn,
    parse_lsn,
    row_values,
    standby_status_update,
)

COMMIT_TIME = datetime(2026, 11, 20, 10, 30, 5, 123456, tzinfo=UTC)
PG_MICROS = pgoutput.to_pg_micros(COMMIT_TIME)
ORDERS = [
    ("order_id", 20, 1),
    ("status", 25, 1),
    ("total_amount", 1700, 1),
    ("paid_at", 1184, 1),
    ("gift", 16, 1),
    ("ship_by", 1082, 1),
    ("quantity", 23, 1),
]


def cstr(text: str) -> bytes:
    return text.encode() + b"\0"


def relation_message(relation_id: int = 16384, columns=ORDERS) -> bytes:
    body = struct.pack("!I", relation_id) + cstr("public") + cstr("orders") + b"f"
    body += struct.pack("!h", len(columns))
    for name, oid, flags in columns:
        body += bytes([flags]) + cstr(name) + struct.pack("!Ii", oid, -1)
    return b"R" + body


def tuple_data(*values: str | None, unchanged: tuple[int, ...] = ()) -> bytes:
    out = struct.pack("!h", len(values))
    for index, value in enumerate(values):
        if index in unchanged:
            out += b"u"
        elif value is None:
            out += b"n"
        else:
            raw = value.encode()
            out += b"t" + struct.pack("!i", len(raw)) + raw
    return out


ROW_TEXT = ("100001", "paid", "25.50", "2026-11-20 10:30:04.987654+00", "t", "2026-11-23", "3")
ROW = {
    "order_id": 100001,
    "status": "paid",
    "total_amount": Decimal("25.50"),
    "paid_at": datetime(2026, 11, 20, 10, 30, 4, 987654, tzinfo=UTC),
    "gift": True,
    "ship_by": date(2026, 11, 23),
    "quantity": 3,
}


def test_begin_and_commit() -> None:
    begin = decode(b"B" + struct.pack("!Qqi", 0x1_0000_0200, PG_MICROS, 771))
    assert begin == Begin(final_lsn=0x1_0000_0200, commit_time=COMMIT_TIME, xid=771)
    commit = decode(b"C" + struct.pack("!bQQq", 0, 0x200, 0x238, PG_MICROS))
    assert commit == Commit(commit_lsn=0x200, end_lsn=0x238, commit_time=COMMIT_TIME)


def test_relation_lists_columns_with_types() -> None:
    relation = decode(relation_message())
    assert isinstance(relation, Relation)
    assert (relation.relation_id, relation.schema, relation.table) == (16384, "public", "orders")
    assert relation.replica_identity == "f"
    assert [(c.name, c.type_oid) for c in relation.columns] == [(n, o) for n, o, _ in ORDERS]


def test_insert_values_become_python_values() -> None:
    relation = decode(relation_message())
    change = decode(b"I" + struct.pack("!I", 16384) + b"N" + tuple_data(*ROW_TEXT))
    assert isinstance(change, Change) and change.op == "c" and change.old is None
    assert row_values(relation, change.new) == ROW


def test_update_with_full_old_row_and_unchanged_toast() -> None:
    relation = decode(relation_message())
    old = tuple_data(*ROW_TEXT)
    new = tuple_data(
        "100001", "shipped", None, "2026-11-20 10:30:04.987654+00", "f", None, None, unchanged=(6,)
    )
    change = decode(b"U" + struct.pack("!I", 16384) + b"O" + old + b"N" + new)
    assert isinstance(change, Change) and change.op == "u"
    before = row_values(relation, change.old)
    after = row_values(relation, change.new, before)
    assert before == ROW
    assert after == {
        **ROW,
        "status": "shipped",
        "total_amount": None,
        "gift": False,
        "ship_by": None,
        "quantity": 3,
    }  # quantity: unchanged TOAST from before


def test_update_without_old_row() -> None:
    change = decode(b"U" + struct.pack("!I", 7) + b"N" + tuple_data("1"))
    assert change == Change(7, "u", None, [("t", "1")])


def test_delete_needs_an_old_row() -> None:
    change = decode(b"D" + struct.pack("!I", 16384) + b"O" + tuple_data(*ROW_TEXT))
    assert isinstance(change, Change) and change.op == "d" and change.new is None
    with pytest.raises(PgOutputError, match="old tuple"):
        decode(b"D" + struct.pack("!I", 16384) + b"N" + tuple_data("1"))


def test_truncate_lists_relations_and_options() -> None:
    message = decode(b"T" + struct.pack("!iB", 2, 3) + struct.pack("!II", 16384, 16390))
    assert message == Truncate((16384, 16390), cascade=True, restart_identity=True)


def test_messages_without_changes() -> None:
    assert decode(b"O" + struct.pack("!Q", 1) + cstr("origin")) == Other("O")
    assert decode(b"Y" + struct.pack("!I", 1) + cstr("public") + cstr("mood")) == Other("Y")


@pytest.mark.parametrize(
    "data,match",
    [
        (b"", "empty"),
        (b"Z123", "unknown pgoutput message"),
        (b"B\x00\x01", "truncated or malformed"),
        (b"I" + struct.pack("!I", 1) + b"N" + struct.pack("!h", 1) + b"x", "unknown tuple column"),
        (b"I" + struct.pack("!I", 1) + b"X", "new tuple"),
    ],
)
def test_malformed_messages_raise(data: bytes, match: str) -> None:
    with pytest.raises(PgOutputError, match=match):
        decode(data)


def test_tuple_width_must_match_the_relation() -> None:
    relation = decode(relation_message())
    with pytest.raises(PgOutputError, match="columns"):
        row_values(relation, [("t", "1")])


@pytest.mark.parametrize(
    "oid,text,expected",
    [
        (20, "-9223372036854775808", -9223372036854775808),
        (21, "7", 7),
        (1700, "12.500", Decimal("12.500")),
        (1700, "NaN", Decimal("NaN")),
        (16, "f", False),
        (701, "1.5", 1.5),
        (
            1184,
            "2026-11-20 12:00:00+02",
            datetime(2026, 11, 20, 12, tzinfo=timezone(timedelta(hours=2))),
        ),
        (1184, "infinity", "infinity"),
        (1114, "2026-11-20 12:00:00.5", datetime(2026, 11, 20, 12, 0, 0, 500000, tzinfo=UTC)),
        (1082, "2026-11-20", date(2026, 11, 20)),
        (1082, "-infinity", "-infinity"),
        (25, "plain text", "plain text"),
        (3802, '{"a": 1}', '{"a": 1}'),  # jsonb stays text, as Debezium's io.debezium.data.Json
    ],
)
def test_text_values_by_type(oid: int, text: str, expected: object) -> None:
    value = pgoutput.parse_text_value(oid, text)
    if isinstance(expected, Decimal) and expected.is_nan():
        assert isinstance(value, Decimal) and value.is_nan()
    else:
        assert value == expected and type(value) is type(expected)


def test_replication_frames() -> None:
    frame = b"w" + struct.pack("!QQq", 0x500, 0x600, PG_MICROS) + b"B..."
    assert decode_frame(frame) == XLogData(0x500, 0x600, PG_MICROS, b"B...")
    keepalive = b"k" + struct.pack("!Qq?", 0x700, PG_MICROS, True)
    assert decode_frame(keepalive) == Keepalive(0x700, PG_MICROS, True)
    with pytest.raises(PgOutputError):
        decode_frame(b"x")


def test_standby_status_update_layout() -> None:
    frame = standby_status_update(0x30, 0x20, 0x10, reply=True, now=COMMIT_TIME)
    assert frame[:1] == b"r"
    assert struct.unpack("!QQQq?", frame[1:]) == (0x30, 0x20, 0x10, PG_MICROS, True)


def test_lsn_text_round_trip() -> None:
    assert parse_lsn("16/B374D848") == 0x16_B374D848
    assert format_lsn(0x16_B374D848) == "16/B374D848"
    assert format_lsn(parse_lsn("0/0")) == "0/0"
