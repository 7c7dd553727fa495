"""Backpressure and publish failures against a live collector whose Pub/Sub (the emulator) is
slow or refuses a request: requests spool once their publish deadline passes, the collector
answers 503 + Retry-After when too many requests are waiting, and a request Pub/Sub refuses
for good fails alone, not the other clients' requests that shared its Publish RPC.

The slowness comes from `SlowPublisher`: the real publisher to the emulator behind the same
interface, with a delay before each RPC. No assertion is about time: each is about what the
collector answered and what arrived."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from collector_helpers import LiveServer, SlowPublisher, Topics, basic, collector_settings

from collector.app import create_app

pytestmark = pytest.mark.slow  # needs the Pub/Sub emulator

WEB = basic("web-key")


@pytest.fixture
def topics(pubsub_emulator):
    topics = Topics(pubsub_emulator, prefix="pressure")
    yield topics
    topics.close()


def batch(n: int, marker: str = "ok") -> tuple[dict, list[str]]:
    ids = [f"{marker}-{uuid.uuid4()}" for _ in range(n)]
    events = [
        {"type": "track", "event": "Signed Up", "anonymousId": "a", "messageId": i} for i in ids
    ]
    return {"batch": events}, ids


def unique_ids(topics: Topics, expected: set[str], timeout: float) -> set[str]:
    """The distinct message ids that arrive, pulled until all of `expected` did (requests
    spooled at their deadline while their RPC was in flight arrive twice)."""
    got: set[str] = set()
    deadline = time.monotonic() + timeout
    while not expected <= got and time.monotonic() < deadline:
        batch = topics.events_received(len(expected - got), timeout=deadline - time.monotonic())
        got |= {r.attributes["message_id"] for r in batch}
    return got


def post_all(url: str, bodies: list[dict], workers: int) -> list[httpx.Response]:
    def send(body: dict) -> httpx.Response:
        with httpx.Client(base_url=url, headers=WEB, timeout=120) as http:
            return http.post("/v1/batch", json=body)

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(send, bodies))


def test_requests_waiting_past_the_publish_deadline_spool(topics, tmp_path):
    """Pub/Sub answers every RPC, but only after 2 s; the deadline is 3 s. 24 concurrent
    requests of 1,000 events need six rounds of the collector's RPCs per topic: the first
    are published, those still waiting at their deadline are spooled (answered 200), and
    every event arrives."""
    slow = SlowPublisher(topics.host)
    settings = collector_settings(topics, tmp_path / "spool", COLLECTOR_PUBLISH_TIMEOUT_S="3")
    with LiveServer(create_app(settings, publisher=slow)) as server:
        slow.delay = 2.0
        bodies, sent = [], []
        for _ in range(24):
            body, ids = batch(1000)
            bodies.append(body)
            sent += ids
        responses = post_all(server.url, bodies, workers=24)
        assert [r.status_code for r in responses] == [200] * 24, responses[0].text
        deliveries = [r.json()["delivery"] for r in responses]
        assert "spooled" in deliveries, "requests waiting past their deadline spool"
        slow.delay = 0.0
        got = unique_ids(topics, set(sent), timeout=120)
    assert got == set(sent), "every acknowledged event arrives (duplicates allowed)"


def test_too_many_waiting_requests_get_503_with_retry_after(topics, tmp_path):
    """At most COLLECTOR_MAX_IN_FLIGHT requests are handled at once; more get 503 +
    Retry-After straight away (before their body is read), and are not published."""
    slow = SlowPublisher(topics.host)
    settings = collector_settings(
        topics,
        tmp_path / "spool",
        COLLECTOR_PUBLISH_TIMEOUT_S="10",
        COLLECTOR_MAX_IN_FLIGHT="4",
    )
    with LiveServer(create_app(settings, publisher=slow)) as server:
        slow.delay = 1.5
        bodies, ids_of = [], []
        for _ in range(16):
            body, ids = batch(5)
            bodies.append(body)
            ids_of.append(ids)
        responses = post_all(server.url, bodies, workers=16)
        statuses = [r.status_code for r in responses]
        assert set(statuses) == {200, 503}, statuses
        assert statuses.count(200) >= 4
        for response in responses:
            if response.status_code == 503:
                assert response.headers["Retry-After"].isdigit()
                assert response.json()["code"] == "overloaded"
        accepted = {
            i for r, ids in zip(responses, ids_of, strict=True) if r.status_code == 200 for i in ids
        }
        slow.delay = 0.0
        received = topics.events_received(len(accepted), timeout=30, settle=1.0)
        metrics = httpx.get(server.url + "/metrics").text
    assert {r.attributes["message_id"] for r in received} == accepted
    assert 'collector_events_rejected_total{reason="overloaded"}' in metrics


def test_a_request_pubsub_refuses_fails_alone(topics, tmp_path):
    """Four slow RPCs keep the collector's RPC slots busy, so the next six requests wait and
    leave together in one Publish RPC. Pub/Sub refuses that RPC for good because of one
    request's events: that request gets an error, the five others are published."""
    slow = SlowPublisher(topics.host)
    settings = collector_settings(topics, tmp_path / "spool", COLLECTOR_PUBLISH_TIMEOUT_S="30")
    with LiveServer(create_app(settings, publisher=slow)) as server:
        slow.delay = 2.0
        slow.refuse = b"poison-"
        blockers = [batch(1) for _ in range(4)]
        results: dict[str, httpx.Response] = {}

        def send(name: str, body: dict) -> None:
            with httpx.Client(base_url=server.url, headers=WEB, timeout=120) as http:
                results[name] = http.post("/v1/batch", json=body)

        threads = [
            threading.Thread(target=send, args=(f"blocker{i}", body))
            for i, (body, _) in enumerate(blockers)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while len(slow.rpcs) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(slow.rpcs) == 4, "the blockers occupy every RPC slot"
        poison, _ = batch(3, marker="poison")
        goods = [batch(3) for _ in range(5)]
        waiting = [threading.Thread(target=send, args=("poison", poison))] + [
            threading.Thread(target=send, args=(f"good{i}", body))
            for i, (body, _) in enumerate(goods)
        ]
        for thread in waiting:
            thread.start()
        for thread in threads + waiting:
            thread.join(120)
        assert max(slow.rpcs) > 3, f"the waiting requests shared an RPC: {slow.rpcs}"
        for i in range(5):
            answer = results[f"good{i}"]
            assert answer.status_code == 200, answer.text
            assert answer.json()["delivery"] == "published"
        refused = results["poison"]
        assert refused.status_code == 500 and refused.json()["code"] == "publish_refused"
        expected = {i for _, ids in blockers + goods for i in ids}
        received = topics.events_received(len(expected), timeout=30, settle=1.0)
    assert {r.attributes["message_id"] for r in received} == expected
