"""Collector building blocks without any service: auth, config, bodies, wire encoding,
batch ingestion, validation shortcuts, the spool, logs."""

from __future__ import annotations

import base64
import gzip
import io
import json
import logging
import os
import random
import subprocess
import sys
import tracemalloc
from datetime import UTC, datetime

import orjson
import pytest

from collector import auth, wire
from collector.__main__ import uvicorn_config
from collector.body import check_content_type, decode_content, gunzip_limited, parse_json
from collector.config import (
    DEMO_WRITE_KEYS,
    MAX_BATCH_BYTES,
    MAX_EVENT_BYTES,
    CollectorConfig,
    CollectorConfigError,
)
from collector.errors import ApiError
from collector.handler import received_at_text
from collector.ingest import ingest_batch, ingest_event
from collector.logs import JsonFormatter
from collector.spool import Spool, SpoolError
from collector.spool_format import HEADER
from platform_core.contract import (
    ContractError,
    check_messages,
    isoformat_z,
    parse_message,
    stamp,
    stamp_received,
)
from platform_core.settings import Settings, SettingsError

RECEIVED = "2026-11-26T03:01:13.500Z"


def valid_track(i: int = 0, **extra) -> dict:
    return {
        "type": "track",
        "event": "Product Viewed",
        "anonymousId": f"anon-{i}",
        "messageId": f"m-{i}",
        "timestamp": "2026-11-26T03:01:12.922+00:00",
        "properties": {"product_id": f"p-{i}", "price": 9.5},
        **extra,
    }


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Basic " + base64.b64encode(b"wk-1:").decode(), "wk-1"),
        ("Basic " + base64.b64encode(b"wk-1").decode(), "wk-1"),  # no colon: old clients
        ("basic " + base64.b64encode(b"wk-1:ignored").decode(), "wk-1"),
        ("Bearer wk-2", "wk-2"),
        ("Basic !!!not-base64", None),
        ("Basic " + base64.b64encode(b":").decode(), None),
        ("Digest abc", None),
        ("", None),
        (None, None),
    ],
)
def test_key_from_authorization(header, key):
    assert auth.key_from_authorization(header) == key


def test_key_from_body():
    assert auth.key_from_body({"writeKey": "k", "batch": []}) == "k"
    assert auth.key_from_body({"writeKey": 5}) is None
    assert auth.key_from_body([{"writeKey": "k"}]) is None


def test_redactor_removes_key_fields_and_configured_keys_anywhere():
    keys = auth.WriteKeys({"sk_live_abc": "web", "sk_live_abcdef": "ios"})
    data = (
        b'{"writeKey":"anything","p":{"note":"key sk_live_abcdef and sk_live_abc"},'
        b'"write_key" :  "x\\"y", "broken": "sk_live_abc'
    )
    redacted = keys.redactor.redact(data)
    assert b"sk_live" not in redacted and b"anything" not in redacted
    assert redacted.count(b"[redacted]") == 5
    assert keys.redactor.redact_text("got 'sk_live_abc'") == "got '[redacted]'"
    assert auth.Redactor().redact(b'{"k": "sk_live_abc"}') == b'{"k": "sk_live_abc"}'


def test_write_keys_map_to_sources_and_reject_unknown():
    keys = auth.WriteKeys({"a-key": "web", "b-key": "ios", "c-key": "web"})
    assert keys.source_for("a-key") == "web"
    assert keys.source_for("b-key") == "ios"
    assert keys.source_for("c-key") == "web"
    assert keys.source_for("a-ke") is None
    assert keys.source_for("a-key ") is None
    assert keys.source_for("") is None
    assert keys.source_for(None) is None
    assert keys.source_for("\udcff") is None  # not encodable as UTF-8: still no crash


