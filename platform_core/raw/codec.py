"""Raw rows on the wire: how a raw row travels through Pub/Sub (the CDC bridge → Beam).

JSON keeps the message readable in the console and in dead letters; types are restored from
the raw schema on decode, so the writer receives exactly the row that was encoded.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from platform_core.raw.schema import raw_table


class RawCodecError(ValueError):
    """Bytes that are not an encoded raw row."""


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def encode_raw_row(table: str, row: dict[str, Any]) -> bytes:
    raw_table(table)  # unknown tables fail here, at the sender
    return json.dumps(
        {"table": table, "row": {k: _plain(v) for k, v in row.items()}}, separators=(",", ":")
    ).encode()


def decode_raw_row(data: bytes) -> tuple[str, dict[str, Any]]:
    try:
        document = json.loads(data)
        table, row = document["table"], document["row"]
        spec = raw_table(table)
    except (ValueError, KeyError, TypeError) as error:
        raise RawCodecError(f"not an encoded raw row: {error}") from None
    types = {c.name: c.arrow for c in spec.columns}
    decoded: dict[str, Any] = {}
    for name, value in row.items():
        kind = types.get(name)
        if kind is None:
            raise RawCodecError(f"{table}: unknown column {name!r}")
        if value is not None and pa.types.is_timestamp(kind):
            value = datetime.fromisoformat(value)
        elif value is not None and pa.types.is_date(kind):
            value = date.fromisoformat(value)
        decoded[name] = value
    return table, decoded
