"""The event contract (platform_core/contract.py): Segment-spec messages and e-commerce events."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from platform_core.contract import (
    COLLECTOR_ID_NAMESPACE,
    MAX_STAMPED_EVENT_BYTES,
    MESSAGE_TYPES,
    Alias,
    ContractError,
    Group,
    Identify,
    Page,
    Screen,
    Track,
    corrected_timestamp,
    event_timestamp,
    isoformat_z,
    parse_message,
    redact_write_key_fields,
    stamp,
)
from platform_core.raw.rows import dead_letter_row, event_row

ANON = {"anonymousId": "7c1e0f5a-4d7e-4c36-9a0c-2f6f3f1d9b11"}
USER = {"userId": "user-42"}


def reason_of(data, default_type=None) -> str:
    with pytest.raises(ContractError) as caught:
        parse_message(data, default_type)
    reason = caught.value.reason
    assert reason == str(caught.value)
    assert "\n" not in reason, "a reason is one line"
    return reason


def track(event: str, properties: dict | None = None, **extra) -> dict:
    return {"type": "track", "event": event, "properties": properties or {}, **ANON, **extra}


# --- every message type -------------------------------------------------------------------

VALID = [
    ({"type": "track", "event": "Signed Up", **USER}, Track),
    ({"type": "page", "name": "Home", "properties": {"path": "/"}, **ANON}, Page),
    ({"type": "screen", "name": "Cart", **ANON}, Screen),
    ({"type": "identify", "traits": {"email": "a@example.com"}, **USER}, Identify),
    ({"type": "group", "groupId": "acme", "traits": {"plan": "pro"}, **USER}, Group),
    ({"type": "alias", "previousId": "anon-1", "userId": "user-42"}, Alias),
]


@pytest.mark.parametrize(("data", "model"), VALID, ids=[m.__name__ for _, m in VALID])
def test_every_message_type_parses_to_its_model(data, model):
    message = parse_message(data)
    assert type(message) is model
    assert message.type == data["type"]
    assert message.userId == data.get("userId")
    assert message.anonymousId == data.get("anonymousId")


def test_all_six_types_are_covered():
    assert {d["type"] for d, _ in VALID} == set(MESSAGE_TYPES)


@pytest.mark.parametrize("kind", MESSAGE_TYPES)
def test_message_without_user_id_and_anonymous_id_is_rejected(kind):
    data = {"type": kind, "event": "X", "groupId": "g", "previousId": "p"}
    reason = reason_of(data)
    if kind == "alias":  # alias requires userId itself
        assert "userId" in reason
    else:
        assert "userId" in reason and "anonymousId" in reason


@pytest.mark.parametrize("kind", ["track", "page", "identify"])
def test_null_ids_count_as_missing(kind):
    reason = reason_of({"type": kind, "event": "X", "userId": None, "anonymousId": None})
    assert "userId or anonymousId" in reason


def test_either_id_alone_is_enough():
    assert parse_message({"type": "page", **ANON}).userId is None
    assert parse_message({"type": "page", **USER}).anonymousId is None


def test_empty_string_id_is_rejected():
    assert reason_of({"type": "page", "anonymousId": ""}).startswith("anonymousId:")


@pytest.mark.parametrize("bad", ["foo", "Track", "", None, 3])
def test_bad_type_is_rejected_naming_the_type(bad):
    reason = reason_of({"type": bad, **ANON})
    assert reason.startswith("type:")
    assert repr(bad) in reason


def test_missing_type_without_route_is_rejected():
    assert reason_of({"event": "X", **ANON}).startswith("type:")


def test_group_without_group_id_is_rejected():
    assert reason_of({"type": "group", **USER}) == "groupId: Field required"


def test_alias_without_previous_id_is_rejected():
    assert reason_of({"type": "alias", "userId": "u1"}) == "previousId: Field required"


def test_alias_without_user_id_is_rejected_even_with_anonymous_id():
    assert reason_of({"type": "alias", "previousId": "p", **ANON}) == "userId: Field required"


def test_track_without_event_is_rejected():
    assert reason_of({"type": "track", **ANON}) == "event: Field required"


def test_track_with_empty_event_is_rejected():
    assert reason_of({"type": "track", "event": "", **ANON}).startswith("event:")


@pytest.mark.parametrize("data", [[1, 2], "track", None, 42])
def test_non_object_is_rejected(data):
    assert reason_of(data) == "event must be a JSON object"


def test_bad_timestamp_is_rejected_naming_the_field():
    assert reason_of(track("X", timestamp="yesterday-ish")).startswith("timestamp:")


def test_properties_must_be_an_object():
    assert reason_of({"type": "track", "event": "X", "properties": [1], **ANON}).startswith(
        "properties:"
    )


def test_nested_context_field_is_named_with_its_path():
    reason = reason_of(track("X", context={"campaign": "summer"}))
    assert reason.startswith("context.campaign:")


# --- e-commerce properties ----------------------------------------------------------------

PRODUCT = {
    "product_id": "507f1f77",
    "sku": "G-32",
    "name": "Monopoly",
    "price": 18.99,
    "quantity": 1,
    "currency": "USD",
}


@pytest.mark.parametrize(
    ("event", "properties", "field"),
    [
        ("Product Added", {**PRODUCT, "price": -0.01}, "price"),
        ("Product Added", {**PRODUCT, "quantity": 0}, "quantity"),
        ("Product Added", {**PRODUCT, "quantity": -2}, "quantity"),
        ("Product Added", {k: v for k, v in PRODUCT.items() if k != "product_id"}, "product_id"),
        ("Product Viewed", {**PRODUCT, "currency": "DOLLARS"}, "currency"),
        ("Order Completed", {"total": 27.5, "products": [PRODUCT]}, "order_id"),
        ("Order Completed", {"order_id": "o1", "total": -1}, "total"),
        (
            "Order Completed",
            {"order_id": "o1", "products": [{"price": 1}]},
            "products.0.product_id",
        ),
        ("Products Searched", {}, "query"),
        ("Checkout Step Viewed", {"step": 0}, "step"),
    ],
)
def test_invalid_ecommerce_properties_are_rejected_naming_the_field(event, properties, field):
    reason = reason_of(track(event, properties))
    assert reason.startswith(f"{event} properties.{field}:"), reason


def test_valid_ecommerce_events_parse():
    added = parse_message(track("Product Added", PRODUCT))
    assert added.properties == PRODUCT
    order = parse_message(
        track(
            "Order Completed",
            {
                "order_id": "50314b8e",
                "total": 27.5,
                "revenue": 25.0,
                "shipping": 3,
                "tax": 2,
                "currency": "USD",
                "products": [PRODUCT, {**PRODUCT, "product_id": "p2", "quantity": 2}],
            },
        )
    )
    assert order.properties["order_id"] == "50314b8e"


def test_ecommerce_events_keep_unknown_properties():
    message = parse_message(track("Product Added", {**PRODUCT, "gift_wrap": True}))
    assert message.properties["gift_wrap"] is True


def test_unknown_custom_event_accepts_arbitrary_properties():
    props = {"price": -5, "quantity": 0, "nested": {"a": [1, None]}, "product_id": 7}
    message = parse_message(track("Wishlist Shared Loudly", props))
    assert isinstance(message, Track)
    assert message.event == "Wishlist Shared Loudly"
    assert message.properties == props


def test_ecommerce_rules_apply_only_to_track():
    # a page named like an e-commerce event is not checked against its property schema
    message = parse_message(
        {"type": "page", "name": "Product Added", "properties": {"price": -1}, **ANON}
    )
    assert isinstance(message, Page)


# --- unknown fields and route default type ------------------------------------------------


def test_unknown_fields_are_kept_at_every_level():
    data = track(
        "X",
        channel="server",
        version=2,
        context={"app": {"build": "512"}, "page": {"path": "/", "hash": "#top"}},
    )
    message = parse_message(data)
    assert message.model_extra == {"channel": "server", "version": 2}
    assert message.context.model_extra == {"app": {"build": "512"}}
    assert message.context.page.model_extra == {"hash": "#top"}
    dumped = message.model_dump()
    assert dumped["channel"] == "server"
    assert dumped["context"]["app"] == {"build": "512"}


@pytest.mark.parametrize(
    ("route", "model"), [("track", Track), ("page", Page), ("identify", Identify)]
)
def test_route_supplies_the_default_type(route, model):
    data = {"event": "X", **ANON}
    message = parse_message(data, default_type=route)
    assert type(message) is model
    assert "type" not in data, "the caller's dict is not mutated"


def test_explicit_type_wins_over_route_default():
    message = parse_message({"type": "page", "name": "Home", **ANON}, default_type="track")
    assert isinstance(message, Page)


def test_route_default_type_does_not_relax_validation():
    assert reason_of({**ANON}, default_type="track") == "event: Field required"


# --- clock skew -----------------------------------------------------------------------------


def test_skew_correction_with_client_clock_two_hours_fast():
    fast = timedelta(hours=2)
    true_event = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
    held = timedelta(seconds=7)  # the client queued the event for 7 s before sending
    transit = timedelta(milliseconds=250)
    original = true_event + fast  # client clock reading of the event: 14:00:00
    sent_at = true_event + held + fast  # client clock reading at send: 14:00:07
    received = true_event + held + transit  # server clock: 12:00:07.250
    corrected = corrected_timestamp(original, sent_at, received)
    # receive time minus the true delay as the client measured it; only transit remains
    assert corrected == received - held
    assert corrected == datetime(2025, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)
    assert abs(corrected - true_event) == transit
    assert original - corrected > timedelta(hours=1, minutes=59)


def test_skew_correction_with_client_clock_behind_and_other_offsets():
    received = datetime(2025, 3, 1, 0, 0, 30, tzinfo=UTC)
    # client is 3h behind and reports in +01:00
    tz = timezone(timedelta(hours=1))
    original = datetime(2025, 2, 28, 22, 0, 0, tzinfo=tz)  # 21:00Z on a clock 3h behind
    sent_at = datetime(2025, 2, 28, 22, 0, 20, tzinfo=tz)
    assert corrected_timestamp(original, sent_at, received) == datetime(
        2025, 3, 1, 0, 0, 10, tzinfo=UTC
    )


def test_skew_correction_fallbacks():
    received = datetime(2025, 3, 1, 12, tzinfo=UTC)
    original = datetime(2025, 3, 1, 9, 30)  # naive: read as UTC
    assert corrected_timestamp(None, None, received) == received
    assert corrected_timestamp(None, datetime(2025, 3, 1, tzinfo=UTC), received) == received
    assert corrected_timestamp(original, None, received) == original.replace(tzinfo=UTC)
    assert corrected_timestamp(original, None, received).tzinfo is not None


def test_skew_correction_mixed_naive_and_aware_client_readings():
    received = datetime(2025, 3, 1, 12, tzinfo=UTC)
    original = datetime(2025, 3, 1, 14, 0, 0)  # naive UTC
    sent_at = datetime(2025, 3, 1, 14, 0, 5, tzinfo=UTC)
    assert corrected_timestamp(original, sent_at, received) == received - timedelta(seconds=5)


def test_parsed_message_feeds_skew_correction():
    message = parse_message(
        track(
            "X",
            originalTimestamp="2025-03-01T14:00:00.000Z",
            timestamp="2025-03-01T14:00:00.500Z",
            sentAt="2025-03-01T14:00:04.000Z",
        )
    )
    assert message.event_time_as_sent == datetime(2025, 3, 1, 14, tzinfo=UTC)
    received = datetime(2025, 3, 1, 12, 0, 5, tzinfo=UTC)
    assert corrected_timestamp(message.event_time_as_sent, message.sentAt, received) == datetime(
        2025, 3, 1, 12, 0, 1, tzinfo=UTC
    )


def test_event_time_falls_back_to_timestamp():
    message = parse_message(track("X", timestamp="2025-03-01T14:00:00Z"))
    assert message.event_time_as_sent == datetime(2025, 3, 1, 14, tzinfo=UTC)


# --- isoformat_z and stamp ------------------------------------------------------------------


def test_isoformat_z_is_utc_with_milliseconds():
    assert isoformat_z(datetime(2025, 3, 1, 14, 5, 6, 789999, tzinfo=UTC)) == (
        "2025-03-01T14:05:06.789Z"
    )
    tz = timezone(timedelta(hours=-5))
    assert isoformat_z(datetime(2025, 2, 28, 21, 0, tzinfo=tz)) == "2025-03-01T02:00:00.000Z"
    assert isoformat_z(datetime(2025, 3, 1)) == "2025-03-01T00:00:00.000Z"


def test_isoformat_z_round_trips_through_the_contract():
    moment = datetime(2025, 3, 1, 14, 5, 6, 789000, tzinfo=UTC)
    message = parse_message(track("X", timestamp=isoformat_z(moment)))
    assert message.timestamp == moment


RECEIVED = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def test_stamp_removes_write_key_and_sets_received_at():
    message = {"type": "track", "event": "X", "messageId": "m-1", "writeKey": "secret", **ANON}
    stamped = stamp(message, RECEIVED)
    assert "writeKey" not in stamped
    assert "secret" not in repr(stamped)
    assert stamped["receivedAt"] == "2025-03-01T12:00:00.123Z"
    assert stamped["messageId"] == "m-1"
    assert message["writeKey"] == "secret" and "receivedAt" not in message, "input not mutated"


def test_stamp_derives_a_message_id_when_absent_or_empty():
    """A client that omits messageId (or sends it empty) and retries must get the same id:
    it is a UUID (version 5) of the source and the event's content."""
    first = stamp({"type": "page", **ANON}, RECEIVED)
    second = stamp({"type": "page", "messageId": "", **ANON}, RECEIVED)
    third = stamp({"type": "page", "messageId": None, **ANON}, RECEIVED)
    ids = [first["messageId"], second["messageId"], third["messageId"]]
    for value in ids:
        assert uuid.UUID(value).version == 5
    assert len(set(ids)) == 1


