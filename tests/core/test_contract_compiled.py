"""The compiled contract (platform_core/contract_compiled.py) against the Pydantic contract it
is derived from: what it accepts, `parse_message` accepts (generated valid and broken events),
and it accepts the ordinary events of every message type and e-commerce schema (so the
collector's fast path is the usual one; tests/collector/test_collector_fastpath.py compares
the collector's output both ways). Expected verdicts come from `parse_message` and from
hand-written cases, never from the compiled check itself."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from contract_cases import CONTEXT, INVALID, VALID, events, with_identity
from hypothesis import HealthCheck, given, settings

from platform_core.contract import ContractError, parse_message
from platform_core.contract_compiled import (
    ECOMMERCE_SCHEMAS,
    Event,
    all_identified,
    context_canonical,
    datetimes_valid,
    messages_valid,
    properties_valid,
    shape_valid,
)


def compiled_accepts(event: Any) -> bool:
    """The compiled check's verdict on one event, as collector.fastpath applies it."""
    try:
        message = msgspec.json.decode(json.dumps(event), type=Event)
    except msgspec.DecodeError:
        return False
    if not shape_valid(message):
        return False
    context = message.context
    if context is not msgspec.UNSET and context_canonical(bytes(context)) is None:
        return False
    times = [message.timestamp, message.originalTimestamp, message.sentAt]
    return datetimes_valid([t for t in times if type(t) is str]) and messages_valid([message])[0]


def contract_accepts(event: Any) -> bool:
    try:
        parse_message(event)
    except ContractError:
        return False
    return True


@pytest.mark.parametrize("event", VALID, ids=lambda e: e.get("event") or e["type"])
def test_ordinary_events_take_the_fast_path(event):
    event = {
        **with_identity(event),
        "messageId": "m-1",
        "timestamp": "2026-12-06T03:59:58.120Z",
        "context": CONTEXT,
    }
    assert contract_accepts(event), "the hand-written case is valid"
    assert compiled_accepts(event)


@pytest.mark.parametrize("event", INVALID, ids=str)
def test_broken_events_are_refused_by_both(event):
    event = with_identity(event) if event.get("anonymousId") != "" else event
    assert not contract_accepts(event), "the hand-written case is invalid"
    assert not compiled_accepts(event)


# --- generated events: accepted by the compiled check => accepted by the contract -----------


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events())
def test_what_the_compiled_check_accepts_the_contract_accepts(event):
    if compiled_accepts(event):
        try:
            parse_message(event)
        except ContractError as error:
            pytest.fail(f"compiled check accepted what the contract refuses ({error}): {event}")


def decoded(event: dict[str, Any]) -> Any:
    message = msgspec.json.decode(json.dumps(event), type=Event)
    assert shape_valid(message)
    return message


def test_request_wide_checks_refuse_a_request_with_one_bad_message():
    # hand-written: who the message names (Segment: userId or anonymousId) and the
    # e-commerce spec's Product Viewed (product_id required, price >= 0)
    named = [
        decoded({"type": "page", "anonymousId": "a"}),
        decoded({"type": "page", "userId": "u"}),
    ]
    nobody = decoded({"type": "page", "userId": None, "anonymousId": None})
    assert all_identified(named)
    assert not all_identified([*named, nobody])
    schema = ECOMMERCE_SCHEMAS["Product Viewed"]
    good = [{"product_id": "p1", "price": 5.0}, {"product_id": 7, "quantity": 2}]
    assert properties_valid(schema, good)
    assert not properties_valid(schema, [*good, {"product_id": "p2", "price": -1}])
    assert not properties_valid(schema, [*good, {"name": "no id"}])
    assert properties_valid(schema, [])


@pytest.mark.parametrize(
    ("event", "shaped"),
    [
        # hand-written from the contract's models: each type's own fields, and only those
        # (the contract keeps another type's field as an unknown one: such an event is
        # valid, and the exact path takes it)
        ({"type": "track", "event": "x", "properties": {}}, True),
        ({"type": "page", "name": "Home", "category": "Docs", "properties": {}}, True),
        ({"type": "identify", "traits": {}}, True),
        ({"type": "group", "groupId": "g", "traits": {}}, True),
        ({"type": "alias", "previousId": "p", "userId": "u"}, True),
        ({"type": "track", "properties": {}}, False),  # event is required
        ({"type": "track", "event": "x", "groupId": "g"}, False),  # a group's field
        ({"type": "page", "event": "x"}, False),  # a track's field
        ({"type": "identify", "properties": {}}, False),  # not an identify's field
        ({"type": "group", "traits": {}}, False),  # groupId is required
        ({"type": "alias", "previousId": "p"}, False),  # an alias names its userId
        ({"type": "alias", "previousId": "p", "userId": None}, False),  # ... not null
    ],
)
def test_an_event_has_the_fields_of_its_type(event, shaped):
    message = msgspec.json.decode(json.dumps(event), type=Event)
    assert shape_valid(message) is shaped


def test_an_unknown_type_is_not_decoded():
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"type": "teleport", "event": "x"}', type=Event)
