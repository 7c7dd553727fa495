"""The collector's HTTP API against the real Pub/Sub emulator: every route, the three ways to
send a write key, gzip, limits, dead letters, CORS, operations endpoints, OpenAPI.

Each test gets its own topics and subscriptions and a collector served by uvicorn on a free
loopback port."""

from __future__ import annotations

import gzip
import time
import uuid
from datetime import UTC, datetime

import httpx
import orjson
import pytest
from collector_helpers import LiveServer, Topics, basic, collector_settings

from collector.app import create_app
from collector.config import MAX_BATCH_BYTES, MAX_EVENT_BYTES
from platform_core.contract import MESSAGE_TYPES, SHORT_PATHS
from platform_core.raw.rows import event_row

pytestmark = pytest.mark.slow  # needs the Pub/Sub emulator

ORIGIN = "https://shop.example.com"
WEB = basic("web-key")


@pytest.fixture
def topics(pubsub_emulator):
    topics = Topics(pubsub_emulator)
    yield topics
    topics.close()


@pytest.fixture
def server(topics, tmp_path):
    app = create_app(collector_settings(topics, tmp_path / "spool", COLLECTOR_CORS_ORIGINS=ORIGIN))
    with LiveServer(app) as live:
        yield live


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def mid() -> str:
    return str(uuid.uuid4())


EVENTS = {
    "track": {"event": "Product Viewed", "properties": {"product_id": "p-1", "price": 12.5}},
    "page": {"name": "Home", "properties": {"path": "/"}},
    "screen": {"name": "Cart"},
    "identify": {"traits": {"email": "ada@example.com"}},
    "group": {"groupId": "acme"},
    "alias": {"previousId": "anon-1"},
}


def one(kind: str, **extra) -> dict:
    return {"userId": "user-1", "messageId": mid(), **EVENTS[kind], **extra}


def by_id(received) -> dict:
    return {r.attributes["message_id"]: r for r in received}


# --- routes ------------------------------------------------------------------------------


def test_every_single_event_route_publishes_one_message(http, topics):
    routes = [(f"/v1/{kind}", kind) for kind in MESSAGE_TYPES]
    routes += [(f"/v1/{short}", kind) for short, kind in SHORT_PATHS.items()]
    sent = {}
    for path, kind in routes:
        event = one(kind)  # no "type": the route says it
        response = http.post(path, json=event, headers=WEB)
        assert response.status_code == 200, (path, response.text)
        assert response.json() == {
            "success": True,
            "messageId": event["messageId"],
            "delivery": "published",
        }
        sent[event["messageId"]] = (path, kind, event)
    received = by_id(topics.events_received(len(sent), settle=0.5))
    assert set(received) == set(sent)
    for message_id, (path, kind, event) in sent.items():
        message = received[message_id]
        data = message.json
        assert data["type"] == kind, path
        assert data["receivedAt"].endswith("Z")
        assert {k: v for k, v in data.items() if k not in ("type", "receivedAt")} == event
        assert message.attributes == {
            "source": "web",
            "type": kind,
            "event": event.get("event", ""),
            "message_id": message_id,
            "received_at": data["receivedAt"],
        }


@pytest.mark.parametrize("path", ["/v1/batch", "/v1/b"])
def test_batch_routes_publish_every_event(http, topics, path):
    events = [{"type": kind, **one(kind)} for kind in MESSAGE_TYPES]
    response = http.post(
        path, json={"batch": events, "sentAt": "2026-11-26T03:01:13.000Z"}, headers=WEB
    )
    assert response.status_code == 200
    assert response.json() == {
        "success": True,
        "accepted": 6,
        "rejected": 0,
        "errors": [],
        "delivery": "published",
    }
    received = by_id(topics.events_received(6, settle=0.5))
    assert set(received) == {e["messageId"] for e in events}
    assert all(r.json["sentAt"] == "2026-11-26T03:01:13.000Z" for r in received.values())


