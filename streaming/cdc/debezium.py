"""Debezium change-event envelopes: build them (local capture, demo loader) and parse them.

`parse_record` accepts what Debezium's PostgreSQL connector really emits through Kafka
Connect's JsonConverter, with or without the schema/payload wrapper, and turns one Kafka
record into the raw CDC row it stands for.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

OPS = ("c", "u", "d", "r", "t")
DEBEZIUM_VERSION = "2.7.3.Final"


class DebeziumParseError(ValueError):
    """A Kafka record that is not a readable Debezium change event."""


@dataclass(frozen=True)
class CdcRecord:
    table: str
    schema: str
    op: str
    pk: str | None
    before: str | None
    after: str | None
    lsn: int
    tx_id: int | None
    source_ts: datetime
    snapshot: str | None

    def to_raw_row(
        self,
        *,
        ingested_at: datetime,
        kafka_topic: str | None = None,
        kafka_partition: int | None = None,
        kafka_offset: int | None = None,
    ) -> dict[str, Any]:
        ingested = (
            ingested_at.astimezone(UTC).replace(tzinfo=None) if ingested_at.tzinfo else ingested_at
        )
        return {
            "op": self.op,
            "pk": self.pk,
            "before": self.before,
            "after": self.after,
            "lsn": self.lsn,
            "tx_id": self.tx_id,
            "source_ts": self.source_ts,
            "snapshot": self.snapshot,
            "kafka_topic": kafka_topic,
            "kafka_partition": kafka_partition,
            "kafka_offset": kafka_offset,
            "ingested_at": ingested,
            "ingest_date": ingested.date(),
        }


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
_COMPACT = json.JSONEncoder(separators=(",", ":"))
_DECODE = json.JSONDecoder().decode


def canonical_json(value: Any) -> str:
    return _CANONICAL.encode(value)


# --- building ------------------------------------------------------------------------------


def encode_value(value: Any) -> Any:
    """A column value as Debezium encodes it with decimal.handling.mode=string."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        utc = aware.astimezone(UTC)
        if utc.year >= 1000:  # same text as the strftime below, faster
            return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # ZonedTimestamp
    if isinstance(value, date):
        return (value - date(1970, 1, 1)).days  # io.debezium.time.Date
    return value


