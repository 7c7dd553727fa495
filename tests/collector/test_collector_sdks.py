"""The official Segment and RudderStack Python SDKs, unchanged, against a live collector:
every event they send arrives on the events topic (count and messageIds)."""

from __future__ import annotations

import pytest
from collector_helpers import LiveServer, Topics, collector_settings

from collector.app import create_app

pytestmark = pytest.mark.slow  # needs the Pub/Sub emulator and a live server

PRODUCT = {
    "product_id": "p-17",
    "sku": "SKU-17",
    "name": "Linen Shirt",
    "price": 39.0,
    "currency": "USD",
    "quantity": 1,
}


@pytest.fixture
def topics(pubsub_emulator):
    topics = Topics(pubsub_emulator, prefix="sdk")
    yield topics
    topics.close()


@pytest.fixture
def server(topics, tmp_path):
    with LiveServer(create_app(collector_settings(topics, tmp_path / "spool"))) as live:
        yield live


def send_everything(client, user: str, rounds: int) -> list[str]:
    """Every call type the SDKs have, e-commerce events included; the messageIds sent."""
    ids = []
    for i in range(rounds):
        calls = [
            client.identify(user, {"email": f"{user}@example.com", "plan": "pro"}),
            client.page(user, "Shop", "Product", {"path": f"/products/{i}"}),
            client.screen(user, "App", "Cart", {}),
            client.track(user, "Product Viewed", {**PRODUCT, "position": i}),
            client.track(user, "Product Added", {**PRODUCT, "cart_id": f"c-{i}"}),
            client.track(
                user,
                "Order Completed",
                {
                    "order_id": f"o-{user}-{i}",
                    "total": 39.0,
                    "currency": "USD",
                    "products": [PRODUCT],
                },
            ),
            client.track(user, "Newsletter Subscribed", {"list": "weekly"}),
            client.group(user, "acme", {"name": "Acme"}),
            client.alias(f"anon-{user}-{i}", user),
        ]
        for ok, message in calls:
            assert ok
            ids.append(message["messageId"])
    return ids


def check_delivery(topics: Topics, ids: list[str], source: str) -> list:
    received = topics.events_received(len(ids), timeout=30, settle=1.0)
    got = [r.attributes["message_id"] for r in received]
    assert sorted(got) == sorted(ids), "every event exactly once"
    for message in received:
        assert message.attributes["source"] == source
        data = message.json
        assert data["receivedAt"] and data["sentAt"], "batch sentAt carried to each event"
        assert data["messageId"] == message.attributes["message_id"]
    assert topics.dead_letters(1, timeout=1.0) == []
    return received


@pytest.mark.parametrize("gzip", [False, True])
def test_segment_sdk_batches_arrive(server, topics, gzip):
    from segment.analytics.client import Client

    errors = []
    client = Client(
        "server-key",
        host=server.url,
        gzip=gzip,
        max_retries=1,
        upload_interval=0.05,
        on_error=lambda e, batch: errors.append(e),
    )
    ids = send_everything(client, "u-seg", rounds=12)  # 108 events: more than one batch
    client.flush()
    client.shutdown()
    assert errors == []
    received = check_delivery(topics, ids, "server")
    tracks = [r.json for r in received if r.attributes["type"] == "track"]
    assert {t["event"] for t in tracks} == {
        "Product Viewed",
        "Product Added",
        "Order Completed",
        "Newsletter Subscribed",
    }
    assert all(t["context"]["library"]["name"] == "analytics-python" for t in tracks)


def test_segment_sdk_sync_mode(server, topics):
    from segment.analytics.client import Client

    client = Client("web-key", host=server.url, sync_mode=True, gzip=True, max_retries=0)
    ids = send_everything(client, "u-sync", rounds=1)
    check_delivery(topics, ids, "web")


def test_rudderstack_sdk_batches_arrive(server, topics):
    from rudderstack.analytics.client import Client

    errors = []
    client = Client(
        "ios-key",
        host=server.url,
        max_retries=1,
        upload_interval=0.05,
        on_error=lambda e, batch: errors.append(e),
    )  # gzip is on by default
    ids = send_everything(client, "u-rudder", rounds=12)
    client.flush()
    client.shutdown()
    assert errors == []
    received = check_delivery(topics, ids, "ios")
    identify = next(r.json for r in received if r.attributes["type"] == "identify")
    assert identify["context"]["traits"]["email"] == "u-rudder@example.com"
    assert identify["channel"] == "server"


def test_sdk_errors_are_reported_not_retried(server, topics):
    """A 4xx carries `code` and `message`, so Rudder's SDK reports it instead of retrying
    (it retries a 4xx whose JSON lacks `code`), and Segment's does not retry it either."""
    import httpx
    from rudderstack.analytics.client import Client as Rudder
    from segment.analytics.client import Client as Segment

    for client_class in (Segment, Rudder):
        errors = []
        client = client_class(
            "not-a-key",
            host=server.url,
            max_retries=3,
            upload_interval=0.05,
            on_error=lambda e, batch, errors=errors: errors.append(e),
        )
        client.track("u", "Signed Up", {})
        client.flush()
        client.shutdown()
        [error] = errors
        assert (error.status, error.code) == (401, "invalid_write_key"), repr(error)
    metrics = httpx.get(server.url + "/metrics").text
    line = next(
        x
        for x in metrics.splitlines()
        if x.startswith('collector_requests_total{route="/v1/batch",status="401"}')
    )
    assert float(line.rsplit(" ", 1)[1]) == 2, "one request per SDK: no retries"
    assert topics.events_received(1, timeout=1.0) == []
