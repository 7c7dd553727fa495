"""Debezium change events (streaming/cdc/debezium.py): building envelopes and parsing records."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Context, Decimal
from typing import Any

import pytest

from platform_core.raw.schema import raw_table
from streaming.cdc.debezium import (
    DEBEZIUM_VERSION,
    CdcRecord,
    DebeziumParseError,
    build_envelope,
    canonical_json,
    encode_row,
    parse_record,
    topic_for,
)
from streaming.raw.writer import to_arrow

COMMIT = datetime(2025, 3, 1, 14, 30, 5, 123000, tzinfo=UTC)
EMITTED = COMMIT + timedelta(milliseconds=450)

ORDER = {
    "order_id": 100001,
    "user_id": 42,
    "status": "pending",
    "total_amount": Decimal("25.50"),
    "created_at": datetime(2025, 3, 1, 14, 30, 4, 987654, tzinfo=UTC),
    "paid_at": None,
    "ship_by": date(2025, 3, 4),
    "gift": False,
}
ORDER_ENCODED = {
    "order_id": 100001,
    "user_id": 42,
    "status": "pending",
    "total_amount": "25.50",
    "created_at": "2025-03-01T14:30:04.987654Z",
    "paid_at": None,
    "ship_by": 20151,  # days since 1970-01-01
    "gift": False,
}


def envelope(
    op: str,
    before=None,
    after=None,
    *,
    key_columns=("order_id",),
    table="orders",
    lsn=23_000_056,
    tx_id: int | None = 771,
    snapshot="false",
) -> tuple[bytes | None, bytes]:
    return build_envelope(
        prefix="shop",
        db="shop",
        schema="public",
        table=table,
        op=op,
        key_columns=key_columns,
        before=before,
        after=after,
        lsn=lsn,
        tx_id=tx_id,
        commit_ts=COMMIT,
        snapshot=snapshot,
        emitted_at=EMITTED,
    )


def value_doc(**overrides: Any) -> dict[str, Any]:
    _, value = envelope("c", after=ORDER)
    document = json.loads(value)
    document.update(overrides)
    return document


def encode(document: Any) -> bytes:
    return json.dumps(document).encode()


# --- building -------------------------------------------------------------------------------


def test_encode_row_uses_debezium_encodings():
    assert encode_row(ORDER) == ORDER_ENCODED
    assert encode_row(None) is None
    naive = encode_row({"t": datetime(2025, 3, 1, 14, 0)})
    plus_two = encode_row({"t": datetime(2025, 3, 1, 16, 0, tzinfo=timezone(timedelta(hours=2)))})
    assert naive == plus_two == {"t": "2025-03-01T14:00:00.000000Z"}


def test_build_envelope_shape():
    key, value = envelope("u", before=ORDER, after={**ORDER, "status": "paid"})
    assert json.loads(key) == {"order_id": 100001}
    document = json.loads(value)
    assert document["op"] == "u"
    assert document["ts_ms"] == int(EMITTED.timestamp() * 1000)
    assert document["transaction"] is None
    source = document["source"]
    assert source["connector"] == "postgresql" and source["version"] == DEBEZIUM_VERSION
    assert (source["name"], source["db"], source["schema"], source["table"]) == (
        "shop",
        "shop",
        "public",
        "orders",
    )
    assert source["ts_ms"] == 1740839405123
    assert (source["lsn"], source["txId"], source["snapshot"]) == (23_000_056, 771, "false")
    assert json.loads(source["sequence"]) == [None, "23000056"]
    assert document["before"] == ORDER_ENCODED
    assert document["after"]["status"] == "paid"


def test_build_envelope_rejects_unknown_op():
    with pytest.raises(ValueError, match="unknown op 'x'"):
        envelope("x", after=ORDER)


def test_topic_for():
    assert topic_for("shop", "public", "order_items") == "shop.public.order_items"


# --- round trips ----------------------------------------------------------------------------

PAID = {**ORDER, "status": "paid", "paid_at": datetime(2025, 3, 1, 14, 31, tzinfo=UTC)}


@pytest.mark.parametrize(
    ("op", "before", "after", "snapshot"),
    [
        ("c", None, ORDER, "false"),
        ("r", None, ORDER, "true"),
        ("r", None, ORDER, "last"),
        ("u", ORDER, PAID, "false"),
        ("d", ORDER, None, "false"),
    ],
)
def test_round_trip_row_ops(op, before, after, snapshot):
    record = parse_record(*envelope(op, before, after, snapshot=snapshot))
    assert isinstance(record, CdcRecord)
    assert (record.table, record.schema, record.op) == ("orders", "public", op)
    assert record.pk == '{"order_id":100001}'
    assert record.before == (canonical_json(encode_row(before)) if before else None)
    assert record.after == (canonical_json(encode_row(after)) if after else None)
    assert record.lsn == 23_000_056
    assert record.tx_id == 771
    assert record.source_ts == datetime(2025, 3, 1, 14, 30, 5, 123000)
    assert record.source_ts.tzinfo is None
    assert record.snapshot == snapshot


def test_round_trip_preserves_values():
    record = parse_record(*envelope("u", ORDER, PAID))
    assert json.loads(record.before) == ORDER_ENCODED
    after = json.loads(record.after)
    assert after["status"] == "paid"
    assert after["paid_at"] == "2025-03-01T14:31:00.000000Z"
    assert Decimal(after["total_amount"]) == Decimal("25.50")


def test_round_trip_truncate():
    key, value = envelope("t", key_columns=("order_id",), tx_id=None)
    assert key is None
    record = parse_record(key, value)
    assert record.op == "t"
    assert (record.pk, record.before, record.after, record.tx_id) == (None, None, None, None)
    assert record.table == "orders" and record.lsn == 23_000_056


def test_truncate_ignores_a_key_if_one_is_sent():
    _, value = envelope("t")
    assert parse_record(b'{"order_id":1}', value).pk is None


def test_round_trip_composite_key():
    line = {
        "order_id": 100001,
        "line_number": 2,
        "product_id": 7,
        "quantity": 1,
        "unit_price": Decimal("9.99"),
    }
    key, value = envelope(
        "c", after=line, key_columns=("order_id", "line_number"), table="order_items"
    )
    record = parse_record(key, value)
    assert record.pk == '{"line_number":2,"order_id":100001}'
    assert record.table == "order_items"


def test_row_json_is_canonical():
    record = parse_record(*envelope("c", after={"b": 1, "a": {"d": 2, "c": 3}}, key_columns=("b",)))
    assert record.after == '{"a":{"c":3,"d":2},"b":1}'


# --- records that carry no change ---------------------------------------------------------------


def test_tombstone_is_skipped():
    assert parse_record(b'{"order_id":100001}', None) is None


@pytest.mark.parametrize(
    "document",
    [
        {
            "status": "BEGIN",
            "id": "571:53195829",
            "event_count": None,
            "data_collections": None,
            "ts_ms": 1740839405123,
        },
        {
            "status": "END",
            "id": "571:53195829",
            "event_count": 2,
            "data_collections": [
                {"data_collection": "public.orders", "event_count": 1},
                {"data_collection": "public.order_items", "event_count": 1},
            ],
            "ts_ms": 1740839405130,
        },
    ],
)
def test_transaction_metadata_is_skipped(document):
    assert parse_record(b'{"id":"571:53195829"}', encode(document)) is None
    schema = {
        "type": "struct",
        "fields": [],
        "name": "io.debezium.connector.common.TransactionMetadataValue",
    }
    wrapped = {"schema": schema, "payload": document}
    assert parse_record(None, encode(wrapped)) is None


def test_heartbeat_is_skipped():
    key = b'{"serverName":"shop"}'
    assert parse_record(key, b'{"ts_ms":1740839405123}') is None
    wrapped = {
        "schema": {
            "type": "struct",
            "optional": False,
            "name": "io.debezium.connector.common.Heartbeat",
            "fields": [{"type": "int64", "optional": False, "field": "ts_ms"}],
        },
        "payload": {"ts_ms": 1740839405123},
    }
    assert parse_record(key, encode(wrapped)) is None


# --- JsonConverter schema wrapper: a real-looking PostgreSQL connector record -------------------


def unscaled_base64(value: Decimal, scale: int) -> str:
    """Kafka Connect Decimal: big-endian two's complement of the unscaled value, base64."""
    unscaled = int(value.scaleb(scale, context=Context(prec=100)))
    length = max(1, (unscaled.bit_length() + 8) // 8)
    return base64.b64encode(unscaled.to_bytes(length, "big", signed=True)).decode()


def micros(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def test_decimal_helper_matches_known_encodings():
    assert unscaled_base64(Decimal("25.50"), 2) == "CfY="  # 2550 = 0x09F6
    assert base64.b64decode("CfY=") == (2550).to_bytes(2, "big")
    assert unscaled_base64(Decimal("2.30"), 2) == "AOY="  # 230 = 0x00E6, sign byte needed
    assert unscaled_base64(Decimal("-25.50"), 2) == "9go="


def row_schema(field: str, extra: list[dict] | None = None) -> dict:
    return {
        "type": "struct",
        "fields": [
            {"type": "int64", "optional": False, "default": 0, "field": "order_id"},
            {"type": "int64", "optional": True, "field": "user_id"},
            {"type": "string", "optional": False, "field": "status"},
            {
                "type": "bytes",
                "optional": False,
                "name": "org.apache.kafka.connect.data.Decimal",
                "version": 1,
                "parameters": {"scale": "2", "connect.decimal.precision": "12"},
                "field": "total_amount",
            },
            {
                "type": "int64",
                "optional": False,
                "name": "io.debezium.time.MicroTimestamp",
                "version": 1,
                "field": "created_at",
            },
            {
                "type": "string",
                "optional": True,
                "name": "io.debezium.time.ZonedTimestamp",
                "version": 1,
                "field": "paid_at",
            },
            *(extra or []),
        ],
        "optional": True,
        "name": "shop.public.orders.Value",
        "field": field,
    }


def envelope_schema(extra: list[dict] | None = None) -> dict:
    return {
        "type": "struct",
        "fields": [
            row_schema("before", extra),
            row_schema("after", extra),
            {
                "type": "struct",
                "fields": [
                    {"type": "string", "optional": False, "field": "version"},
                    {"type": "string", "optional": False, "field": "connector"},
                    {"type": "string", "optional": False, "field": "name"},
                    {"type": "int64", "optional": False, "field": "ts_ms"},
                    {
                        "type": "string",
                        "optional": True,
                        "name": "io.debezium.data.Enum",
                        "version": 1,
                        "parameters": {"allowed": "true,last,false,incremental"},
                        "default": "false",
                        "field": "snapshot",
                    },
                    {"type": "string", "optional": False, "field": "db"},
                    {"type": "string", "optional": True, "field": "sequence"},
                    {"type": "int64", "optional": True, "field": "ts_us"},
                    {"type": "int64", "optional": True, "field": "ts_ns"},
                    {"type": "string", "optional": False, "field": "schema"},
                    {"type": "string", "optional": False, "field": "table"},
                    {"type": "int64", "optional": True, "field": "txId"},
                    {"type": "int64", "optional": True, "field": "lsn"},
                    {"type": "int64", "optional": True, "field": "xmin"},
                ],
                "optional": False,
                "name": "io.debezium.connector.postgresql.Source",
                "field": "source",
            },
            {"type": "string", "optional": False, "field": "op"},
            {"type": "int64", "optional": True, "field": "ts_ms"},
            {
                "type": "struct",
                "fields": [
                    {"type": "string", "optional": False, "field": "id"},
                    {"type": "int64", "optional": False, "field": "total_order"},
                    {"type": "int64", "optional": False, "field": "data_collection_order"},
                ],
                "optional": True,
                "name": "event.block",
                "version": 1,
                "field": "transaction",
            },
        ],
        "optional": False,
        "name": "shop.public.orders.Envelope",
        "version": 1,
    }


CREATED = datetime(2025, 3, 1, 14, 30, 4, 987654, tzinfo=UTC)


def pg_update_record() -> tuple[bytes, bytes]:
    """A status update of one order as Debezium 2.7's PostgreSQL connector emits it through
    JsonConverter with schemas.enable=true and decimal.handling.mode=precise."""
    before = {
        "order_id": 100001,
        "user_id": 42,
        "status": "pending",
        "total_amount": "AOY=",
        "created_at": micros(CREATED),
        "paid_at": None,
    }
    after = {
        **before,
        "status": "paid",
        "total_amount": unscaled_base64(Decimal("25.50"), 2),
        "paid_at": "2025-03-01T14:31:00.000000Z",
    }
    value = {
        "schema": envelope_schema(),
        "payload": {
            "before": before,
            "after": after,
            "source": {
                "version": "2.7.3.Final",
                "connector": "postgresql",
                "name": "shop",
                "ts_ms": 1740839405123,
                "snapshot": "false",
                "db": "shop",
                "sequence": '["23000000","23000056"]',
                "ts_us": 1740839405123456,
                "ts_ns": 1740839405123456000,
                "schema": "public",
                "table": "orders",
                "txId": 771,
                "lsn": 23000056,
                "xmin": None,
            },
            "op": "u",
            "ts_ms": 1740839405573,
            "transaction": None,
        },
    }
    key = {
        "schema": {
            "type": "struct",
            "optional": False,
            "name": "shop.public.orders.Key",
            "fields": [{"type": "int64", "optional": False, "field": "order_id"}],
        },
        "payload": {"order_id": 100001},
    }
    return encode(key), encode(value)


def test_schema_wrapped_postgres_record_decodes_logical_types():
    record = parse_record(*pg_update_record())
    assert record.op == "u" and record.table == "orders" and record.schema == "public"
    assert record.pk == '{"order_id":100001}'
    assert (record.lsn, record.tx_id, record.snapshot) == (23000056, 771, "false")
    assert record.source_ts == datetime(2025, 3, 1, 14, 30, 5, 123000)
    after = json.loads(record.after)
    before = json.loads(record.before)
    assert after["total_amount"] == "25.50"
    assert before["total_amount"] == "2.30"
    assert after["created_at"] == before["created_at"] == "2025-03-01T14:30:04.987654Z"
    assert after["paid_at"] == "2025-03-01T14:31:00.000000Z"  # ZonedTimestamp is already text
    assert after["status"] == "paid" and after["user_id"] == 42


def test_schema_wrapped_record_matches_schemaless_build():
    """The same change through either converter setting lands as the same raw row."""
    wrapped = parse_record(*pg_update_record())
    paid = {
        "order_id": 100001,
        "user_id": 42,
        "status": "paid",
        "total_amount": Decimal("25.50"),
        "created_at": CREATED,
        "paid_at": datetime(2025, 3, 1, 14, 31, tzinfo=UTC),
    }
    plain = parse_record(
        *envelope(
            "u",
            before={**paid, "status": "pending", "total_amount": Decimal("2.30"), "paid_at": None},
            after=paid,
            lsn=23000056,
        )
    )
    assert (wrapped.pk, wrapped.before, wrapped.after) == (plain.pk, plain.before, plain.after)


@pytest.mark.parametrize(
    ("name", "params", "raw", "expected"),
    [
        ("org.apache.kafka.connect.data.Decimal", {"scale": "2"}, "9go=", "-25.50"),
        ("org.apache.kafka.connect.data.Decimal", {"scale": "2"}, "AA==", "0.00"),
        ("org.apache.kafka.connect.data.Decimal", {"scale": "2"}, "BQ==", "0.05"),
        ("org.apache.kafka.connect.data.Decimal", {"scale": "0"}, "AOY=", "230"),
        ("io.debezium.data.VariableScaleDecimal", None, {"scale": 2, "value": "CfY="}, "25.50"),
        ("io.debezium.time.Timestamp", None, 1740839405123, "2025-03-01T14:30:05.123000Z"),
        ("io.debezium.time.MicroTimestamp", None, -1, "1969-12-31T23:59:59.999999Z"),
    ],
)
def test_logical_type_decoding(name, params, raw, expected):
    extra = [
        {
            "type": "bytes",
            "optional": True,
            "name": name,
            "field": "amount",
            **({"parameters": params} if params else {}),
        }
    ]
    _, value = pg_update_record()
    document = json.loads(value)
    document["schema"] = envelope_schema(extra)
    document["payload"]["after"]["amount"] = raw
    document["payload"]["before"]["amount"] = None
    record = parse_record(None, encode(document))
    assert json.loads(record.after)["amount"] == expected
    assert json.loads(record.before)["amount"] is None
    assert record.pk is None


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # "valid until" sentinels
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_micro_timestamp_far_future_is_exact(moment):
    """MicroTimestamp is an integer count of microseconds; decoding it through a float division
    loses precision past 2106 (2999-12-31 23:59:59.999999 became 3000-01-01, and the 9999
    sentinel raised a bare ValueError)."""
    _, value = pg_update_record()
    document = json.loads(value)
    document["payload"]["after"]["created_at"] = micros(moment)
    record = parse_record(None, encode(document))
    assert json.loads(record.after)["created_at"] == moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_large_decimal_keeps_every_digit():
    """numeric(38,2) is legal in PostgreSQL; decoding must not round to the default 28-digit
    decimal context nor switch to exponent notation."""
    amount = Decimal("123456789012345678901234567890123.45")
    _, value = pg_update_record()
    document = json.loads(value)
    document["payload"]["after"]["total_amount"] = unscaled_base64(amount, 2)
    record = parse_record(None, encode(document))
    assert json.loads(record.after)["total_amount"] == "123456789012345678901234567890123.45"


def test_key_with_schema_wrapper_unwraps():
    key = {
        "schema": {
            "type": "struct",
            "fields": [
                {"type": "int64", "optional": False, "field": "order_id"},
                {"type": "int32", "optional": False, "field": "line_number"},
            ],
        },
        "payload": {"order_id": 1, "line_number": 2},
    }
    _, value = envelope("c", after=ORDER)
    assert parse_record(encode(key), value).pk == '{"line_number":2,"order_id":1}'


def test_composite_plain_key_is_canonical():
    _, value = envelope("c", after=ORDER)
    a = parse_record(b'{"order_id":1,"line_number":2}', value).pk
    b = parse_record(b'{ "line_number": 2, "order_id": 1 }', value).pk
    assert a == b == '{"line_number":2,"order_id":1}'


def test_missing_key_gives_null_pk():
    _, value = envelope("c", after=ORDER)
    assert parse_record(None, value).pk is None


def test_snapshot_flag_is_normalised_to_lowercase_text():
    document = value_doc()
    document["source"]["snapshot"] = True
    assert parse_record(None, encode(document)).snapshot == "true"
    document["source"]["snapshot"] = None
    assert parse_record(None, encode(document)).snapshot is None


def test_missing_schema_name_defaults_to_public():
    document = value_doc()
    del document["source"]["schema"]
    assert parse_record(None, encode(document)).schema == "public"


# --- poison records -------------------------------------------------------------------------------


def poison(doc_or_bytes: Any, key: bytes | None = b'{"order_id":100001}') -> str:
    value = doc_or_bytes if isinstance(doc_or_bytes, bytes) else encode(doc_or_bytes)
    with pytest.raises(DebeziumParseError) as caught:
        parse_record(key, value)
    return str(caught.value)


def without_source_field(name: str) -> dict:
    document = value_doc()
    del document["source"][name]
    return document


def with_source(**fields: Any) -> dict:
    document = value_doc()
    document["source"].update(fields)
    return document


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"\x00\x9f not json", "value is not JSON"),
        (b'{"op": "c", "after": {', "value is not JSON"),
        (b"[1, 2, 3]", "value must be a JSON object"),
        (b'"c"', "value must be a JSON object"),
        (value_doc(op=None), "unknown or missing op None"),
        ({k: v for k, v in value_doc().items() if k != "op"}, "unknown or missing op None"),
        (value_doc(op="x"), "unknown or missing op 'x'"),
        (value_doc(op="C"), "unknown or missing op 'C'"),
        ({k: v for k, v in value_doc().items() if k != "source"}, "missing source block"),
        (value_doc(source="shop.public.orders"), "missing source block"),
        (without_source_field("table"), "source.table is missing"),
        (value_doc(op="u", before=ORDER_ENCODED, after=None), "op 'u' without 'after'"),
        (value_doc(op="c", after=None), "op 'c' without 'after'"),
        (value_doc(op="r", after=None), "op 'r' without 'after'"),
        (value_doc(op="d", before=None, after=None), "delete without 'before'"),
        (with_source(lsn="0/16B3748"), "source.lsn and source.ts_ms must be integers"),
        (with_source(lsn=None), "source.lsn and source.ts_ms must be integers"),
        (without_source_field("lsn"), "source.lsn and source.ts_ms must be integers"),
        (with_source(ts_ms="yesterday"), "source.lsn and source.ts_ms must be integers"),
        (value_doc(after=[1, 2]), "'after' must be an object or null"),
    ],
)
def test_poison_records_raise_a_clear_error(value, message):
    assert message in poison(value)