def test_write_key_lookup_compares_every_key_in_constant_time(monkeypatch):
    """hmac.compare_digest on equal-length digests, against every key, no early exit."""
    configured = {f"key-{i}": f"source-{i}" for i in range(5)}
    keys = auth.WriteKeys(configured)
    calls: list[tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    for presented, expected in [("key-0", "source-0"), ("key-4", "source-4"), ("nope", None)]:
        calls.clear()
        assert keys.source_for(presented) == expected
        assert len(calls) == len(configured), "every configured key is compared"
        assert {len(a) for a, _ in calls} | {len(b) for _, b in calls} == {32}


# --- config ------------------------------------------------------------------------------


def test_write_keys_setting_parsing():
    keys = Settings.from_env({"COLLECTOR_WRITE_KEYS": " k1=web , k2 = ios,,"})
    assert keys.collector_write_keys == {"k1": "web", "k2": "ios"}
    assert "k1" not in repr(keys), "write keys stay out of the settings' repr"
    with pytest.raises(SettingsError, match="COLLECTOR_WRITE_KEYS") as caught:
        Settings.from_env({"COLLECTOR_WRITE_KEYS": "k1=web,secret-key-without-source"})
    assert "secret-key" not in str(caught.value), "a malformed entry is not echoed"
    with pytest.raises(SettingsError):
        Settings.from_env({"COLLECTOR_WRITE_KEYS": "k1=web,k1=ios"})


def test_local_mode_without_keys_uses_named_demo_keys(tmp_path):
    config = CollectorConfig.from_settings(Settings.from_env({"DATA_DIR": str(tmp_path)}))
    assert config.demo_keys
    assert config.write_keys == DEMO_WRITE_KEYS
    assert all(key.startswith("demo-") for key in config.write_keys)
    assert config.spool_dir == tmp_path / "spool"


def test_gcp_mode_without_keys_refuses_to_start():
    with pytest.raises(CollectorConfigError, match="COLLECTOR_WRITE_KEYS"):
        CollectorConfig.from_settings(Settings.from_env({"PLATFORM_ENV": "gcp"}))
    config = CollectorConfig.from_settings(
        Settings.from_env({"PLATFORM_ENV": "gcp", "COLLECTOR_WRITE_KEYS": "k=web"})
    )
    assert config.write_keys == {"k": "web"} and not config.demo_keys


@pytest.mark.parametrize("value", ["0", "-1", "lots"])
def test_spool_limit_must_be_positive(value):
    with pytest.raises(SettingsError, match="COLLECTOR_SPOOL_MAX_MB"):
        Settings.from_env({"COLLECTOR_SPOOL_MAX_MB": value})


def test_config_reads_topics_cors_and_fractional_spool_limit():
    config = CollectorConfig.from_settings(
        Settings.from_env(
            {
                "GCP_PROJECT": "shop-prod",
                "PUBSUB_EVENTS_TOPIC": "ev",
                "COLLECTOR_SPOOL_MAX_MB": "0.5",
                "COLLECTOR_CORS_ORIGINS": "https://shop.example.com, https://m.example.com",
            }
        )
    )
    assert config.events_topic_path == "projects/shop-prod/topics/ev"
    assert config.dead_letter_topic_path == "projects/shop-prod/topics/events-dead-letter"
    assert config.spool_max_bytes == 512 * 1024
    assert config.cors_origins == ("https://shop.example.com", "https://m.example.com")


# --- bodies ------------------------------------------------------------------------------


def test_gzip_round_trip_and_multi_member():
    body = b'{"batch": []}'
    assert decode_content(gzip.compress(body), "gzip", 1000) == body
    assert (
        decode_content(gzip.compress(b'{"a":') + gzip.compress(b"1}"), "gzip", 1000) == b'{"a":1}'
    )
    assert decode_content(body, None, 1000) == body
    assert decode_content(body, "identity", 1000) == body


def test_gzip_bomb_is_refused_without_inflating_it():
    bomb = gzip.compress(b"\0" * (200 * 1024 * 1024), compresslevel=9)  # 200 MB -> ~200 KB
    assert len(bomb) < MAX_BATCH_BYTES
    tracemalloc.start()
    with pytest.raises(ApiError) as caught:
        gunzip_limited(bomb, MAX_BATCH_BYTES)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert caught.value.status == 413
    assert peak < 8 * MAX_BATCH_BYTES, f"inflating used {peak} bytes"


def test_gzip_members_are_capped():
    """A few members are fine (gzip(1) concatenations); 500 KB of empty members is refused
    after the cap, not inflated member by member."""
    two = gzip.compress(b'{"a":') + gzip.compress(b" 1}")
    assert gunzip_limited(two, MAX_BATCH_BYTES) == b'{"a": 1}'
    empties = b"".join(gzip.compress(b"") for _ in range(25_000))
    assert len(empties) <= MAX_BATCH_BYTES
    with pytest.raises(ApiError) as caught:
        gunzip_limited(empties, MAX_BATCH_BYTES)
    assert caught.value.code == "invalid_gzip" and "members" in caught.value.reason


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"not gzip at all", "invalid_gzip"), (gzip.compress(b'{"a": 1}')[:-6], "invalid_gzip")],
    # named: gzip's header holds the time, and the test processes must collect equal ids
    ids=["not-gzip", "truncated-gzip"],
)
def test_broken_gzip_is_a_400(body, code):
    with pytest.raises(ApiError) as caught:
        decode_content(body, "gzip", 1000)
    assert (caught.value.status, caught.value.code) == (400, code)