def test_message_id_is_generated_when_missing(http, topics):
    response = http.post("/v1/page", json={"anonymousId": "a-1", "name": "Home"}, headers=WEB)
    generated = response.json()["messageId"]
    uuid.UUID(generated)
    [message] = topics.events_received(1)
    assert message.json["messageId"] == generated == message.attributes["message_id"]


def test_skew_corrected_timestamp_from_what_the_collector_publishes(http, topics):
    """A device clock 1 h fast: the consumer's event_row corrects it with the batch sentAt
    (server SDKs send sentAt only on the batch, so the collector must carry it over)."""
    event = {"type": "track", **one("track", timestamp="2026-11-26T04:00:00.000Z")}
    http.post(
        "/v1/batch", json={"batch": [event], "sentAt": "2026-11-26T04:00:05.000Z"}, headers=WEB
    )
    [message] = topics.events_received(1)
    received_at = datetime.fromisoformat(message.json["receivedAt"])
    row = event_row(
        message.json,
        source=message.attributes["source"],
        received_at=received_at,
        ingested_at=datetime.now(UTC),
        payload_json=message.data.decode(),
    )
    expected = received_at.replace(tzinfo=None) - (
        datetime(2026, 11, 26, 4, 0, 5) - datetime(2026, 11, 26, 4, 0, 0)
    )
    assert row["event_timestamp"] == expected
    assert row["message_id"] == event["messageId"] and row["source"] == "web"


# --- auth --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("style", "source"),
    [
        ("basic", "web"),
        ("basic-no-colon", "ios"),
        ("bearer", "server"),
        ("body", "ios"),
        ("batch-body", "server"),
    ],
)
def test_the_three_ways_to_send_a_write_key(http, topics, style, source):
    key = {"web": "web-key", "ios": "ios-key", "server": "server-key"}[source]
    event = one("track")
    path, body, headers = "/v1/track", dict(event), {}
    if style == "basic":
        headers = basic(key)
    elif style == "basic-no-colon":
        headers = basic(key, colon=False)
    elif style == "bearer":
        headers = {"Authorization": f"Bearer {key}"}
    elif style == "body":
        body["writeKey"] = key
    else:
        path, body = "/v1/batch", {"batch": [{"type": "track", **event}], "writeKey": key}
    response = http.post(path, json=body, headers=headers)
    assert response.status_code == 200, response.text
    [message] = topics.events_received(1)
    assert message.attributes["source"] == source
    assert "writeKey" not in message.json, "the write key never travels further"


def test_unknown_or_missing_write_key_is_401_and_nothing_is_published(http, topics):
    cases = [
        ("/v1/track", {"json": one("track")}, basic("wrong-key"), "invalid_write_key"),
        (
            "/v1/track",
            {"json": one("track")},
            {"Authorization": "Bearer nope"},
            "invalid_write_key",
        ),
        ("/v1/track", {"json": {**one("track"), "writeKey": "nope"}}, {}, "invalid_write_key"),
        ("/v1/batch", {"json": {"batch": [one("track")]}}, {}, "missing_write_key"),
        ("/v1/t", {"content": b"not json"}, {}, "invalid_json"),
    ]
    for path, body, headers, code in cases:
        response = http.post(path, headers=headers, **body)
        assert response.status_code == (400 if code == "invalid_json" else 401)
        answer = response.json()
        assert answer["code"] == code and answer["message"] and answer["reason"]
    assert topics.events_received(1, timeout=1.5) == []
    assert topics.dead_letters(1, timeout=1.5) == [], "unauthenticated bodies are not kept"


def test_header_key_wins_and_a_bad_header_falls_back_to_the_body_key(http, topics):
    # Segment's OAuth mode: a bearer token that is not a write key, plus writeKey in the body
    body = {**one("track"), "writeKey": "ios-key"}
    response = http.post("/v1/track", json=body, headers={"Authorization": "Bearer oauth-token"})
    assert response.status_code == 200
    assert topics.events_received(1)[0].attributes["source"] == "ios"


# --- bodies and limits -------------------------------------------------------------------