def encode_row(row: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if row is None else {k: encode_value(v) for k, v in row.items()}


def topic_for(prefix: str, schema: str, table: str) -> str:
    return f"{prefix}.{schema}.{table}"


def build_envelope(
    *,
    prefix: str,
    db: str,
    schema: str,
    table: str,
    op: str,
    key_columns: tuple[str, ...],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    lsn: int,
    tx_id: int | None,
    commit_ts: datetime,
    snapshot: str = "false",
    emitted_at: datetime | None = None,
) -> tuple[bytes | None, bytes]:
    """Key and value bytes of one change event, schemaless JSON as Debezium emits them."""
    if op not in OPS:
        raise ValueError(f"unknown op {op!r}")
    row = after if after is not None else before
    key = None
    if op != "t" and row is not None and key_columns:
        key = json.dumps({c: encode_value(row[c]) for c in key_columns}).encode()
    if commit_ts.tzinfo is None:
        commit_ts = commit_ts.replace(tzinfo=UTC)  # naive means UTC everywhere in the platform
    commit_ms = int(commit_ts.timestamp() * 1000)
    value = {
        "before": encode_row(before),
        "after": encode_row(after),
        "source": {
            "version": DEBEZIUM_VERSION,
            "connector": "postgresql",
            "name": prefix,
            "ts_ms": commit_ms,
            "snapshot": snapshot,
            "db": db,
            "sequence": f'[null, "{lsn}"]',  # json.dumps([None, str(lsn)])
            "schema": schema,
            "table": table,
            "txId": tx_id,
            "lsn": lsn,
            "xmin": None,
        },
        "op": op,
        "ts_ms": int((emitted_at or datetime.now(UTC)).timestamp() * 1000),
        "transaction": None,
    }
    return key, _COMPACT.encode(value).encode()


# --- parsing -------------------------------------------------------------------------------


def _load(data: bytes, what: str) -> Any:
    try:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return json.loads(data)  # json's own encoding detection (UTF-16/32)
        if text.startswith("\ufeff"):
            return json.loads(data)  # a UTF-8 BOM, which json.loads skips for bytes
        return _DECODE(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DebeziumParseError(f"{what} is not JSON: {error}") from None
    except RecursionError:
        # json's C scanner recurses per nesting level: 100k-deep arrays end here
        raise DebeziumParseError(f"{what} is nested too deeply to be a change event") from None


def _unwrap(document: Any) -> tuple[Any, dict[str, Any] | None]:
    """Split JsonConverter's {"schema": ..., "payload": ...} wrapper when present."""
    if isinstance(document, dict) and set(document) == {"schema", "payload"}:
        schema = document["schema"]
        if schema is not None and not isinstance(schema, dict):
            raise DebeziumParseError("'schema' of the schema/payload wrapper must be an object")
        return document["payload"], schema
    return document, None


def _field_schemas(schema: dict[str, Any] | None, name: str) -> dict[str, dict[str, Any]]:
    if not schema:
        return {}
    fields = schema.get("fields", [])
    if not isinstance(fields, list):
        raise DebeziumParseError("schema.fields must be a list")
    for envelope_field in fields:
        if isinstance(envelope_field, dict) and envelope_field.get("field") == name:
            inner = envelope_field.get("fields", [])
            if not isinstance(inner, list):
                raise DebeziumParseError(f"schema of {name!r}: fields must be a list")
            return {f["field"]: f for f in inner if isinstance(f, dict) and "field" in f}
    return {}


def _decode_logical(value: Any, field_schema: dict[str, Any] | None) -> Any:
    """Decode Kafka Connect logical types that schemaless JSON cannot express plainly."""
    if value is None or not field_schema:
        return value
    name = field_schema.get("name")
    if name == "org.apache.kafka.connect.data.Decimal" and isinstance(value, str):
        parameters = field_schema.get("parameters") or {}
        scale = parameters.get("scale", 0) if isinstance(parameters, dict) else None
        return _exact_decimal(_base64(value, name), _scale(scale, name))
    if name == "io.debezium.data.VariableScaleDecimal" and isinstance(value, dict):
        unscaled = value.get("value")
        if not isinstance(unscaled, str):
            raise DebeziumParseError(f"{name}: 'value' must be a base64 string")
        return _exact_decimal(_base64(unscaled, name), _scale(value.get("scale"), name))
    per_second = {
        "io.debezium.time.Timestamp": 1_000,
        "org.apache.kafka.connect.data.Timestamp": 1_000,
        "io.debezium.time.MicroTimestamp": 1_000_000,
        "io.debezium.time.NanoTimestamp": 1_000_000_000,
    }.get(name or "")
    if per_second and isinstance(value, int):
        # integer arithmetic: a float would round 2999-12-31 23:59:59.999999 up to 3000
        micros = value * 1_000_000 // per_second
        try:
            moment = _EPOCH + timedelta(microseconds=micros)
        except OverflowError:
            raise DebeziumParseError(f"timestamp {value} ({name}) is out of range") from None
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _base64(text: str, name: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise DebeziumParseError(f"{name}: {text[:40]!r} is not base64") from None


# PostgreSQL's numeric keeps at most 16383 digits after the point; anything beyond is not one.
_MAX_SCALE = 16383


def _scale(value: Any, name: str) -> int:
    try:
        scale = _integer(value, "scale")
    except DebeziumParseError:
        raise DebeziumParseError(f"{name}: scale must be an integer, not {value!r}") from None
    if not -_MAX_SCALE <= scale <= _MAX_SCALE:
        raise DebeziumParseError(f"{name}: scale {scale} is out of range")
    return scale


def _integer(value: Any, name: str) -> int:
    """An integer field of the envelope: a JSON integer (or its decimal text), never a float or
    a boolean, which `int()` would accept silently."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value) < 40:
        return int(value)
    raise DebeziumParseError(f"{name} must be an integer, not {str(value)[:40]!r}")


def _exact_decimal(unscaled_bytes: bytes, scale: int) -> str:
    unscaled = int.from_bytes(unscaled_bytes, "big", signed=True)
    digits = tuple(int(d) for d in str(abs(unscaled)))
    return format(Decimal((1 if unscaled < 0 else 0, digits, -scale)), "f")


def _row_json(row: Any, schema: dict[str, Any] | None, name: str) -> str | None:
    if row is None:
        return None
    if not isinstance(row, dict):
        raise DebeziumParseError(f"'{name}' must be an object or null")
    fields = _field_schemas(schema, name)
    if not fields:
        return canonical_json(row)
    return canonical_json({k: _decode_logical(v, fields.get(k)) for k, v in row.items()})


def parse_record(key: bytes | None, value: bytes | None) -> CdcRecord | None:
    """The raw CDC row a Kafka record stands for.

    Returns None for records that carry no row change: tombstones (null value after a
    delete), transaction metadata (BEGIN/END) and heartbeats. Raises DebeziumParseError for
    anything else it cannot read, so the caller can dead-letter it with the reason.
    """
    if value is None:
        return None
    try:
        return _parse_value(key, value)
    except RecursionError:
        # nested just below json's decoding limit, the canonical re-encoding recurses deeper
        raise DebeziumParseError("row is nested too deeply to be a change event") from None


def _parse_value(key: bytes | None, value: bytes) -> CdcRecord | None:
    document, schema = _unwrap(_load(value, "value"))
    if not isinstance(document, dict):
        raise DebeziumParseError("value must be a JSON object")
    if "status" in document and "id" in document and "op" not in document:
        return None  # transaction metadata topic
    if set(document) <= {"ts_ms"}:
        return None  # heartbeat
    op = document.get("op")
    if op not in OPS:
        raise DebeziumParseError(f"unknown or missing op {op!r}")
    source = document.get("source")
    if not isinstance(source, dict):
        raise DebeziumParseError("missing source block")
    table = source.get("table")
    if not table:
        raise DebeziumParseError("source.table is missing")
    before, after = document.get("before"), document.get("after")
    if op in ("c", "r", "u") and after is None:
        raise DebeziumParseError(f"op {op!r} without 'after'")
    if op == "d" and before is None:
        raise DebeziumParseError("delete without 'before' (is REPLICA IDENTITY FULL set?)")
    try:
        lsn = _integer(source["lsn"], "source.lsn")
        ts_ms = _integer(source["ts_ms"], "source.ts_ms")
    except (KeyError, DebeziumParseError):
        raise DebeziumParseError("source.lsn and source.ts_ms must be integers") from None
    if lsn < 0:
        raise DebeziumParseError(f"source.lsn {lsn} is negative")
    source_ts = _commit_time(ts_ms)
    tx_id = source.get("txId")
    pk = None
    if key is not None and op != "t":
        key_doc, _ = _unwrap(_load(key, "key"))
        if not isinstance(key_doc, dict):
            raise DebeziumParseError("key must be a JSON object")
        pk = canonical_json(key_doc)
    snapshot = source.get("snapshot")
    return CdcRecord(
        table=str(table),
        schema=str(source.get("schema") or "public"),
        op=op,
        pk=pk,
        before=_row_json(before, schema, "before"),
        after=_row_json(after, schema, "after"),
        lsn=lsn,
        tx_id=_integer(tx_id, "source.txId") if tx_id is not None else None,
        source_ts=source_ts,
        snapshot=None if snapshot is None else str(snapshot).lower(),
    )


def _commit_time(ts_ms: int) -> datetime:
    """source.ts_ms as a naive UTC datetime; out of datetime's range is a parse error."""
    try:
        return _EPOCH.replace(tzinfo=None) + timedelta(milliseconds=ts_ms)
    except OverflowError:
        raise DebeziumParseError(f"source.ts_ms {ts_ms} is out of range") from None