def test_other_encodings_and_media_types_are_415():
    with pytest.raises(ApiError) as caught:
        decode_content(b"x", "br", 1000)
    assert caught.value.status == 415
    for ok in (
        None,
        "application/json",
        "text/plain;charset=UTF-8",
        "application/cloudevents+json",
    ):
        check_content_type(ok)
    with pytest.raises(ApiError) as caught:
        check_content_type("multipart/form-data; boundary=x")
    assert caught.value.status == 415


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"[1,]", b'{"a": NaN}', b'"\xff"', b'{"a":"\\ud800"}', b"[" * 2000 + b"]" * 2000],
)
def test_invalid_json_is_a_400(body):
    with pytest.raises(ApiError) as caught:
        parse_json(body)
    assert (caught.value.status, caught.value.code) == (400, "invalid_json")
    assert "\n" not in caught.value.reason


def test_error_body_has_code_message_and_reason():
    body = ApiError(413, "payload_too_large", "too big", "the body is 2 MB").body()
    assert body == {
        "success": False,
        "code": "payload_too_large",
        "message": "too big",
        "reason": "the body is 2 MB",
    }


# --- wire encoding -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 127, 128, 300, 16_383, 16_384, 2_000_000])
def test_encoded_publish_request_decodes_with_the_protobuf_runtime(size):
    data = os.urandom(size)
    attributes = {
        "source": "web",
        "type": "track",
        "event": "Ürün Görüntülendi",
        "message_id": "m" * 300,
        "received_at": RECEIVED,
    }
    first = wire.message(data, wire.attributes(attributes))
    second = wire.message(b"{}", wire.attribute("k", ""))
    topic = "projects/local-project/topics/events"
    encoded = wire.publish_request(topic, [first, second])
    decoded = wire.PublishRequest.FromString(encoded)
    assert decoded.topic == topic
    assert decoded.messages[0].data == data
    assert dict(decoded.messages[0].attributes) == attributes
    assert decoded.messages[1].data == b"{}" and dict(decoded.messages[1].attributes) == {"k": ""}
    assert wire.topic_of(encoded) == topic
    reference = wire.PublishRequest(
        topic=topic, messages=[wire.PubsubMessage(data=data, attributes=attributes)]
    ).SerializeToString()
    assert wire.PublishRequest.FromString(reference) == wire.PublishRequest.FromString(
        wire.publish_request(topic, [first])
    )