def test_gzip_bodies_and_text_plain(http, topics):
    events = [{"type": "track", **one("track")} for _ in range(3)]
    body = gzip.compress(orjson.dumps({"batch": events}))
    response = http.post(
        "/v1/batch",
        content=body,
        headers={**WEB, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.json()["accepted"] == 3
    single = one("page", writeKey="web-key")  # analytics.js: text/plain, key in the body
    response = http.post(
        "/v1/p", content=orjson.dumps(single), headers={"Content-Type": "text/plain;charset=UTF-8"}
    )
    assert response.status_code == 200
    received = by_id(topics.events_received(4))
    assert set(received) == {e["messageId"] for e in events} | {single["messageId"]}


def test_event_over_32_kb_is_413(http, topics):
    event = one("track", properties={"product_id": "p", "blob": "x" * MAX_EVENT_BYTES})
    response = http.post("/v1/track", json=event, headers=WEB)
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert "32 KB" in response.json()["message"]


def test_batch_over_500_kb_is_413_with_and_without_content_length(http, topics):
    events = [
        {"type": "track", **one("track", properties={"product_id": "p", "b": "x" * 20_000})}
        for _ in range(30)
    ]
    body = orjson.dumps({"batch": events})
    assert len(body) > MAX_BATCH_BYTES
    response = http.post("/v1/batch", content=body, headers=WEB)
    assert response.status_code == 413 and "500 KB" in response.json()["message"]

    def chunks():  # chunked transfer: no Content-Length to go by
        for i in range(0, len(body), 64 * 1024):
            yield body[i : i + 64 * 1024]

    response = http.post("/v1/batch", content=chunks(), headers=WEB)
    assert response.status_code == 413
    assert topics.events_received(1, timeout=1.5) == []


def test_gzip_bomb_is_413(http, topics):
    bomb = gzip.compress(orjson.dumps({"batch": []})[:-2] + b" " * (100 * 1024 * 1024) + b"]}", 9)
    assert len(bomb) < MAX_BATCH_BYTES
    response = http.post("/v1/batch", content=bomb, headers={**WEB, "Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert "decompressed" in response.json()["reason"]


def test_event_over_32_kb_in_a_batch_goes_to_the_dead_letter_topic(http, topics):
    small = {"type": "track", **one("track")}
    big = {"type": "track", **one("track", properties={"product_id": "p", "b": "x" * 40_000})}
    response = http.post("/v1/batch", json={"batch": [small, big]}, headers=WEB)
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (1, 1)
    assert answer["errors"][0]["code"] == "event_too_large"
    [dead] = topics.dead_letters(1)
    assert dead.attributes["message_id"] == big["messageId"]
    assert "32 KB" in dead.attributes["error"]
    assert dead.json == big
    assert [m.attributes["message_id"] for m in topics.events_received(1)] == [small["messageId"]]


# --- dead letters ------------------------------------------------------------------------


def test_mixed_batch_accepts_the_valid_and_dead_letters_the_invalid(http, topics):
    valid = [{"type": kind, **one(kind)} for kind in ("track", "page", "identify")]
    invalid = [
        {"type": "track", "userId": "u", "messageId": mid()},  # no event name
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "u",
            "messageId": mid(),
            "properties": {"total": 10},
        },  # order_id required by the e-commerce spec
        {"type": "page", "messageId": mid()},  # neither userId nor anonymousId
    ]
    batch = [valid[0], invalid[0], valid[1], invalid[1], invalid[2], valid[2]]
    response = http.post("/v1/batch", json={"batch": batch}, headers=basic("ios-key"))
    assert response.status_code == 200
    answer = response.json()
    assert (answer["accepted"], answer["rejected"]) == (3, 3)
    assert [e["index"] for e in answer["errors"]] == [1, 3, 4]
    reasons = {e["messageId"]: e["reason"] for e in answer["errors"]}
    assert reasons[invalid[0]["messageId"]] == "event: Field required"
    assert "order_id" in reasons[invalid[1]["messageId"]]
    assert "userId or anonymousId" in reasons[invalid[2]["messageId"]]
    events = by_id(topics.events_received(3, settle=0.5))
    assert set(events) == {e["messageId"] for e in valid}
    dead = {d.attributes["message_id"]: d for d in topics.dead_letters(3, settle=0.5)}
    assert set(dead) == set(reasons)
    for message_id, letter in dead.items():
        assert letter.attributes == {
            "source": "ios",
            "stage": "collector",
            "error": reasons[message_id],
            "message_id": message_id,
        }
    assert dead[invalid[1]["messageId"]].json == invalid[1], "the event as received"


def test_invalid_single_event_is_400_and_dead_lettered(http, topics):
    body = orjson.dumps({"event": "Product Added", "userId": "u", "properties": {}})
    response = http.post("/v1/track", content=body, headers=WEB)
    assert response.status_code == 400
    answer = response.json()
    assert answer["code"] == "invalid_event" and "product_id" in answer["reason"]
    [dead] = topics.dead_letters(1)
    assert dead.data == body and dead.attributes["error"] == answer["reason"]


def test_invalid_json_from_an_authenticated_client_is_dead_lettered(http, topics):
    response = http.post("/v1/batch", content=b'{"batch": [', headers=WEB)
    assert response.status_code == 400 and response.json()["code"] == "invalid_json"
    [dead] = topics.dead_letters(1)
    assert dead.data == b'{"batch": [' and "JSON" in dead.attributes["error"]
    response = http.post("/v1/batch", json={"events": []}, headers=WEB)
    assert response.status_code == 400 and response.json()["code"] == "invalid_batch"
    assert topics.dead_letters(1)[0].json == {"events": []}


def test_unsupported_media_type_and_encoding(http):
    response = http.post(
        "/v1/track",
        content=b"a=1",
        headers={**WEB, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    response = http.post("/v1/track", content=b"{}", headers={**WEB, "Content-Encoding": "br"})
    assert response.status_code == 415


# --- CORS --------------------------------------------------------------------------------


def test_cors_preflight_and_response_headers(http, topics):
    preflight = http.options(
        "/v1/t",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type, x-retry-count",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert {"authorization", "content-type", "x-retry-count"} <= {
        h.strip() for h in allowed.split(",")
    }
    assert "POST" in preflight.headers["access-control-allow-methods"]
    response = http.post(
        "/v1/t",
        content=orjson.dumps(one("track", writeKey="web-key")),
        headers={"Origin": ORIGIN, "Content-Type": "text/plain"},
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    other = http.options(
        "/v1/t", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


# --- operations --------------------------------------------------------------------------


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        starts = line.startswith(name + "{") or line.startswith(name + " ")
        if starts and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_health_readiness_and_metrics(http, topics):
    assert http.get("/healthz").json() == {"status": "ok"}
    ready = http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    batch = [{"type": "track", **one("track")}, {"type": "track", "userId": "u"}]
    http.post("/v1/batch", json={"batch": batch}, headers=WEB)
    http.post("/v1/track", json=one("track"), headers=basic("nope"))
    text = http.get("/metrics").text
    assert metric(text, "collector_requests_total", route="/v1/batch", status="200") == 1
    assert metric(text, "collector_requests_total", route="/v1/track", status="401") == 1
    assert metric(text, "collector_events_accepted_total", source="web", type="track") == 1
    assert metric(text, "collector_events_rejected_total", reason="invalid_event") == 1
    assert metric(text, "collector_events_rejected_total", reason="invalid_write_key") == 1
    assert metric(text, "collector_publish_latency_seconds_count", topic="events") == 1
    assert metric(text, "collector_publish_latency_seconds_count", topic="dead_letter") == 1
    assert metric(text, "collector_spool_depth_events") == 0
    assert metric(text, "collector_spool_replay_lag_seconds") == 0
    assert metric(text, "collector_pubsub_available") == 1
    http.get("/no/such/path")
    text = http.get("/metrics").text
    assert metric(text, "collector_requests_total", route="other", status="404") == 1


def test_not_found_and_wrong_method_answer_json(http):
    for response in (http.get("/v1/nothing"), http.get("/v1/track")):
        assert response.status_code in (404, 405)
        assert {"code", "message"} <= set(response.json())


def test_openapi_documents_routes_bodies_auth_and_errors(http):
    schema = http.get("/openapi.json").json()
    paths = schema["paths"]
    expected = {f"/v1/{k}" for k in MESSAGE_TYPES} | {f"/v1/{s}" for s in SHORT_PATHS}
    expected |= {"/v1/batch", "/v1/b", "/healthz", "/readyz", "/metrics"}
    assert expected <= set(paths)
    track = paths["/v1/track"]["post"]
    body = track["requestBody"]["content"]
    assert body["application/json"]["schema"] == {"$ref": "#/components/schemas/Track"}
    assert body["application/json"]["example"]["event"] == "Product Added"
    assert "text/plain" in body
    assert {"200", "400", "401", "413", "415", "503"} <= set(track["responses"])
    schemas = schema["components"]["schemas"]
    assert {
        "Track",
        "Page",
        "Screen",
        "Identify",
        "Group",
        "Alias",
        "BatchRequest",
        "Accepted",
        "BatchAccepted",
        "ErrorBody",
    } <= set(schemas)
    assert {"code", "message", "reason"} <= set(schemas["ErrorBody"]["properties"])
    assert set(schema["components"]["securitySchemes"]) == {"basicAuth", "bearerAuth"}
    assert paths["/v1/batch"]["post"]["requestBody"]["content"]["application/json"]["example"]
    assert http.get("/docs").status_code == 200


def test_startup_creates_missing_topics_and_tolerates_existing(pubsub_emulator, tmp_path):
    from collector_helpers import PROJECT, emulator_env, unique
    from google.cloud import pubsub_v1

    from platform_core.settings import Settings

    events, dead = unique("fresh-events"), unique("fresh-dlq")
    settings = Settings.from_env(
        {
            "PUBSUB_EMULATOR_HOST": pubsub_emulator,
            "PUBSUB_EVENTS_TOPIC": events,
            "PUBSUB_DEAD_LETTER_TOPIC": dead,
            "COLLECTOR_SPOOL_DIR": str(tmp_path / "s1"),
        }
    )
    with LiveServer(create_app(settings)):
        pass
    with emulator_env(pubsub_emulator):
        client = pubsub_v1.PublisherClient()
    for topic in (events, dead):
        assert client.get_topic(topic=f"projects/{PROJECT}/topics/{topic}").name.endswith(topic)
    # a second start finds them there
    with LiveServer(create_app(settings)) as live:
        assert httpx.get(live.url + "/readyz").json()["ready"] is True


def test_an_invalid_topic_name_stops_startup(pubsub_emulator, tmp_path):
    from platform_core.settings import Settings

    settings = Settings.from_env(
        {
            "PUBSUB_EMULATOR_HOST": pubsub_emulator,
            "PUBSUB_EVENTS_TOPIC": "x",  # too short for Pub/Sub
            "COLLECTOR_SPOOL_DIR": str(tmp_path / "s"),
        }
    )
    with pytest.raises(RuntimeError, match="did not start"), LiveServer(create_app(settings)):
        pass


def test_a_client_that_leaves_mid_body_is_no_server_error(server, http):
    import socket

    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(
            b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Authorization: Basic d2ViLWtleTo=\r\nContent-Length: 5000\r\n\r\n"
            b'{"batch": ['
        )
    for _ in range(50):
        text = http.get("/metrics").text
        if metric(text, "collector_events_rejected_total", reason="client_disconnected"):
            break
        time.sleep(0.1)
    assert metric(text, "collector_events_rejected_total", reason="client_disconnected") == 1
    assert metric(text, "collector_requests_total", route="/v1/batch", status="500") == 0
