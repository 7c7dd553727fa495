"""Replaying the synthetic shop through a live collector keeps every event at its own time."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime, timedelta

from devtools.shop.replay import MAX_BATCH_BYTES, _batches, shifted
from devtools.shop.simulator import Delivery, ShopConfig, SyntheticShop
from platform_core.contract import corrected_timestamp, parse_message


def deliveries() -> list[Delivery]:
    config = ShopConfig(
        days=2,
        sessions_per_day=60,
        products=30,
        initial_users=50,
        end_date=date(2026, 11, 20),
        seed=3,
    )
    return [i for i in SyntheticShop(config).run() if isinstance(i, Delivery)]


def test_shifted_sent_at_keeps_the_skew_corrected_event_time():
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    for delivery in deliveries()[::25]:
        original = parse_message(delivery.payload)
        expected = corrected_timestamp(
            original.event_time_as_sent, original.sentAt, delivery.received_at
        )
        replayed = parse_message(shifted(delivery, now))
        received_now = now + timedelta(milliseconds=120)  # the collector's clock on receipt
        got = corrected_timestamp(replayed.event_time_as_sent, replayed.sentAt, received_now)
        assert abs(got - expected) <= timedelta(milliseconds=121), delivery.payload
        assert got.date() == expected.date() or abs(got - expected) < timedelta(seconds=1)


def test_batches_group_by_source_and_stay_under_the_collector_limit():
    items = deliveries()
    # a backend event sent without a messageId (the collector derives one)
    items[0] = dataclasses.replace(
        items[0], payload={k: v for k, v in items[0].payload.items() if k != "messageId"}
    )
    batches = _batches(items, datetime(2026, 11, 26, tzinfo=UTC))
    assert sum(len(b) for _s, b in batches) == len(items)
    for source, batch in batches:
        assert sum(len(m) + 1 for m in batch) <= MAX_BATCH_BYTES + 1
        assert source in {"web", "ios", "android", "server"}
    assert {s for s, _b in batches} == {d.source for d in items}
    # backend events often come without a messageId: replayed as sent (the collector derives
    # one), never given one here
    sent_without = sum(b'"messageId"' not in m for _s, b in batches for m in b)
    assert sent_without == sum("messageId" not in d.payload for d in items) > 0