def test_attribute_values_are_cut_to_1024_bytes_on_a_character_boundary():
    value = wire.attribute_value("é" * 1000)
    assert len(value.encode()) <= 1024 and value == "é" * 512
    assert wire.attribute_value("a\ud800b") == "a?b"


# --- the contract helpers the collector adds -------------------------------------------


def test_stamp_received_equals_stamp():
    now = datetime(2026, 11, 26, 3, 1, 13, 500_000, tzinfo=UTC)
    for message, route in [
        ({"event": "X", "writeKey": "k", "messageId": "m"}, "track"),
        ({"type": "page", "messageId": ""}, None),
        ({"type": "identify"}, "page"),
    ]:
        fast = stamp_received(message, isoformat_z(now), route)
        slow = stamp(message, now, route)
        if not message.get("messageId"):
            assert fast.pop("messageId") and slow.pop("messageId")
        assert fast == slow and list(fast) == list(slow)
        assert "writeKey" in message or message.get("writeKey") is None  # input untouched


CHECK_CASES = [
    valid_track(1),
    {"type": "page", "anonymousId": "a", "name": "Home"},
    {"type": "screen", "userId": "u"},
    {"type": "identify", "userId": "u", "traits": {"email": "a@b.c"}},
    {"type": "group", "userId": "u", "groupId": "g"},
    {"type": "alias", "userId": "u", "previousId": "p"},
    {
        "type": "track",
        "event": "Order Completed",
        "userId": "u",
        "properties": {"order_id": "o1", "total": 10, "products": [{"product_id": "p"}]},
    },
    {"type": "track", "event": "Order Completed", "userId": "u", "properties": {"total": 1}},
    {"type": "track", "event": "Product Viewed", "userId": "u", "properties": {"price": -1}},
    {"type": "track", "userId": "u"},
    {"type": "track", "event": "X"},
    {"type": "bogus", "userId": "u"},
    {"userId": "u"},
    {"type": "page", "userId": "u", "timestamp": "yesterday"},
    {"type": "alias", "previousId": "p"},
    {"type": "track", "event": "Cart Viewed", "userId": "u", "properties": {"products": "x"}},
    {"type": "page", "userId": "u", "context": {"library": {"name": "a.js"}, "ip": "1.2.3.4"}},
    {"type": "page", "userId": "u", "context": {"library": {"name": "a.js"}, "ip": "1.2.3.4"}},
    {"type": "page", "userId": "u", "context": {"library": "a.js"}},
    {"type": "page", "userId": "u", "context": {"ip": 5}},
    {"type": "page", "userId": "u", "context": None},
    {"type": "page", "userId": "u", "context": []},
    {"type": "page", "userId": "u", "context": {}},
    {"type": "page", "context": {"library": {"name": "a.js"}, "ip": "1.2.3.4"}},
]


def test_check_messages_agrees_with_parse_message():
    def reason(message):
        try:
            parse_message(message)
        except ContractError as error:
            return error.reason
        return None

    expected = [reason(m) for m in CHECK_CASES]
    assert check_messages(CHECK_CASES) == expected
    assert sum(r is None for r in expected) == 10
    # all valid: the fast path (one pydantic call) must agree too
    valid = [m for m, r in zip(CHECK_CASES, expected, strict=True) if r is None]
    assert check_messages(valid) == [None] * len(valid)
    # a group of the same e-commerce event with one bad member
    group = [valid_track(i) for i in range(5)]
    group[3] = valid_track(3, properties={"price": 1})
    assert check_messages(group) == [None, None, None, reason(group[3]), None]
    assert check_messages([]) == []
    # one shared context, checked once: a bad one fails every message that carries it
    shared = {"library": {"name": "a.js"}, "page": {"url": 7}}
    same = [{"type": "page", "userId": f"u{i}", "context": dict(shared)} for i in range(3)]
    assert check_messages(same) == [reason(same[0])] * 3 and reason(same[0])


