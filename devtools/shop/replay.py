"""Send the synthetic shop's events to a running collector over HTTP, as the clients would.

Deliveries are replayed now, not when the simulation says they were sent, so each message's
`sentAt` is moved by the same amount as its receipt: the collector's skew correction
(`timestamp = receivedAt - (sentAt - originalTimestamp)`) then lands every event at its
simulated time, exactly as for a device that buffered events offline and sent them late.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import orjson

from devtools.shop.simulator import Delivery
from platform_core.contract import isoformat_z

# local demo write keys of the collector (collector/config.py), one per source
DEMO_WRITE_KEYS = {
    "web": "demo-web-key",
    "ios": "demo-ios-key",
    "android": "demo-android-key",
    "server": "demo-server-key",
}
MAX_BATCH_BYTES = 450_000  # under the collector's 500 KB per batch


class ReplayError(RuntimeError):
    """The collector refused a batch for a reason retrying cannot fix."""


@dataclass
class ReplayStats:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    requests: int = 0
    retries: int = 0
    message_ids: set[str] = field(default_factory=set)


def shifted(delivery: Delivery, now: datetime) -> dict:
    """The message as its client would send it now, `sentAt` moved with the receipt time."""
    message = dict(delivery.payload)
    sent_at = datetime.fromisoformat(message["sentAt"].replace("Z", "+00:00"))
    message["sentAt"] = isoformat_z(sent_at + (now - delivery.received_at))
    return message


def _batches(deliveries: Sequence[Delivery], now: datetime) -> list[tuple[str, list[bytes]]]:
    by_source: dict[str, list[bytes]] = defaultdict(list)
    for delivery in deliveries:
        by_source[delivery.source].append(orjson.dumps(shifted(delivery, now)))
    batches = []
    for source, encoded in by_source.items():
        batch: list[bytes] = []
        size = 0
        for message in encoded:
            if batch and size + len(message) > MAX_BATCH_BYTES:
                batches.append((source, batch))
                batch, size = [], 0
            batch.append(message)
            size += len(message) + 1
        if batch:
            batches.append((source, batch))
    return batches


def send_to_collector(
    deliveries: Sequence[Delivery],
    base_url: str,
    write_keys: dict[str, str] | None = None,
    *,
    threads: int = 3,
    progress: Callable[[str], None] | None = None,
) -> ReplayStats:
    """POST every delivery to `/v1/batch`, retrying 503 (spool full) and connection errors."""
    keys = write_keys or DEMO_WRITE_KEYS
    stats = ReplayStats()
    url = base_url.rstrip("/") + "/v1/batch"
    batches = _batches(deliveries, datetime.now(UTC))
    started = time.monotonic()

    def post(source: str, batch: list[bytes]) -> tuple[int, int, int]:
        body = b'{"batch":[' + b",".join(batch) + b"]}"
        retries = 0
        with httpx.Client(timeout=60) as client:
            for attempt in range(20):
                try:
                    response = client.post(
                        url,
                        content=body,
                        auth=(keys[source], ""),
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.TransportError:
                    retries += 1
                    time.sleep(min(5, 0.2 * 2**attempt))
                    continue
                if response.status_code == 503:
                    retries += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status_code != 200:
                    raise ReplayError(f"{response.status_code}: {response.text[:300]}")
                answer = response.json()
                return answer["accepted"], answer["rejected"], retries
        raise ReplayError(f"the collector at {url} kept failing")

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(post, source, batch) for source, batch in batches]
        for done, future in enumerate(futures, 1):
            accepted, rejected, retries = future.result()
            stats.accepted += accepted
            stats.rejected += rejected
            stats.retries += retries
            stats.requests += 1
            if progress and (done % 100 == 0 or done == len(futures)):
                elapsed = time.monotonic() - started
                progress(
                    f"{done}/{len(futures)} batches, {stats.accepted:,} events accepted "
                    f"({stats.accepted / max(elapsed, 1e-9):,.0f}/s)"
                )
    stats.sent = len(deliveries)
    # a message sent without a messageId gets one from the collector, unknown here
    stats.message_ids = {d.payload["messageId"] for d in deliveries if d.payload.get("messageId")}
    return stats
