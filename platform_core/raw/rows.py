"""Turn accepted messages into raw rows: the one enrichment used by every path into raw.

The collector's direct loader, the Beam job and the demo loader all call `event_row`, so a
row means the same thing whichever way it arrived. The ingestion-time rules of the contract
apply here: an event larger than `MAX_STAMPED_EVENT_BYTES` is refused, its time is clamped
to the window around its receipt (`event_timestamp`; the time as sent stays in the payload
and in `original_timestamp`), and a dead-letter row never keeps a write key field's value.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from platform_core.contract import (
    MAX_STAMPED_EVENT_BYTES,
    ContractError,
    event_timestamp,
    parse_message,
    redact_write_key_fields,
)

_TABLET = re.compile(r"iPad|Tablet|Nexus (7|9|10)|SM-T\d", re.I)
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android|Windows Phone", re.I)
_OS = (
    (re.compile(r"iPhone|iPad|iPod|iOS", re.I), "iOS"),
    (re.compile(r"Android", re.I), "Android"),
    (re.compile(r"Windows", re.I), "Windows"),
    (re.compile(r"Mac OS X|Macintosh", re.I), "macOS"),
    (re.compile(r"CrOS", re.I), "ChromeOS"),
    (re.compile(r"Linux", re.I), "Linux"),
)
_BROWSER = (
    (re.compile(r"Edg/"), "Edge"),
    (re.compile(r"SamsungBrowser/"), "Samsung Internet"),
    (re.compile(r"OPR/|Opera"), "Opera"),
    (re.compile(r"Firefox/|FxiOS/"), "Firefox"),
    (re.compile(r"Chrome/|CriOS/"), "Chrome"),
    (re.compile(r"Safari/"), "Safari"),
)


def naive_utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def parse_user_agent(user_agent: str | None) -> tuple[str | None, str | None, str | None]:
    """(device_type, os_name, browser) from a user agent string; None where unknown."""
    if not user_agent:
        return None, None, None
    if _TABLET.search(user_agent):
        device = "tablet"
    elif _MOBILE.search(user_agent):
        device = "mobile"
    else:
        device = "desktop"
    os_name = next((name for pattern, name in _OS if pattern.search(user_agent)), None)
    browser = next((name for pattern, name in _BROWSER if pattern.search(user_agent)), None)
    return device, os_name, browser


def traffic_source(context: dict[str, Any]) -> str:
    campaign = context.get("campaign") or {}
    if isinstance(campaign, dict) and campaign.get("source"):
        return str(campaign["source"]).strip().lower()[:100]
    page = context.get("page") or {}
    referrer = page.get("referrer") if isinstance(page, dict) else None
    if referrer:
        host = (urlsplit(str(referrer)).hostname or "").removeprefix("www.")
        own = (urlsplit(str(page.get("url") or "")).hostname or "").removeprefix("www.")
        if host and host != own:
            return host[:100]
    return "direct"


def event_row(
    payload: dict[str, Any],
    *,
    source: str,
    received_at: datetime,
    ingested_at: datetime,
    ingestion_id: str | None = None,
    payload_json: str | None = None,
) -> dict[str, Any]:
    """Validate one message and build its raw.events row. Raises ContractError."""
    if payload_json is not None and len(payload_json) > MAX_STAMPED_EVENT_BYTES:
        # characters, not bytes: a cheap bound first; the exact size only when it is close
        size = len(payload_json.encode("utf-8", "surrogatepass"))
        if size > MAX_STAMPED_EVENT_BYTES:
            raise ContractError(
                f"event is larger than {MAX_STAMPED_EVENT_BYTES} bytes ({size}): Segment's "
                "32 KB per event plus what the collector stamps"
            )
    message = parse_message(payload)
    if not message.messageId:
        raise ContractError("messageId: required in raw (the collector stamps one)")
    context = payload.get("context") or {}
    ua_device, ua_os, browser = parse_user_agent(message.context.userAgent)
    device_type = (message.context.device.type if message.context.device else None) or ua_device
    os_name = (message.context.os.name if message.context.os else None) or ua_os
    event_ts = naive_utc(event_timestamp(message.event_time_as_sent, message.sentAt, received_at))
    name = message.event if message.type == "track" else getattr(message, "name", None)
    return {
        "message_id": message.messageId,
        "type": message.type,
        "event": name,
        "anonymous_id": message.anonymousId,
        "user_id": message.userId,
        "source": source,
        "original_timestamp": naive_utc(message.event_time_as_sent),
        "sent_at": naive_utc(message.sentAt),
        "received_at": naive_utc(received_at),
        "event_timestamp": event_ts,
        "event_date": event_ts.date(),
        "device_type": (device_type or "unknown").lower(),
        "os_name": os_name,
        "browser": browser,
        "page_path": message.context.page.path if message.context.page else None,
        "traffic_source": traffic_source(context if isinstance(context, dict) else {}),
        "payload": payload_json if payload_json is not None else json.dumps(payload),
        "ingested_at": naive_utc(ingested_at),
        "ingestion_id": ingestion_id,
    }


def dead_letter_row(
    *,
    stage: str,
    error: str,
    payload: str | bytes,
    ingested_at: datetime,
    source: str | None = None,
    message_id: str | None = None,
    pubsub_message_id: str | None = None,
) -> dict[str, Any]:
    data = payload if isinstance(payload, bytes) else payload.encode("utf-8", "surrogatepass")
    text = redact_write_key_fields(data).decode("utf-8", errors="replace")
    reason = redact_write_key_fields(error.encode("utf-8", "replace")).decode("utf-8", "replace")
    ingested = naive_utc(ingested_at)
    return {
        "stage": stage,
        "error": reason[:2000],
        "payload": text,
        "source": source,
        "message_id": message_id,
        "pubsub_message_id": pubsub_message_id,
        "ingested_at": ingested,
        "ingest_date": ingested.date(),
    }