# --- ingestion ---------------------------------------------------------------------------


def decoded(messages: list[bytes]) -> list:
    return wire.PublishRequest.FromString(
        wire.publish_request("projects/p/topics/t", messages)
    ).messages


def test_batch_keeps_valid_neighbours_and_dead_letters_the_invalid():
    payload = {
        "batch": [
            valid_track(0),
            {"type": "track", "anonymousId": "a"},
            "not an object",
            valid_track(3, writeKey="inner"),
        ],
        "sentAt": "2026-11-26T03:01:13.000Z",
        "context": {"library": {"name": "analytics-python"}, "ip": "10.0.0.1"},
        "writeKey": "k",
    }
    result = ingest_batch(payload, b"{}", "server", RECEIVED)
    assert result.accepted == 2 and result.message_ids == ["m-0", "m-3"]
    assert [(r.index, r.code) for r in result.rejections] == [
        (1, "invalid_event"),
        (2, "invalid_event"),
    ]
    assert result.rejections[0].reason == "event: Field required"
    events = decoded(result.messages)
    first = orjson.loads(events[0].data)
    assert first["sentAt"] == "2026-11-26T03:01:13.000Z", "batch sentAt applies"
    assert first["receivedAt"] == RECEIVED
    assert first["context"] == {"library": {"name": "analytics-python"}, "ip": "10.0.0.1"}
    assert "writeKey" not in orjson.loads(events[1].data)
    assert dict(events[0].attributes) == {
        "source": "server",
        "type": "track",
        "event": "Product Viewed",
        "message_id": "m-0",
        "received_at": RECEIVED,
    }
    dead = decoded(result.dead_letters)
    assert orjson.loads(dead[0].data) == {"type": "track", "anonymousId": "a"}
    assert dict(dead[0].attributes) == {
        "source": "server",
        "error": "event: Field required",
        "stage": "collector",
    }
    assert orjson.loads(dead[1].data) == "not an object"


def test_event_sent_at_and_context_win_over_the_batch():
    event = valid_track(0, sentAt="2026-11-26T03:01:12.999Z", context={"ip": "1.2.3.4"})
    result = ingest_batch(
        {
            "batch": [event],
            "sentAt": "2026-01-01T00:00:00Z",
            "context": {"ip": "9.9.9.9", "locale": "de-DE"},
        },
        b"",
        "web",
        RECEIVED,
    )
    data = orjson.loads(decoded(result.messages)[0].data)
    assert data["sentAt"] == "2026-11-26T03:01:12.999Z"
    assert data["context"] == {"ip": "1.2.3.4", "locale": "de-DE"}


def test_event_over_32_kb_in_a_batch_is_rejected_alone():
    big = valid_track(1, properties={"product_id": "p", "blob": "x" * MAX_EVENT_BYTES})
    result = ingest_batch({"batch": [valid_track(0), big]}, b"", "web", RECEIVED)
    assert result.accepted == 1
    assert [(r.index, r.code) for r in result.rejections] == [(1, "event_too_large")]
    # just under the limit as sent, over it only because of what the collector stamps: kept
    padding = MAX_EVENT_BYTES - len(
        orjson.dumps(valid_track(2, properties={"product_id": "p", "blob": ""}))
    )
    edge = valid_track(2, properties={"product_id": "p", "blob": "x" * padding})
    assert len(orjson.dumps(edge)) == MAX_EVENT_BYTES
    assert ingest_batch({"batch": [edge]}, b"", "web", RECEIVED).accepted == 1


def test_single_event_generates_message_id_and_takes_type_from_route():
    result = ingest_event({"event": "Signed Up", "userId": "u"}, b"raw", "web", RECEIVED, "track")
    assert result.accepted == 1
    data = orjson.loads(decoded(result.messages)[0].data)
    assert data["type"] == "track" and data["messageId"] == result.message_ids[0]
    rejected = ingest_event({"userId": "u"}, b'{"userId":"u"}', "web", RECEIVED, "track")
    assert rejected.accepted == 0 and rejected.rejections[0].code == "invalid_event"
    assert decoded(rejected.dead_letters)[0].data == b'{"userId":"u"}', "raw body kept"


