"""Hostile CDC records (streaming/cdc/bridge_records.py): every one is a `PoisonRecord` with a
clear reason, never another exception, and whatever is accepted fits the raw table.

The bridge dead-letters a PoisonRecord and carries on; any other exception would stop it and,
because the record's offset is not committed, stop it again after every restart. The same
records go through the real bridge and Kafka in tests/streaming/test_cdc_bridge.py.
"""

from __future__ import annotations

import base64
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from platform_core.raw.schema import raw_table
from streaming.cdc import bridge_records
from streaming.cdc.bridge_records import PoisonRecord, read_change
from streaming.cdc.debezium import build_envelope, parse_record
from streaming.raw.writer import RawWriteError, to_arrow

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
KEY = b'{"order_id": 1}'


def good_value(**source: Any) -> dict[str, Any]:
    _, value = build_envelope(
        prefix="shop",
        db="shop",
        schema="public",
        table="orders",
        op="c",
        key_columns=("order_id",),
        before=None,
        after={"order_id": 1, "status": "paid"},
        lsn=1000,
        tx_id=7,
        commit_ts=NOW,
    )
    document = json.loads(value)
    document["source"].update(source)
    return document


def read(key: bytes | None, value: bytes | None) -> Any:
    return read_change(
        key, value, ingested_at=NOW, topic="shop.public.orders", partition=0, offset=5
    )


def wrapped_decimal(encoded: Any, parameters: Any = None) -> dict[str, Any]:
    """A JsonConverter record with schemas: total_amount as a Kafka Connect Decimal."""
    payload = good_value()
    payload["after"] = {"order_id": 1, "total_amount": encoded}
    field = {"field": "total_amount", "name": "org.apache.kafka.connect.data.Decimal"}
    field["parameters"] = {"scale": "2"} if parameters is None else parameters
    schema = {"type": "struct", "fields": [{"field": "after", "fields": [field]}]}
    return {"schema": schema, "payload": payload}


DEEP = b"[" * 100_000 + b"]" * 100_000

# (case, key, value, what the reason must say)
HOSTILE: list[tuple[str, bytes | None, bytes, str]] = [
    (
        "ts_ms 1e20 (float)",
        KEY,
        b'{"op":"c","after":{},"source":{"table":"orders","lsn":1,"ts_ms":1e20}}',
        "ts_ms",
    ),
    ("ts_ms 10**20", KEY, json.dumps(good_value(ts_ms=10**20)).encode(), "ts_ms"),
    ('txId "x"', KEY, json.dumps(good_value(txId="x")).encode(), "txId"),
    ("txId {}", KEY, json.dumps(good_value(txId={})).encode(), "txId"),
    ("txId 2**64", KEY, json.dumps(good_value(txId=2**64)).encode(), "tx_id"),
    ('"schema": "x"', KEY, json.dumps({"schema": "x", "payload": good_value()}).encode(), "schema"),
    (
        "schema fields not a list",
        KEY,
        json.dumps({"schema": {"fields": 3}, "payload": good_value()}).encode(),
        "fields",
    ),
    ("decimal not base64", KEY, json.dumps(wrapped_decimal("***")).encode(), "base64"),
    (
        "decimal scale not a number",
        KEY,
        json.dumps(wrapped_decimal("CfY=", {"scale": "x"})).encode(),
        "scale",
    ),
    (
        "decimal scale absurd",
        KEY,
        json.dumps(wrapped_decimal("CfY=", {"scale": 10**9})).encode(),
        "scale",
    ),
    ("100k-deep value", KEY, DEEP, "nested too deeply"),
    ("100k-deep key", DEEP, json.dumps(good_value()).encode(), "nested too deeply"),
    ("lsn 2**64", KEY, json.dumps(good_value(lsn=2**64)).encode(), "lsn"),
    ("lsn negative", KEY, json.dumps(good_value(lsn=-1)).encode(), "lsn"),
    ("lsn float", KEY, json.dumps(good_value(lsn=1.5)).encode(), "lsn"),
    (
        "snapshot lone surrogate",
        KEY,
        json.dumps(good_value(snapshot="\ud800")).encode(),
        "snapshot",
    ),
    ("unknown table", KEY, json.dumps(good_value(table="coupons")).encode(), "no raw table"),
]


@pytest.mark.parametrize(("case", "key", "value", "reason"), HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_records_are_poison_with_a_reason(
    case: str, key: Any, value: bytes, reason: str
) -> None:
    with pytest.raises(PoisonRecord) as caught:
        read(key, value)
    assert reason in caught.value.reason, caught.value.reason
    assert caught.value.kind


def test_an_lsn_of_2_64_parses_but_does_not_fit_the_raw_column() -> None:
    """Why the bridge checks the raw schema: the parser accepts the number, the sink would not
    (and would fail the whole batch, again after every restart)."""
    record = parse_record(KEY, json.dumps(good_value(lsn=2**64)).encode())
    assert record is not None and record.lsn == 2**64
    row = record.to_raw_row(ingested_at=NOW)
    # (to_arrow lets pyarrow's OverflowError through instead of its RawWriteError)
    with pytest.raises((RawWriteError, OverflowError)):
        to_arrow(raw_table("cdc_orders"), [row])


def test_any_exception_from_parsing_is_a_poison_record(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(key: Any, value: Any) -> Any:
        raise ZeroDivisionError("a parser bug")

    monkeypatch.setattr(bridge_records, "parse_record", broken)
    with pytest.raises(PoisonRecord) as caught:
        read(KEY, json.dumps(good_value()).encode())
    assert caught.value.kind == "ZeroDivisionError"
    assert caught.value.reason == "a parser bug"


def test_a_good_record_is_a_row_that_fits_the_raw_table() -> None:
    change = read(KEY, json.dumps(good_value()).encode())
    assert change.table == "cdc_orders"
    assert change.row["lsn"] == 1000 and change.row["tx_id"] == 7
    assert change.row["kafka_offset"] == 5
    assert to_arrow(raw_table("cdc_orders"), [change.row]).num_rows == 1
    # a decimal that is base64 decodes exactly (0x09F6 = 2550, scale 2)
    decoded = read(
        KEY, json.dumps(wrapped_decimal(base64.b64encode(b"\x09\xf6").decode())).encode()
    )
    assert json.loads(decoded.row["after"])["total_amount"] == "25.50"


def mutations(document: Any, rng: random.Random) -> Any:
    """The document with one value somewhere replaced by something of another shape."""
    hostile = [
        None,
        "",
        "x",
        -1,
        2**63,
        2**64,
        1e308,
        -1e20,
        True,
        [],
        {},
        [[]],
        "\ud800",
        {"a": {}},
    ]
    if isinstance(document, dict) and document and rng.random() < 0.8:
        key = rng.choice(sorted(document))
        return {**document, key: mutations(document[key], rng)}
    return rng.choice(hostile)


def test_mutated_envelopes_are_rows_that_fit_or_poison_records() -> None:
    """2,000 envelopes with one field replaced at random (fixed seed): nothing but
    PoisonRecord escapes, and every row that comes out fits its raw table."""
    rng = random.Random(12)
    outcomes = {"row": 0, "skipped": 0, "poison": 0}
    for _ in range(2000):
        document = mutations(good_value(), rng)
        try:
            change = read(KEY, json.dumps(document).encode())
        except PoisonRecord:
            outcomes["poison"] += 1
            continue
        if change is None:
            outcomes["skipped"] += 1
            continue
        to_arrow(raw_table(change.table), [change.row])  # raises if it does not fit
        outcomes["row"] += 1
    assert outcomes["poison"] > 100 and outcomes["row"] > 100, outcomes
