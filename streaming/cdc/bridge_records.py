"""One Kafka record → the raw CDC row it stands for, or the reason it is a poison record.

`read_change` is the only place the bridge turns bytes into a row, and nothing it meets
escapes it except as a `PoisonRecord`: a Debezium envelope the parser rejects, a table the raw
layer does not know, a row that does not fit the raw table's schema (an LSN of 2**64 parses
as a Python int but not into the INT64 column, so the sink would fail the whole batch, again
after every restart) and any other exception the parser raises. The bridge dead-letters a
`PoisonRecord` with its reason and moves on; it never crashes on a record's content.

The schema check is the raw layer's own (`platform_core.raw.schema`): column names, required
values, Python types and the integer widths of the Arrow types, so what passes here is what
`streaming.raw.writer.to_arrow` and BigQuery accept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from typing import Any

import pyarrow as pa

from platform_core.raw.schema import RAW_TABLES, RawTable
from streaming.cdc.debezium import parse_record

Row = dict[str, Any]


class PoisonRecord(Exception):  # noqa: N818 - a record, not an error of the bridge
    """A record the bridge cannot turn into a raw row: `reason` says why, `kind` names the
    exception class that said so (Kafka Connect's ``exception.class.name`` header)."""

    def __init__(self, reason: str, kind: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True)
class Change:
    table: str  # raw table name, cdc_<source table>
    row: Row


def read_change(
    key: bytes | None,
    value: bytes | None,
    *,
    ingested_at: datetime,
    topic: str,
    partition: int,
    offset: int,
) -> Change | None:
    """The raw row of one record; None for records without one (tombstones, heartbeats,
    transaction markers). Raises PoisonRecord, and only that, for anything unreadable."""
    try:
        record = parse_record(key, value)
        if record is None:
            return None
        table = f"cdc_{record.table}"
        spec = RAW_TABLES.get(table)
        if spec is None:
            raise PoisonRecord(f"no raw table for source table {record.table!r}", "UnknownTable")
        row = record.to_raw_row(
            ingested_at=ingested_at,
            kafka_topic=topic,
            kafka_partition=partition,
            kafka_offset=offset,
        )
        problems = schema_problems(spec, row)
        if problems:
            raise PoisonRecord(f"{table}: " + "; ".join(problems), "RawSchemaMismatch")
        return Change(table, row)
    except PoisonRecord:
        raise
    except Exception as error:  # noqa: BLE001 - any content-driven failure is a poison record
        raise PoisonRecord(str(error)[:2000] or repr(error), type(error).__name__) from error


# --- the raw schema, checked value by value ------------------------------------------------------


Check = Callable[[Any], "str | None"]


def _integer_range(kind: pa.DataType) -> tuple[int, int]:
    bits = kind.bit_width
    if pa.types.is_signed_integer(kind):
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def schema_problems(spec: RawTable, row: Row) -> list[str]:
    """What keeps `row` out of the raw table `spec` (empty when it fits)."""
    names, checks = _checks(spec.name)
    problems = []
    if len(row) != len(names) or not names.issuperset(row):
        unknown = set(row) - names
        if unknown:
            problems.append(f"unknown columns {sorted(unknown)}")
    for name, required, check in checks:
        value = row.get(name)
        if value is None:
            if required:
                problems.append(f"{name} is required")
            continue
        problem = check(value)
        if problem:
            problems.append(f"{name} {problem}")
    return problems


@cache
def _checks(table: str) -> tuple[frozenset[str], list[tuple[str, bool, Check]]]:
    """Per raw table, once: its column names and a value check per column."""
    spec = RAW_TABLES[table]
    return frozenset(spec.column_names), [
        (c.name, c.required, _check_for(c.arrow)) for c in spec.columns
    ]


def _check_for(kind: pa.DataType) -> Check:
    if pa.types.is_integer(kind):
        low, high = _integer_range(kind)

        def integer(value: Any) -> str | None:
            if not isinstance(value, int) or isinstance(value, bool):
                return f"must be an integer, not {type(value).__name__}"
            if not low <= value <= high:
                return f"{value} does not fit {kind} [{low}, {high}]"
            return None

        return integer
    if pa.types.is_string(kind):
        return _text
    if pa.types.is_timestamp(kind):
        return lambda value: None if isinstance(value, datetime) else "must be a timestamp"
    if pa.types.is_date(kind):
        return lambda value: (
            None
            if isinstance(value, date) and not isinstance(value, datetime)
            else "must be a date"
        )
    return lambda value: f"has a type the bridge does not check ({kind})"


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"must be text, not {type(value).__name__}"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "is not valid UTF-8 text (lone surrogates)"
    return None
