"""The collector's fast path (collector.fastpath, the compiled contract) against its exact
path (collector.ingest, the Pydantic contract): a batch gives the same messages, attributes,
rejections and dead letters either way, for hand-written and generated batches."""

from __future__ import annotations

import json
from typing import Any

import orjson
from contract_cases import CONTEXT, INVALID, VALID, events, with_identity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collector.auth import Redactor
from collector.fastpath import decode_batch, ingest_decoded
from collector.ingest import ingest_batch
from collector.wire import PubsubMessage

RECEIVED = "2026-12-06T04:00:00.000Z"


def as_orjson(text: str) -> int | float:
    """An integer as orjson reads it: beyond 64 bits, a float. (The exact path publishes
    such integers rounded, the fast path as sent: the one documented difference.)"""
    value = int(text)
    return value if -(2**63) <= value < 2**64 else float(value)


def published(messages: list[bytes]) -> list[tuple[dict[str, Any], dict[str, str]]]:
    out = []
    for encoded in messages:
        message = PubsubMessage.FromString(encoded)
        out.append((json.loads(message.data, parse_int=as_orjson), dict(message.attributes)))
    return out


def both_paths(body: dict[str, Any]) -> tuple[Any, Any]:
    raw = json.dumps(body).encode()
    redactor = Redactor(["secret-key"])
    exact = ingest_batch(orjson.loads(raw), raw, "web", RECEIVED, redactor)
    decoded = decode_batch(raw)
    assert decoded is not None
    fast = ingest_decoded(decoded, "web", RECEIVED, redactor)
    return exact, fast


def assert_same(exact: Any, fast: Any) -> None:
    assert published(fast.messages) == published(exact.messages)
    assert fast.message_ids == exact.message_ids
    assert fast.rejections == exact.rejections
    assert published(fast.dead_letters) == published(exact.dead_letters)
    assert fast.accepted_types == exact.accepted_types


def numbered(events_: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"messageId": f"m-{i}", **with_identity(e)} for i, e in enumerate(events_)]


def test_a_batch_is_published_alike_through_both_paths():
    batch = numbered(VALID + INVALID)
    batch[3]["context"] = CONTEXT
    batch[4].pop("messageId")  # derived from the content: the exact path's rule
    batch[5]["writeKey"] = "secret-key"
    exact, fast = both_paths({"batch": batch, "sentAt": "2026-12-06T03:59:59Z"})
    assert exact.accepted == len(VALID), "the hand-written cases"
    assert_same(exact, fast)


def test_batch_context_and_integrations_merge_alike():
    batch = numbered(VALID[:6])
    batch[0]["context"] = {"ip": "198.51.100.1", "locale": "fr-FR"}
    batch[1]["integrations"] = {"All": False}
    body = {
        "batch": batch,
        "context": CONTEXT,
        "integrations": {"Amplitude": True},
        "sentAt": "2026-12-06T03:59:59Z",
    }
    assert_same(*both_paths(body))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(events(), min_size=1, max_size=6), st.sampled_from([None, CONTEXT, "odd"]))
def test_generated_batches_are_published_alike(batch, context):
    body: dict[str, Any] = {"batch": batch, "sentAt": "2026-12-06T03:59:59Z"}
    if context is not None:
        body["context"] = context
    assert_same(*both_paths(body))


def test_published_bytes_keep_the_contract_field_order():
    # hand-written: fields sent in another order than the contract's are published compact,
    # `type` first, then the fields in the order of the type's model (platform_core.contract:
    # the message fields, then the type's own), then the SDK fields; the batch's sentAt and
    # the receipt time stamped in their places
    batch = [
        {
            "properties": {"path": "/"},
            "name": "Home",
            "type": "page",
            "category": "Docs",
            "anonymousId": "a-1",
            "messageId": "m-1",
        },
        {"userId": "u1", "previousId": "p-1", "type": "alias", "messageId": "m-2"},
        {
            "channel": "server",
            "event": "Signed Up",
            "properties": {"plan": "pro"},
            "type": "track",
            "context": {"ip": "203.0.113.9"},
            "userId": "u2",
            "timestamp": "2026-12-06T03:59:58Z",
            "messageId": "m-3",
        },
        {"traits": {"n": 1}, "groupId": "g-1", "type": "group", "userId": "u3", "messageId": "m-4"},
    ]
    body = json.dumps({"batch": batch, "sentAt": "2026-12-06T03:59:59Z"}).encode()
    decoded = decode_batch(body)
    assert decoded is not None
    result = ingest_decoded(decoded, "web", RECEIVED, Redactor([]))
    stamped = '"sentAt":"2026-12-06T03:59:59Z","receivedAt":"2026-12-06T04:00:00.000Z"'
    assert [PubsubMessage.FromString(m).data.decode() for m in result.messages] == [
        '{"type":"page","messageId":"m-1","anonymousId":"a-1",'
        + stamped
        + ',"name":"Home","category":"Docs","properties":{"path":"/"}}',
        '{"type":"alias","messageId":"m-2","userId":"u1",' + stamped + ',"previousId":"p-1"}',
        '{"type":"track","messageId":"m-3","userId":"u2","timestamp":"2026-12-06T03:59:58Z",'
        + stamped
        + ',"context":{"ip":"203.0.113.9"},"event":"Signed Up","properties":{"plan":"pro"},'
        '"channel":"server"}',
        '{"type":"group","messageId":"m-4","userId":"u3",'
        + stamped
        + ',"groupId":"g-1","traits":{"n":1}}',
    ]