def test_not_a_batch_is_a_400():
    for payload in ({"events": []}, [], {"batch": {"a": 1}}):
        with pytest.raises(ApiError) as caught:
            ingest_batch(payload, b"", "web", RECEIVED)
        assert caught.value.code == "invalid_batch"


def test_random_batches_never_raise():
    rng = random.Random(3)
    atoms = [None, True, 0, -1, 1.5, "", "x", "2026-11-26T03:01:12Z", [], {}, "track", "page"]
    keys = [
        "type",
        "event",
        "userId",
        "anonymousId",
        "messageId",
        "timestamp",
        "sentAt",
        "properties",
        "context",
        "traits",
        "groupId",
        "previousId",
        "integrations",
    ]
    for _ in range(300):
        batch = []
        for _ in range(rng.randrange(1, 6)):
            event = {k: rng.choice(atoms) for k in rng.sample(keys, rng.randrange(0, len(keys)))}
            batch.append(event if rng.random() < 0.9 else rng.choice(atoms))
        result = ingest_batch(
            {"batch": batch, "sentAt": rng.choice(atoms), "context": rng.choice(atoms)},
            b"",
            "web",
            RECEIVED,
        )
        assert result.accepted + len(result.rejections) == len(batch)
        assert len(result.dead_letters) == len(result.rejections)


# --- spool -------------------------------------------------------------------------------


def frames(n: int, size: int = 100) -> list[tuple[bytes, int]]:
    return [(bytes([i % 256]) * size, i + 1) for i in range(n)]


def test_spool_append_read_commit_and_reopen(tmp_path):
    spool = Spool(tmp_path, max_bytes=10 * 1024 * 1024, segment_bytes=64 * 1024).open()
    assert spool.append_groups([frames(3), frames(2)]) == [True, True]
    assert (spool.pending_records, spool.pending_events) == (5, 1 + 2 + 3 + 1 + 2)
    records = spool.read(2)
    assert [r.payload[:1] for r in records] == [b"\x00", b"\x01"]
    spool.commit(records)
    assert spool.pending_records == 3
    spool.close()
    # a restart resumes after the committed position and never appends to old segments
    again = Spool(tmp_path, max_bytes=10 * 1024 * 1024, segment_bytes=64 * 1024).open()
    assert again.pending_records == 3
    rest = again.read(10)
    assert [(r.payload[:1], r.events) for r in rest] == [(b"\x02", 3), (b"\x00", 1), (b"\x01", 2)]
    assert again.append_groups([frames(1)]) == [True]
    assert len(again.read(10)) == 4
    again.commit(again.read(10))
    assert again.pending_records == 0 and again.disk_bytes == 0, "replayed segments deleted"
    assert again.oldest_written_at_ms() is None
    again.close()


def test_spool_rotates_segments_and_frees_replayed_ones(tmp_path):
    spool = Spool(tmp_path, max_bytes=10 * 1024 * 1024, segment_bytes=64 * 1024).open()
    for _ in range(20):
        assert spool.append_groups([frames(1, size=10_000)]) == [True]
    segments = sorted(tmp_path.glob("segment-*.log"))
    assert len(segments) > 2
    spool.commit(spool.read(10))
    assert len(sorted(tmp_path.glob("segment-*.log"))) < len(segments)
    spool.commit(spool.read(100))
    assert list(tmp_path.glob("segment-*.log")) == []
    spool.close()


def test_spool_full_refuses_whole_groups(tmp_path):
    spool = Spool(tmp_path, max_bytes=1000).open()
    assert spool.append_groups([frames(2, 300), frames(2, 300)]) == [True, False]
    assert spool.pending_records == 2 and spool.is_full(headroom=400)
    spool.commit(spool.read(10))
    assert spool.append_groups([frames(2, 300)]) == [True]
    spool.close()