def test_derived_message_id_follows_the_documented_rule():
    """uuid5(COLLECTOR_ID_NAMESPACE, source + "\\n" + the event as JSON with sorted keys and
    no separators' spaces, without messageId, sentAt, receivedAt and writeKey) — computed
    here from the README's rule, not by the function under test."""
    event = {"event": "Signed Up", "userId": "u-1", "timestamp": "2026-01-01T00:00:00Z"}
    content = {
        "event": "Signed Up",
        "timestamp": "2026-01-01T00:00:00Z",
        "type": "track",
        "userId": "u-1",
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = str(uuid.uuid5(COLLECTOR_ID_NAMESPACE, "web\n" + canonical))
    later = RECEIVED + timedelta(hours=1)
    sent = stamp(
        {**event, "sentAt": "2026-01-01T00:00:01Z", "writeKey": "k"},
        RECEIVED,
        "track",
        source="web",
    )
    retried = stamp({**event, "sentAt": "2026-01-01T00:05:00Z"}, later, "track", source="web")
    assert sent["messageId"] == retried["messageId"] == expected
    other_source = stamp(dict(event), RECEIVED, "track", source="ios")["messageId"]
    other_content = stamp({**event, "userId": "u-2"}, RECEIVED, "track", source="web")
    assert len({expected, other_source, other_content["messageId"]}) == 3
    assert stamp({**event, "messageId": "mine"}, RECEIVED, "track")["messageId"] == "mine"


def test_stamp_applies_route_type_only_when_missing():
    assert stamp({"event": "X", **ANON}, RECEIVED, default_type="track")["type"] == "track"
    assert stamp({"type": "page", **ANON}, RECEIVED, default_type="track")["type"] == "page"
    assert "type" not in stamp({**ANON}, RECEIVED)


def test_stamp_overrides_client_supplied_received_at():
    stamped = stamp({"type": "page", "receivedAt": "1999-01-01T00:00:00Z", **ANON}, RECEIVED)
    assert stamped["receivedAt"] == "2025-03-01T12:00:00.123Z"


def test_stamped_message_parses_and_keeps_the_stamps():
    stamped = stamp({"event": "Signed Up", "writeKey": "k", **USER}, RECEIVED, default_type="track")
    message = parse_message(stamped)
    assert message.receivedAt == datetime(2025, 3, 1, 12, 0, 0, 123000, tzinfo=UTC)
    assert message.messageId == stamped["messageId"]
    assert "writeKey" not in (message.model_extra or {})


# --- a real SDK payload -----------------------------------------------------------------------


def rudderstack_python_identify() -> dict:
    """An identify as rudder-sdk-python 2.x enqueues it (`Client._enqueue`): traits go into
    context.traits, ids are stringified (None stays None), the library is stamped, the channel
    is "server", empty integrations become {"All": True} and the timestamp is
    `datetime.isoformat()` of an aware UTC datetime."""
    return {
        "integrations": {"All": True},
        "anonymousId": None,
        "timestamp": "2025-03-01T09:15:42.318204+00:00",
        "context": {
            "traits": {"email": "ava.smith1@example.com", "name": "Ava Smith", "plan": "pro"},
            "library": {"name": "analytics-python", "version": "2.1.4"},
        },
        "type": "identify",
        "userId": "1042",
        "messageId": "4f0c3b9e-5d1a-4f55-9a0e-3a8c1f2b7d61",
        "channel": "server",
    }


def test_rudderstack_python_sdk_identify_parses():
    message = parse_message(rudderstack_python_identify())
    assert isinstance(message, Identify)
    assert message.userId == "1042"
    assert message.anonymousId is None
    assert message.traits == {}
    assert message.context.model_extra["traits"]["email"] == "ava.smith1@example.com"
    assert message.context.library.name == "analytics-python"
    assert message.integrations == {"All": True}
    assert message.model_extra == {"channel": "server"}
    assert message.timestamp == datetime(2025, 3, 1, 9, 15, 42, 318204, tzinfo=UTC)


def test_rudderstack_python_sdk_identify_survives_stamping():
    received = datetime(2025, 3, 1, 9, 15, 43, tzinfo=UTC)
    stamped = stamp({**rudderstack_python_identify(), "writeKey": "2abc"}, received)
    message = parse_message(stamped)
    assert message.messageId == "4f0c3b9e-5d1a-4f55-9a0e-3a8c1f2b7d61"
    # without sentAt on the message the client timestamp is taken as is
    assert corrected_timestamp(message.event_time_as_sent, message.sentAt, received) == (
        message.timestamp
    )


# --- event time: skew-corrected, then clamped to a window around receipt ---------------------


def test_far_off_client_clocks_are_clamped_to_the_window_around_receipt():
    """Client clocks spread over 1,000 days would make 1,000 event_date partitions; the
    clamp (30 days before receipt to 1 day after, README) keeps them within 32 dates."""
    received = datetime(2026, 6, 1, 12, tzinfo=UTC)
    dates = set()
    for day in range(-500, 500):
        original = received + timedelta(days=day)
        row = event_row(
            {
                "type": "track",
                "event": "X",
                "messageId": f"m{day}",
                "userId": "u",
                "originalTimestamp": original.isoformat(),
            },
            source="web",
            received_at=received,
            ingested_at=received,
        )
        dates.add(row["event_date"])
        assert row["original_timestamp"] == original.replace(tzinfo=None), "kept as sent"
        assert original.isoformat() in row["payload"]
    assert min(dates) == date(2026, 5, 2) and max(dates) == date(2026, 6, 2)
    assert len(dates) == 32


def test_event_time_inside_the_window_is_the_corrected_time():
    received = datetime(2026, 6, 1, 12, tzinfo=UTC)
    original = datetime(2026, 5, 20, 8, tzinfo=UTC)
    sent = datetime(2026, 5, 20, 9, tzinfo=UTC)  # queued offline one hour, clock right
    assert event_timestamp(original, sent, received) == received - timedelta(hours=1)
    assert event_timestamp(original, None, received) == original
    assert event_timestamp(None, None, received) == received


@pytest.mark.parametrize(
    ("original", "sent", "expected_offset"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC), timedelta(days=-30)),
        (datetime(9999, 12, 31, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC), timedelta(days=1)),
        (datetime(9999, 12, 31, tzinfo=UTC), None, timedelta(days=1)),
        (datetime(1, 1, 1), None, timedelta(days=-30)),
    ],
)
def test_extreme_client_clocks_neither_overflow_nor_escape_the_window(
    original, sent, expected_offset
):
    received = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert event_timestamp(original, sent, received) == received + expected_offset


