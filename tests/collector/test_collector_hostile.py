"""Hostile input against a live collector and the Pub/Sub emulator: what a write-key holder
(or anyone) can send to make the collector use memory, CPU or storage out of proportion, leak
a write key, or fail. Every case gets a clear 4xx (never a 5xx), nothing of a refused request
is published, and the collector keeps serving.

Expected answers are written by hand from the API's documented limits (README, Collector):
32 KB per event as stamped, 500 KB per batch body, 1,000 events per batch, 2 MB of messages
per request, gzip only with the key in the Authorization header and at most a few members.
"""

from __future__ import annotations

import gzip
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from collector_helpers import (
    CollectorProcess,
    LiveServer,
    Topics,
    basic,
    collector_env,
    collector_settings,
    peak_rss_bytes,
)

from collector.app import create_app
from platform_core.raw.rows import dead_letter_row

pytestmark = pytest.mark.slow  # needs the Pub/Sub emulator

WEB = basic("web-key")
MB = 1024 * 1024


@pytest.fixture(scope="module")
def topics(pubsub_emulator):
    topics = Topics(pubsub_emulator, prefix="hostile")
    yield topics
    topics.close()


@pytest.fixture(scope="module")
def server(topics, tmp_path_factory):
    spool = tmp_path_factory.mktemp("hostile") / "spool"
    with LiveServer(create_app(collector_settings(topics, spool))) as live:
        yield live


@pytest.fixture
def http(server, topics):
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client
    # whatever a case left on the topics must not leak into the next one
    topics.events_received(10**6, timeout=0.3)
    topics.dead_letters(10**6, timeout=0.3)


def track(**extra) -> dict:
    return {"type": "track", "event": "Signed Up", "userId": "u-1", **extra}


def amplifying_batch(events: int = 1000, context_bytes: int = 430_000) -> bytes:
    """The issue's reproduction: ~477 KB, 1,000 tiny events and a 430 KB batch context that
    would be merged into each of them (430 MB of messages)."""
    batch = [{"type": "track", "event": "e", "userId": "u"} for _ in range(events)]
    body = orjson.dumps({"batch": batch, "context": {"blob": "x" * context_bytes}})
    assert len(body) < 500 * 1024
    return body