def test_poison_keys_raise_a_clear_error():
    _, value = envelope("c", after=ORDER)
    assert "key is not JSON" in poison(value, key=b"order-100001")
    assert "key must be a JSON object" in poison(value, key=b"[100001]")


def test_parse_error_is_a_value_error():
    assert issubclass(DebeziumParseError, ValueError)


# --- raw rows -------------------------------------------------------------------------------------


def test_to_raw_row_fills_kafka_coordinates_and_ingest_date():
    record = parse_record(*envelope("u", ORDER, PAID))
    ingested = datetime(2025, 3, 2, 1, 0, 2, tzinfo=timezone(timedelta(hours=2)))
    row = record.to_raw_row(
        ingested_at=ingested,
        kafka_topic="shop.public.orders",
        kafka_partition=3,
        kafka_offset=98765,
    )
    assert set(row) == set(raw_table("cdc_orders").column_names)
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (
        "shop.public.orders",
        3,
        98765,
    )
    assert row["ingested_at"] == datetime(2025, 3, 1, 23, 0, 2)
    assert row["ingest_date"] == date(2025, 3, 1)
    assert (row["op"], row["pk"], row["lsn"], row["tx_id"]) == (
        "u",
        '{"order_id":100001}',
        23_000_056,
        771,
    )
    assert row["before"] == record.before and row["after"] == record.after
    assert row["source_ts"] == datetime(2025, 3, 1, 14, 30, 5, 123000)
    assert row["snapshot"] == "false"
    table = to_arrow(raw_table("cdc_orders"), [row])  # fits the raw schema
    assert table.num_rows == 1


def test_to_raw_row_defaults_and_naive_ingest_time():
    record = parse_record(*envelope("t", tx_id=None))
    row = record.to_raw_row(ingested_at=datetime(2025, 3, 1, 23, 59, 59))
    assert (row["kafka_topic"], row["kafka_partition"], row["kafka_offset"]) == (None, None, None)
    assert row["ingested_at"] == datetime(2025, 3, 1, 23, 59, 59)
    assert row["ingest_date"] == date(2025, 3, 1)
    assert row["pk"] is None and row["before"] is None and row["after"] is None
    to_arrow(raw_table("cdc_orders"), [row])
