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
