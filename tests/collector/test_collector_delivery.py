"""Delivery logic (publish, coalesce, spool, replay) with an in-memory message bus whose speed
and failures the test controls; the real emulator is used by the API and resilience tests."""

from __future__ import annotations

import asyncio

import pytest

from collector import wire
from collector.config import CollectorConfig
from collector.delivery import Delivery
from collector.errors import ApiError
from collector.metrics import Metrics
from collector.publisher import PublishError
from collector.spool import Spool
from platform_core.settings import Settings


class MemoryBus:
    """A Publisher that keeps what it is sent; slow or failing on demand."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.fail: str | None = None  # a gRPC status name to fail with
        self.refuse: bytes | None = None  # refuse (INVALID_ARGUMENT) requests containing this
        self.rpcs: list[tuple[str, int]] = []  # (topic, messages) per Publish RPC
        self.received: dict[str, list[bytes]] = {}
        self.active = 0  # Publish RPCs outstanding now
        self.most_active = 0  # ... at most, so far

    async def start(self) -> None:
        pass

    async def publish(self, topic: str, request: bytes, timeout: float) -> None:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            await asyncio.sleep(self.delay)
        finally:
            self.active -= 1
        if self.fail:
            raise PublishError(self.fail, "test", self.fail != "INVALID_ARGUMENT")
        if self.refuse is not None and self.refuse in request:
            raise PublishError("INVALID_ARGUMENT", "test", False)
        decoded = wire.PublishRequest.FromString(request)
        assert decoded.topic == topic
        self.rpcs.append((topic, len(decoded.messages)))
        self.received.setdefault(topic, []).extend(m.data for m in decoded.messages)

    async def ensure_topics(self, topics: list[str], timeout: float) -> None:
        if self.fail:
            raise PublishError(self.fail, "test", True)

    async def probe(self, topic: str, timeout: float) -> bool:
        return not self.fail

    async def close(self) -> None:
        pass


def delivery_for(tmp_path, bus: MemoryBus, **env: str) -> Delivery:
    config = CollectorConfig.from_settings(
        Settings.from_env({"COLLECTOR_SPOOL_DIR": str(tmp_path / "spool"), **env})
    )
    spool = Spool(config.spool_dir, config.spool_max_bytes)
    return Delivery(config, bus, spool, Metrics())


def messages(prefix: str, n: int) -> list[bytes]:
    return [wire.message(f"{prefix}-{i}".encode(), wire.attribute("k", "v")) for i in range(n)]


EVENTS = "projects/local-project/topics/events"
DEAD = "projects/local-project/topics/events-dead-letter"


def deliver_at_once(tmp_path, bus: MemoryBus, requests: int, size: int) -> list[str]:
    """`requests` concurrent requests of `size` events each, through one Delivery."""

    async def run() -> list[str]:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        try:
            return await asyncio.gather(
                *(delivery.deliver(messages(f"r{r}", size), []) for r in range(requests))
            )
        finally:
            await delivery.stop()

    return asyncio.run(run())


def test_concurrent_requests_share_publish_rpcs(tmp_path):
    """Less than a full RPC waiting (30 x 10 messages): at most 4 RPCs per topic are
    outstanding; the requests that arrive meanwhile wait and leave together."""
    bus = MemoryBus(delay=0.05)
    assert deliver_at_once(tmp_path, bus, 30, 10) == ["published"] * 30
    assert bus.most_active == 4
    assert sorted(bus.received[EVENTS]) == sorted(
        f"r{r}-{i}".encode() for r in range(30) for i in range(10)
    )
    assert len(bus.rpcs) <= 8, f"30 requests took {len(bus.rpcs)} RPCs"
    assert max(n for _, n in bus.rpcs) > 10, "some requests shared an RPC"


def test_a_backlog_of_full_rpcs_sends_up_to_eight_at_once(tmp_path):
    """When Pub/Sub answers more slowly than requests arrive and full RPCs' worth wait
    (30 x 400 messages: 12 RPCs of 1,000), up to 8 RPCs go out at once, not 4."""
    bus = MemoryBus(delay=0.05)
    assert deliver_at_once(tmp_path, bus, 30, 400) == ["published"] * 30
    assert bus.most_active == 8
    assert len(bus.received[EVENTS]) == 30 * 400
    assert all(n <= 1000 for _, n in bus.rpcs)


def test_coalesced_rpcs_respect_the_1000_message_limit(tmp_path):
    bus = MemoryBus(delay=0.02)

    async def run() -> None:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        try:
            await asyncio.gather(
                *(
                    delivery.deliver(messages(f"r{r}", 400), messages(f"d{r}", 1))
                    for r in range(12)
                ),
                delivery.deliver(messages("big", 2500), []),
            )
        finally:
            await delivery.stop()

    asyncio.run(run())
    assert all(n <= 1000 for _, n in bus.rpcs)
    assert len(bus.received[EVENTS]) == 12 * 400 + 2500
    assert len(set(bus.received[EVENTS])) == 12 * 400 + 2500
    assert len(bus.received[DEAD]) == 12


def test_a_failed_rpc_spools_every_request_it_carried_then_replays_them_once(tmp_path):
    bus = MemoryBus(delay=0.05)

    async def run() -> list[str]:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        try:
            bus.fail = "UNAVAILABLE"
            results = await asyncio.gather(
                *(delivery.deliver(messages(f"r{r}", 10), messages(f"d{r}", 1)) for r in range(20))
            )
            assert delivery.spool.pending_events == 20 * 11
            assert not delivery.available
            # while Pub/Sub is known to be down, requests go straight to the spool
            rpcs_before = len(bus.rpcs)
            results.append(await delivery.deliver(messages("late", 5), []))
            assert len(bus.rpcs) == rpcs_before
            bus.fail = None
            for _ in range(200):  # the replay task notices within its backoff
                if delivery.spool.pending_events == 0:
                    break
                await asyncio.sleep(0.05)
            assert delivery.available
            return results
        finally:
            await delivery.stop()

    results = asyncio.run(run())
    assert results == ["spooled"] * 21
    expected = [f"r{r}-{i}".encode() for r in range(20) for i in range(10)]
    expected += [f"late-{i}".encode() for i in range(5)]
    assert sorted(bus.received[EVENTS]) == sorted(expected), "all replayed, none twice"
    assert sorted(bus.received[DEAD]) == sorted(f"d{r}-0".encode() for r in range(20))


def test_spool_full_is_a_503_with_retry_after(tmp_path):
    bus = MemoryBus()
    bus.fail = "UNAVAILABLE"

    async def run() -> None:
        delivery = delivery_for(tmp_path, bus, COLLECTOR_SPOOL_MAX_MB="0.01")
        await delivery.start()
        try:
            assert await delivery.deliver(messages("a", 50), []) == "spooled"
            with pytest.raises(ApiError) as caught:
                for r in range(100):
                    await delivery.deliver(messages(f"b{r}", 50), [])
            assert caught.value.status == 503
            assert caught.value.headers["Retry-After"].isdigit()
            assert (await delivery.ready())["spool_full"] is True
        finally:
            await delivery.stop()

    asyncio.run(run())


def test_pubsub_refusing_a_request_is_an_error_not_a_spool_entry(tmp_path):
    bus = MemoryBus()

    async def run() -> None:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        try:
            bus.fail = "INVALID_ARGUMENT"
            with pytest.raises(ApiError) as refused:
                await delivery.deliver(messages("x", 3), [])
            assert (refused.value.status, refused.value.code) == (500, "publish_refused")
            assert delivery.spool.pending_records == 0, "a poison request must not be spooled"
        finally:
            bus.fail = None
            await delivery.stop()

    asyncio.run(run())


def test_spool_position_survives_restart_and_replay_resumes(tmp_path):
    bus = MemoryBus()
    bus.fail = "UNAVAILABLE"

    async def first() -> None:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        for r in range(5):
            assert await delivery.deliver(messages(f"r{r}", 3), []) == "spooled"
        await delivery.stop()

    async def second() -> None:
        bus.fail = None
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        for _ in range(100):
            if delivery.spool.pending_events == 0:
                break
            await asyncio.sleep(0.05)
        await delivery.stop()

    asyncio.run(first())
    assert EVENTS not in bus.received
    asyncio.run(second())
    assert sorted(bus.received[EVENTS]) == sorted(
        f"r{r}-{i}".encode() for r in range(5) for i in range(3)
    )


def test_records_pubsub_refuses_for_good_are_quarantined_not_retried_forever(tmp_path):
    """A spooled request Pub/Sub rejects as invalid, and one whose bytes rotted on disk,
    are moved to spool/quarantine/ (kept, counted, logged) so the replay moves on."""
    bus = MemoryBus()

    async def run() -> Delivery:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        bus.fail = "UNAVAILABLE"
        try:
            for name in ("poison", "rotten", "good"):
                assert await delivery.deliver(messages(name, 2), []) == "spooled"
            segment = next((tmp_path / "spool").glob("segment-*.log"))
            data = bytearray(segment.read_bytes())
            position = data.find(b"rotten-0")
            data[position] ^= 0xFF  # flip a byte of the second record
            segment.write_bytes(bytes(data))
            bus.fail = None
            bus.refuse = b"poison"  # Pub/Sub refuses the first record for good
            for _ in range(200):
                if delivery.spool.pending_events == 0:
                    break
                await asyncio.sleep(0.05)
            return delivery
        finally:
            await delivery.stop()

    delivery = asyncio.run(run())
    assert bus.received[EVENTS] == [b"good-0", b"good-1"]
    quarantined = sorted((tmp_path / "spool" / "quarantine").iterdir())
    assert [p.name.split(".", 1)[1] for p in quarantined] == ["pb", "corrupt.bin"]
    counted = delivery.metrics.spool_quarantined
    assert counted.labels("refused")._value.get() == counted.labels("corrupt")._value.get() == 1
    assert b"poison-0" in quarantined[0].read_bytes()
    assert b"rotten-1" in quarantined[1].read_bytes(), "the damaged bytes are kept"


def test_a_spooled_record_for_another_topic_is_quarantined_not_published(tmp_path):
    """Replay publishes only to the collector's own topics, whatever a record's bytes say
    (a frame found while resynchronising after damage could be anything)."""
    bus = MemoryBus()

    async def run() -> Delivery:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        try:
            bus.fail = "UNAVAILABLE"
            assert await delivery.deliver(messages("mine", 1), []) == "spooled"
            other = wire.publish_request("projects/x/topics/elsewhere", messages("evil", 1))
            delivery.spool.append_groups([[(other, 1)]])
            bus.fail = None
            for _ in range(200):
                if delivery.spool.pending_records == 0:
                    break
                await asyncio.sleep(0.05)
            return delivery
        finally:
            await delivery.stop()

    delivery = asyncio.run(run())
    assert bus.received == {EVENTS: [b"mine-0"]}
    assert delivery.metrics.spool_quarantined.labels("foreign")._value.get() == 1


def test_requests_are_split_within_the_publish_byte_limit(tmp_path):
    """Pub/Sub takes at most 10 MB per Publish request: three 4 MiB messages leave in two
    RPCs, none over 9 MiB."""
    bus = MemoryBus()
    big = [wire.message(bytes([65 + i]) * (4 * 1024 * 1024), b"") for i in range(3)]

    async def run() -> str:
        delivery = delivery_for(tmp_path, bus)
        await delivery.start()
        try:
            return await delivery.deliver(big, [])
        finally:
            await delivery.stop()

    assert asyncio.run(run()) == "published"
    assert [n for _, n in bus.rpcs] == [2, 1]
    assert len(bus.received[EVENTS]) == 3


def test_a_request_past_its_deadline_leaves_the_queue_and_spools(tmp_path):
    """Pub/Sub answers after 1 s, the deadline is 0.3 s: the four requests whose RPCs are in
    flight and the one queued behind them all spool at their deadline. The queued one left
    the queue, so it reaches Pub/Sub once (replayed), not a second time from the queue."""
    bus = MemoryBus(delay=1.0)

    async def run() -> list[str]:
        delivery = delivery_for(tmp_path, bus, COLLECTOR_PUBLISH_TIMEOUT_S="0.3")
        await delivery.start()
        try:
            slow = [
                asyncio.create_task(delivery.deliver(messages(f"s{i}", 1), [])) for i in range(4)
            ]
            await asyncio.sleep(0.05)
            late = await delivery.deliver(messages("late", 1), [])
            results = [late, *await asyncio.gather(*slow)]
            for _ in range(200):  # the replay publishes the spooled records
                if delivery.spool.pending_records == 0:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)  # any RPC still to come from the queue would be done
            return results
        finally:
            await delivery.stop()

    assert asyncio.run(run()) == ["spooled"] * 5
    received = bus.received[EVENTS]
    assert received.count(b"late-0") == 1
    assert sorted(set(received)) == sorted([b"late-0"] + [f"s{i}-0".encode() for i in range(4)])
