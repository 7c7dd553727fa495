"""Pub/Sub messages -> raw rows: parse, validate with the shared contract, enrich, or dead-letter.

Every DoFn emits `(raw table name, row)` pairs, so one sink writes every table. Nothing is
dropped: a message that cannot become a row of its table becomes a row of
`events_dead_letter` with the reason, the payload as received and the Pub/Sub message id.
The pure functions (`event_to_raw`, `dead_letter_to_raw`, `cdc_to_raw`) hold the logic; the
DoFns add the clock and the Beam metrics.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import apache_beam as beam

from platform_core.contract import ContractError
from platform_core.raw.codec import RawCodecError, decode_raw_row
from platform_core.raw.rows import dead_letter_row, event_row
from platform_core.raw.schema import RAW_TABLES
from streaming.beam.metrics import Count

EVENTS = "events"
DEAD_LETTER = "events_dead_letter"
PIPELINE_STAGE = "pipeline"
COLLECTOR_STAGE = "collector"

RawElement = tuple[str, dict[str, Any]]
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _attributes(message: Any) -> Mapping[str, str]:
    return getattr(message, "attributes", None) or {}


def _parse_time(value: Any, what: str) -> datetime:
    if not isinstance(value, str) or not value:
        raise ContractError(f"{what}: required (the collector stamps it)")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ContractError(f"{what}: not an RFC 3339 timestamp: {value[:64]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _received_at(payload: dict[str, Any], attributes: Mapping[str, str], message: Any) -> datetime:
    """The collector's receipt time: payload.receivedAt, else the attribute, else publish time."""
    if payload.get("receivedAt") is not None:
        return _parse_time(payload["receivedAt"], "receivedAt")
    if attributes.get("received_at"):
        return _parse_time(attributes["received_at"], "received_at attribute")
    published = getattr(message, "publish_time", None)
    if isinstance(published, datetime):
        return published if published.tzinfo is not None else published.replace(tzinfo=UTC)
    raise ContractError("receivedAt: required (the collector stamps it)")


def _message_id_of(payload: Any, attributes: Mapping[str, str]) -> str | None:
    if isinstance(payload, dict) and isinstance(payload.get("messageId"), str):
        return payload["messageId"][:512] or None
    return attributes.get("message_id") or None


def event_to_raw(message: Any, now: datetime) -> RawElement:
    """One message of the `events` topic -> a raw.events row, or a dead letter saying why."""
    attributes = _attributes(message)
    data = message.data
    payload: Any = None
    try:
        try:
            text = data.decode("utf-8") if isinstance(data, bytes) else str(data)
        except UnicodeDecodeError as error:
            raise ContractError(f"payload is not UTF-8: {error}") from None
        try:
            payload = json.loads(text)
        except ValueError as error:
            raise ContractError(f"payload is not JSON: {error}") from None
        if not isinstance(payload, dict):
            raise ContractError("event must be a JSON object")
        row = event_row(
            payload,
            source=attributes.get("source") or "unknown",
            received_at=_received_at(payload, attributes, message),
            ingested_at=now,
            ingestion_id=getattr(message, "message_id", None),
            payload_json=text,
        )
        return EVENTS, row
    except ContractError as error:
        reason = error.reason
    except Exception as error:  # noqa: BLE001 - a poison message must not stop the job
        reason = f"{type(error).__name__}: {error}"
    return DEAD_LETTER, dead_letter_row(
        stage=PIPELINE_STAGE,
        error=reason,
        payload=_text(data),
        ingested_at=now,
        source=attributes.get("source") or None,
        message_id=_message_id_of(payload, attributes),
        pubsub_message_id=getattr(message, "message_id", None),
    )


def dead_letter_to_raw(message: Any, now: datetime) -> RawElement:
    """One message of `events-dead-letter` (rejected upstream) -> a raw.events_dead_letter row."""
    attributes = _attributes(message)
    return DEAD_LETTER, dead_letter_row(
        stage=attributes.get("stage") or COLLECTOR_STAGE,
        error=attributes.get("error") or "(rejected upstream; no reason given)",
        payload=_text(message.data),
        ingested_at=now,
        source=attributes.get("source") or None,
        message_id=attributes.get("message_id") or None,
        pubsub_message_id=getattr(message, "message_id", None),
    )


def cdc_to_raw(message: Any, now: datetime) -> RawElement:
    """One `cdc` message (an encoded raw CDC row) -> its raw.cdc_<table> row, or a dead letter."""
    attributes = _attributes(message)
    try:
        table, row = decode_raw_row(message.data)
        if not table.startswith("cdc_"):
            raise RawCodecError(f"table {table!r} is not a CDC table")
        return table, row
    except RawCodecError as error:
        reason = str(error)
    except Exception as error:  # noqa: BLE001
        reason = f"{type(error).__name__}: {error}"
    where = attributes.get("table") or "unknown table"
    return DEAD_LETTER, dead_letter_row(
        stage=PIPELINE_STAGE,
        error=f"cdc ({where}): {reason}",
        payload=_text(message.data),
        ingested_at=now,
        pubsub_message_id=getattr(message, "message_id", None),
    )


class _ToRaw(beam.DoFn):
    """Applies one of the functions above and counts what became a row of its table and what
    became a dead letter."""

    def __init__(
        self,
        convert: Callable[[Any, datetime], RawElement],
        valid: str,
        invalid: str | None,
        clock: Clock = utc_now,
    ) -> None:
        self.convert = convert
        self.clock = clock
        self.valid = Count(valid)
        self.invalid = Count(invalid) if invalid else None

    def process(self, message: Any) -> Iterator[RawElement]:
        table, row = self.convert(message, self.clock())
        if table == DEAD_LETTER and self.invalid is not None:
            self.invalid.inc()
        else:
            self.valid.inc()
        yield table, row


def ParseEvents(clock: Clock = utc_now) -> beam.ParDo:  # noqa: N802 - reads like a transform
    """PubsubMessage of `events` -> ("events", row) | ("events_dead_letter", row)."""
    return beam.ParDo(_ToRaw(event_to_raw, "events_valid", "events_invalid", clock))


def ParseDeadLetters(clock: Clock = utc_now) -> beam.ParDo:  # noqa: N802
    """PubsubMessage of `events-dead-letter` -> ("events_dead_letter", row)."""
    return beam.ParDo(_ToRaw(dead_letter_to_raw, "collector_dead_letters", None, clock))


def ParseCdc(clock: Clock = utc_now) -> beam.ParDo:  # noqa: N802
    """PubsubMessage of `cdc` -> ("cdc_<table>", row) | ("events_dead_letter", row)."""
    return beam.ParDo(_ToRaw(cdc_to_raw, "cdc_valid", "cdc_invalid", clock))


assert EVENTS in RAW_TABLES and DEAD_LETTER in RAW_TABLES
