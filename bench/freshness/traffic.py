"""Synthetic shopper sessions and the two ways to send them: over HTTP to the collector (the
live path) or straight to Pub/Sub in the collector's message format (the baseline, and the
fallback when there is no collector)."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from platform_core.contract import isoformat_z, stamp

TRAFFIC_SOURCE = "bench"
UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36"
)
FUNNEL = (
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Payment Info Entered",
    "Order Completed",
)


@dataclass
class Sent:
    message_id: str
    anonymous_id: str
    path: str  # "collector" or "pubsub"
    scheduled: float  # time.time() the send was due
    acked: float | None = None  # 2xx from the collector / publish acknowledged
    error: str | None = None


def session_events(index: int, run: str) -> list[dict]:
    anon = f"bench-{run}-{index}"
    order_id = f"bench-{run}-order-{index}"
    product = {
        "product_id": str(index % 50 + 1),
        "sku": f"SKU-{index % 50 + 1}",
        "category": "bench",
        "price": 10.0,
        "quantity": 1,
        "currency": "EUR",
    }
    properties = {
        "Product Viewed": product,
        "Product Added": product,
        "Checkout Started": {
            "order_id": order_id,
            "value": 10.0,
            "currency": "EUR",
            "products": [product],
        },
        "Payment Info Entered": {"checkout_id": order_id, "step": 2, "payment_method": "card"},
        "Order Completed": {
            "order_id": order_id,
            "total": 10.0,
            "revenue": 10.0,
            "currency": "EUR",
            "products": [product],
        },
    }
    return [
        {
            "type": "track",
            "event": name,
            "anonymousId": anon,
            "messageId": str(uuid.uuid4()),
            "properties": properties[name],
            "context": {
                "userAgent": UA,
                "campaign": {"source": TRAFFIC_SOURCE},
                "page": {"path": "/bench", "url": "https://shop.example/bench"},
            },
        }
        for name in FUNNEL
    ]


def interleaved(run: str, open_sessions: int = 20) -> Iterator[tuple[int, dict]]:
    """Events of many concurrent sessions, each session's events in funnel order."""
    counter = itertools.count()
    active = [(next(counter), session_events(i, run)) for i in range(open_sessions)]
    turn = 0
    while True:
        slot = turn % len(active)
        index, pending = active[slot]
        yield index, pending.pop(0)
        if not pending:
            new = next(counter)
            active[slot] = (new, session_events(new, run))
        turn += 1


class CollectorSender:
    """POST /v1/track with the write key (HTTP Basic), one event per request."""

    def __init__(self, base_url: str, write_key: str) -> None:
        import httpx

        self.url = base_url.rstrip("/") + "/v1/track"
        self.auth = (write_key, "")
        self._local = threading.local()
        self._httpx = httpx

    def _client(self):  # noqa: ANN202
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._httpx.Client(timeout=30)
            self._local.client = client
        return client

    def send(self, event: dict, record: Sent) -> None:
        now = datetime.now(UTC)
        body = {**event, "timestamp": isoformat_z(now), "sentAt": isoformat_z(now)}
        try:
            response = self._client().post(self.url, json=body, auth=self.auth)
            if 200 <= response.status_code < 300:
                record.acked = time.time()
            else:
                record.error = f"HTTP {response.status_code}: {response.text[:200]}"
        except Exception as error:  # noqa: BLE001 - counted, reported
            record.error = f"{type(error).__name__}: {error}"


class PubSubSender:
    """What the collector publishes for an accepted event (interfaces.md), done directly."""

    def __init__(self, project: str, topic: str, source: str = "web") -> None:
        from google.cloud import pubsub_v1

        self.client = pubsub_v1.PublisherClient()
        self.topic = self.client.topic_path(project, topic)
        self.source = source

    def send(self, event: dict, record: Sent) -> None:
        now = datetime.now(UTC)
        message = stamp({**event, "timestamp": isoformat_z(now), "sentAt": isoformat_z(now)}, now)
        try:
            self.client.publish(
                self.topic,
                json.dumps(message).encode(),
                source=self.source,
                type=message["type"],
                event=message.get("event", ""),
                message_id=message["messageId"],
                received_at=message["receivedAt"],
            ).result(timeout=30)
            record.acked = time.time()
        except Exception as error:  # noqa: BLE001
            record.error = f"{type(error).__name__}: {error}"


@dataclass
class TrafficResult:
    records: list[Sent] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0


def run_traffic(
    senders: dict[str, object],
    rate: float,
    duration: float,
    run: str,
    baseline_share: float = 0.1,
    workers: int = 8,
) -> TrafficResult:
    """Open loop: event i is due at start + i / rate, whatever the answers. Every
    1/baseline_share-th session goes straight to Pub/Sub when both senders exist."""
    from concurrent.futures import ThreadPoolExecutor

    result = TrafficResult(started=time.time())
    every = max(1, round(1 / baseline_share)) if baseline_share > 0 else 0
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for i, (session, event) in enumerate(interleaved(run)):
            due = result.started + i / rate
            if due > result.started + duration:
                break
            path = "collector" if "collector" in senders else "pubsub"
            if every and "collector" in senders and "pubsub" in senders and session % every == 0:
                path = "pubsub"
            record = Sent(event["messageId"], event["anonymousId"], path, due)
            result.records.append(record)
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            pool.submit(senders[path].send, event, record)
    result.ended = time.time()
    return result