def test_spool_detects_corruption(tmp_path):
    spool = Spool(tmp_path, max_bytes=1024 * 1024).open()
    spool.append_groups([frames(1)])
    segment = next(tmp_path.glob("segment-*.log"))
    with open(segment, "r+b") as handle:
        handle.seek(HEADER.size + 10)
        handle.write(b"\xff")
    assert spool.read(1)[0].corrupt
    spool.close()


def test_spool_is_locked_to_one_process(tmp_path):
    first = Spool(tmp_path, max_bytes=1024).open()
    with pytest.raises(SpoolError, match="in use"):
        Spool(tmp_path, max_bytes=1024).open()
    first.close()
    Spool(tmp_path, max_bytes=1024).open().close()


# --- logs --------------------------------------------------------------------------------


def test_a_write_key_in_a_query_string_never_reaches_the_logs():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("uvicorn.access.test")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            '%s - "%s %s HTTP/%s" %d', "1.2.3.4", "POST", "/v1/t?writeKey=s3cret&x=1", "1.1", 200
        )
    finally:
        logger.removeHandler(handler)
    line = json.loads(stream.getvalue())
    assert "s3cret" not in line["message"] and "writeKey=[redacted]&x=1" in line["message"]


def test_uvicorn_bounds_connections():
    config = CollectorConfig.from_settings(Settings.from_env({"COLLECTOR_MAX_CONNECTIONS": "77"}))
    server = uvicorn_config(object(), config)
    assert server.limit_concurrency == 77 and server.workers == 1
    assert CollectorConfig.from_settings(Settings.from_env({})).max_in_flight == 128


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, "-event_engine_client"),  # the collector's default transport
        ({"GRPC_EXPERIMENTS": "tcp_rcv_lowat"}, "tcp_rcv_lowat"),  # an operator's choice wins
    ],
)
def test_the_grpc_transport_is_chosen_before_grpc_loads(environment, expected):
    """gRPC reads GRPC_EXPERIMENTS when its core is imported: in a fresh interpreter that
    imports the collector's publisher, the value must be set when grpc is first imported."""
    probe = (
        "import builtins, os\n"
        "seen, real_import = [], builtins.__import__\n"
        "def spy(name, *args, **kwargs):\n"
        "    if name.split('.')[0] == 'grpc' and not seen:\n"
        "        seen.append(os.environ.get('GRPC_EXPERIMENTS'))\n"
        "    return real_import(name, *args, **kwargs)\n"
        "builtins.__import__ = spy\n"
        "import collector.publisher\n"
        "print(seen[0])\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "GRPC_EXPERIMENTS"} | environment
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected


def test_logs_are_one_json_object_per_line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("collector.test-json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning(
            "spooling %d events", 3, extra={"topic": "events", "when": datetime(2026, 1, 1)}
        )
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    first, second = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert first["message"] == "spooling 3 events" and first["level"] == "warning"
    assert first["topic"] == "events" and first["when"].startswith("2026-01-01")
    assert "ValueError: boom" in second["exception"]


@pytest.mark.parametrize(
    ("now", "text"),
    [
        (datetime(2026, 12, 6, 7, 15, 57, 646999, tzinfo=UTC), "2026-12-06T07:15:57.646Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 0, tzinfo=UTC), "2026-01-02T03:04:05.000Z"),
        (datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "1999-12-31T23:59:59.999Z"),
    ],
)
def test_received_at_is_written_as_the_contract_writes_timestamps(now, text):
    # the handler's fast formatting of the receipt time, against the spec's form (RFC 3339,
    # milliseconds truncated, Z) and the contract's isoformat_z
    assert received_at_text(now) == text
    assert isoformat_z(now) == text