# --- limits and secrets that Beam applies with the same contract --------------------------------


def test_a_raw_row_refuses_an_event_larger_than_the_stamped_event_limit():
    big = {
        "type": "track",
        "event": "X",
        "messageId": "m",
        "userId": "u",
        "properties": {"b": "x" * (32 * 1024 + 1024)},
    }
    text = json.dumps(big)
    assert len(text) > MAX_STAMPED_EVENT_BYTES
    with pytest.raises(ContractError, match="larger than"):
        event_row(big, source="web", received_at=RECEIVED, ingested_at=RECEIVED, payload_json=text)


def test_dead_letter_rows_carry_no_write_key_field():
    payload = (
        b'{"writeKey":"s3cret","batch":[{"context":{"write_key" : "s3cret2"}}],'
        b'"WriteKey":"s3cret3","note":"writeKey"}'
    )
    row = dead_letter_row(
        stage="beam", error='bad "writeKey":"s3cret4"', payload=payload, ingested_at=RECEIVED
    )
    assert "s3cret" not in row["payload"] and "s3cret" not in row["error"]
    assert '"note":"writeKey"' in row["payload"], "only key fields' values are redacted"
    assert redact_write_key_fields(b'{"writeKey": "a\\"b"}') == b'{"writeKey": "[redacted]"}'