def gzip_members(count: int, payload: bytes = b"") -> bytes:
    return b"".join(gzip.compress(payload) for _ in range(count))


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# (name, path, body, extra headers, status, code). `WEB` is sent unless the headers say
# otherwise; `None` as a header value removes it.
CASES = [
    ("not json", "/v1/track", b"{not json", {}, 400, "invalid_json"),
    ("truncated json", "/v1/batch", b'{"batch": [{"type": "tr', {}, 400, "invalid_json"),
    ("empty body", "/v1/track", b"", {}, 400, "invalid_json"),
    ("NaN", "/v1/track", b'{"event": "x", "userId": "u", "n": NaN}', {}, 400, "invalid_json"),
    ("not utf-8", "/v1/track", b'{"event": "\xff\xfe", "userId": "u"}', {}, 400, "invalid_json"),
    (
        "lone surrogate",
        "/v1/track",
        b'{"event": "\\ud800", "userId": "u"}',
        {},
        400,
        "invalid_json",
    ),
    ("100k-deep array", "/v1/batch", nested(100_000), {}, 400, "invalid_json"),
    (
        "300-deep properties",
        "/v1/track",
        b'{"event": "x", "userId": "u", "properties": {"p": ' + nested(300) + b"}}",
        {},
        400,
        "invalid_event",
    ),
    ("batch not a list", "/v1/batch", b'{"batch": {"a": 1}}', {}, 400, "invalid_batch"),
    ("body is a list", "/v1/batch", b"[1, 2, 3]", {}, 400, "invalid_batch"),
    ("event is a list", "/v1/track", b"[1, 2]", {}, 400, "invalid_event"),
    ("event is a string", "/v1/track", b'"track"', {}, 400, "invalid_event"),
    ("userId a number", "/v1/track", orjson.dumps(track(userId=7)), {}, 400, "invalid_event"),
    (
        "properties a string",
        "/v1/track",
        orjson.dumps(track(properties="x")),
        {},
        400,
        "invalid_event",
    ),
    ("1e999", "/v1/page", b'{"userId": "u", "timestamp": 1e999}', {}, 400, "invalid_json"),
    (
        "5,000-digit integer",
        "/v1/track",
        orjson.dumps(track())[:-1] + b',"n":' + b"9" * 5000 + b"}",
        {},
        400,
        "invalid_json",
    ),
    (
        "timestamp garbage",
        "/v1/page",
        b'{"userId": "u", "timestamp": "yesterday"}',
        {},
        400,
        "invalid_event",
    ),
    (
        "33 KB event",
        "/v1/track",
        orjson.dumps(track(properties={"b": "x" * 33 * 1024})),
        {},
        413,
        "payload_too_large",
    ),
    (
        "600 KB batch",
        "/v1/batch",
        orjson.dumps({"batch": [track(properties={"b": "x" * 20_000}) for _ in range(30)]}),
        {},
        413,
        "payload_too_large",
    ),
    ("430 KB context x 1,000 events", "/v1/batch", amplifying_batch(), {}, 413, None),
    (
        "40 KB context",
        "/v1/batch",
        orjson.dumps({"batch": [track()], "context": {"b": "x" * 40_000}}),
        {},
        413,
        None,
    ),
    (
        "170k empty items",
        "/v1/batch",
        b'{"batch": [' + b",".join([b"{}"] * 170_000) + b"]}",
        {},
        413,
        "too_many_events",
    ),
    (
        "1,001 valid events",
        "/v1/batch",
        orjson.dumps({"batch": [track(messageId=str(i)) for i in range(1001)]}),
        {},
        413,
        "too_many_events",
    ),
    ("not gzip", "/v1/track", b"plain text", {"Content-Encoding": "gzip"}, 400, "invalid_gzip"),
    (
        "truncated gzip",
        "/v1/track",
        gzip.compress(orjson.dumps(track()))[:-6],
        {"Content-Encoding": "gzip"},
        400,
        "invalid_gzip",
    ),
    (
        "gzip bomb",
        "/v1/batch",
        gzip.compress(b" " * (50 * MB), 9),
        {"Content-Encoding": "gzip"},
        413,
        "payload_too_large",
    ),
    (
        "25k empty gzip members",
        "/v1/batch",
        gzip_members(25_000),
        {"Content-Encoding": "gzip"},
        400,
        "invalid_gzip",
    ),
    (
        "gzip without a header key",
        "/v1/track",
        gzip.compress(orjson.dumps(track(writeKey="web-key"))),
        {"Content-Encoding": "gzip", "Authorization": None},
        401,
        "missing_write_key",
    ),
    ("brotli", "/v1/track", b"\x8b\x00", {"Content-Encoding": "br"}, 415, "unsupported_encoding"),
    ("xml", "/v1/track", b"<event/>", {"Content-Type": "application/xml"}, 415, None),
    (
        "garbage authorization",
        "/v1/track",
        orjson.dumps(track()),
        {"Authorization": "Basic %%%"},
        401,
        "missing_write_key",
    ),
    (
        "writeKey not a string",
        "/v1/track",
        orjson.dumps(track(writeKey=12345)),
        {"Authorization": None},
        401,
        "missing_write_key",
    ),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_hostile_request_gets_a_clear_answer(http, path, body, headers, status, code):
    sent = {k: v for k, v in {**WEB, **headers}.items() if v is not None}
    response = http.post(path, content=body, headers=sent)
    assert response.status_code == status, response.text
    answer = response.json()
    if status != 200:
        assert answer["success"] is False and answer["message"] and answer["reason"]
    if code is not None:
        assert answer["code"] == code, answer
    assert http.get("/healthz").status_code == 200


def test_no_hostile_case_failed_the_server(http):
    """Run after the cases above (same module, same collector): no answer was a 5xx."""
    text = http.get("/metrics").text
    assert 'status="500"' not in text and 'status="503"' not in text


def test_amplifying_batch_is_refused_and_memory_stays_bounded(pubsub_emulator, tmp_path):
    """The issue's 477 KB batch: today 430 MB of messages and ~870 MB RSS. A 413 that names
    the cause, nothing published or spooled, and the collector's peak RSS grows by a small
    fraction of that (measured on the collector's own process, /proc VmHWM)."""
    topics = Topics(pubsub_emulator, prefix="amplify")
    env = collector_env(topics, tmp_path / "spool", COLLECTOR_SPOOL_MAX_MB="64")
    body = amplifying_batch()
    try:
        with (
            CollectorProcess(env, tmp_path / "collector.log") as collector,
            httpx.Client(base_url=collector.url, headers=WEB, timeout=120) as http,
        ):
            warm = {"batch": [track(messageId=str(uuid.uuid4())) for _ in range(100)]}
            assert http.post("/v1/batch", json=warm).status_code == 200
            baseline = peak_rss_bytes(collector.pid)
            for _ in range(3):
                response = http.post("/v1/batch", content=body)
                assert response.status_code == 413, response.text[:500]
                assert "context" in response.json()["reason"]
            growth = peak_rss_bytes(collector.pid) - baseline
            print(f"peak RSS {baseline / MB:.0f} MB before, +{growth / MB:.1f} MB after")
            assert growth < 64 * MB, f"peak RSS grew by {growth / MB:.0f} MB"
            after = {"batch": [track(messageId=str(uuid.uuid4())) for _ in range(5)]}
            assert http.post("/v1/batch", json=after).json()["delivery"] == "published"
        assert len(topics.events_received(105, timeout=30, settle=1.0)) == 105
        assert not list((tmp_path / "spool").glob("segment-*.log"))
    finally:
        topics.close()


# --- write keys never leak ---------------------------------------------------------------


SECRET = "web-key"  # the key the requests below authenticate with


def leak_cases() -> list[tuple[str, str, bytes, dict[str, str]]]:
    """(what, path, body, headers): bodies that fail validation (or parsing) and carry the
    write key in each place a client may put one."""
    bad = {"type": "track", "userId": "u"}  # no event name: invalid
    return [
        ("body writeKey, single event", "/v1/track", orjson.dumps({**bad, "writeKey": SECRET}), {}),
        (
            "batch writeKey and an item's writeKey",
            "/v1/batch",
            orjson.dumps({"batch": [{**bad, "writeKey": SECRET}], "writeKey": SECRET}),
            {},
        ),
        (
            "Basic auth, key repeated in properties and messageId",
            "/v1/track",
            orjson.dumps({**bad, "properties": {"note": SECRET}, "messageId": SECRET}),
            basic(SECRET),
        ),
        (
            "query string and body",
            f"/v1/track?writeKey={SECRET}",
            orjson.dumps({**bad, "context": {"writeKey": SECRET}}),
            basic(SECRET),
        ),
        (
            "unparseable body with the key",
            "/v1/track",
            b'{"writeKey": "' + SECRET.encode() + b'", broken',
            basic(SECRET),
        ),
        (
            "not a batch, key in the body",
            "/v1/batch",
            orjson.dumps({"events": [bad], "writeKey": SECRET}),
            basic(SECRET),
        ),
        (
            "Bearer, key as the event type",
            "/v1/batch",
            orjson.dumps({"batch": [{"type": SECRET, "userId": "u"}]}),
            {"Authorization": f"Bearer {SECRET}"},
        ),
    ]


def test_dead_letters_never_carry_a_write_key(http, topics):
    cases = leak_cases()
    for _, path, body, headers in cases:
        response = http.post(path, content=body, headers=headers)
        assert response.status_code in (200, 400), response.text
    letters = topics.dead_letters(len(cases), timeout=30, settle=1.0)
    assert len(letters) == len(cases)
    for letter in letters:
        assert SECRET.encode() not in letter.data, letter.data
        for value in letter.attributes.values():
            assert SECRET not in value, letter.attributes
        # the raw.events_dead_letter row Beam builds from it (same function)
        row = dead_letter_row(
            stage=letter.attributes["stage"],
            error=letter.attributes["error"],
            payload=letter.data,
            ingested_at=datetime.now(UTC),
            source=letter.attributes.get("source"),
            message_id=letter.attributes.get("message_id"),
        )
        assert all(SECRET not in str(value) for value in row.values()), row


# --- gzip only after authentication ------------------------------------------------------


def test_gzip_is_inflated_only_after_authentication(http, topics):
    """Broken gzip without a write key in the header: 401 (nothing was inflated), not the
    400 that inflating it would give; the same body authenticated gets the gzip error."""
    broken = b"\x1f\x8b" + b"\x00" * 100
    anonymous = http.post("/v1/track", content=broken, headers={"Content-Encoding": "gzip"})
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "missing_write_key"
    wrong = http.post(
        "/v1/track", content=broken, headers={"Content-Encoding": "gzip", **basic("nope")}
    )
    assert wrong.status_code == 401 and wrong.json()["code"] == "invalid_write_key"
    known = http.post("/v1/track", content=broken, headers={"Content-Encoding": "gzip", **WEB})
    assert known.status_code == 400 and known.json()["code"] == "invalid_gzip"


# --- retried events without messageId ----------------------------------------------------


def test_a_retried_event_without_message_id_gets_the_same_id(http, topics):
    event = {"event": "Signed Up", "userId": "u-retry", "timestamp": "2026-11-26T03:01:12Z"}
    first = http.post("/v1/track", json={**event, "sentAt": "2026-11-26T03:01:13Z"}, headers=WEB)
    retry = http.post("/v1/track", json={**event, "sentAt": "2026-11-26T03:01:19Z"}, headers=WEB)
    other_source = http.post("/v1/track", json=event, headers=basic("ios-key"))
    other_event = http.post("/v1/track", json={**event, "userId": "u-2"}, headers=WEB)
    ids = [r.json()["messageId"] for r in (first, retry, other_source, other_event)]
    assert ids[0] == ids[1], "a retry (new sentAt) keeps the id"
    assert len({ids[0], ids[2], ids[3]}) == 3, "another source or content: another id"
    received = {r.attributes["message_id"] for r in topics.events_received(4)}
    assert received == set(ids)
    batch = http.post("/v1/batch", json={"batch": [{"type": "track", **event}]}, headers=WEB)
    assert batch.status_code == 200
    [again] = topics.events_received(1)
    assert again.attributes["message_id"] == ids[0], "same id through /v1/batch"
