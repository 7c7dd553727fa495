"""The synthetic shop (devtools/shop/simulator.py): determinism, realism and consistency."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from devtools.shop.simulator import (
    FREE_SHIPPING_FROM,
    KEY_COLUMNS,
    PAID_STATUSES,
    SHIPPING_FEE,
    Delivery,
    ShopConfig,
    Snapshot,
    SyntheticShop,
    Transaction,
    money,
)
from platform_core.contract import Track, corrected_timestamp, parse_message

END = date(2025, 3, 9)  # a Sunday
SMALL = ShopConfig(
    seed=7, days=3, end_date=END, sessions_per_day=80, products=40, initial_users=100
)
# long enough for orders to ship, be delivered and be refunded inside the window
LONG = ShopConfig(
    seed=11, days=21, end_date=END, sessions_per_day=150, products=40, initial_users=100
)

LEGAL = {
    ("pending", "paid"),
    ("paid", "shipped"),
    ("shipped", "delivered"),
    ("delivered", "refunded"),  # returned after delivery
    ("paid", "refunded"),  # cancelled by the customer before shipping
    ("pending", "cancelled"),  # payment declined
}


@functools.cache
def simulate(config: ShopConfig) -> tuple[SyntheticShop, tuple[Any, ...]]:
    shop = SyntheticShop(config)
    return shop, tuple(shop.run())


def deliveries(items) -> list[Delivery]:
    return [i for i in items if isinstance(i, Delivery)]


def transactions(items) -> list[Transaction]:
    return [i for i in items if isinstance(i, Transaction)]


def changes(items, table: str | None = None):
    for tx in transactions(items):
        for change in tx.changes:
            if table is None or change.table == table:
                yield tx, change


def unique_events(items) -> dict[str, dict[str, Any]]:
    """messageId -> payload, duplicates collapsed."""
    return {d.payload["messageId"]: d.payload for d in deliveries(items)}


@pytest.fixture(scope="module")
def small():
    return simulate(SMALL)


@pytest.fixture(scope="module")
def long():
    return simulate(LONG)


# --- config -----------------------------------------------------------------------------------


def test_config_window():
    assert SMALL.first_day == date(2025, 3, 7)
    assert SMALL.last_day == END
    assert SMALL.end == datetime(2025, 3, 10, tzinfo=UTC)
    default_end = ShopConfig(days=2).last_day
    assert default_end == datetime.now(UTC).date() - timedelta(days=1)


def test_money_rounds_half_up_to_cents():
    assert money(2.675) == Decimal("2.68")  # float 2.675 is 2.67499..., str() keeps 2.675
    assert money(Decimal("0.005")) == Decimal("0.01")
    assert str(money(3)) == "3.00"


# --- determinism and order ------------------------------------------------------------------------


def test_same_seed_gives_identical_items(small):
    _, first = small
    again = tuple(SyntheticShop(SMALL).run())
    assert len(again) == len(first) > 1000
    assert again == first


def test_different_seed_gives_different_items(small):
    _, first = small
    other = tuple(SyntheticShop(dataclasses.replace(SMALL, seed=8)).run())
    assert [d.payload for d in deliveries(other)] != [d.payload for d in deliveries(first)]
    assert [d.payload["messageId"] for d in deliveries(other)][:50] != [
        d.payload["messageId"] for d in deliveries(first)
    ][:50]


def test_items_are_chronological_and_inside_the_window(small):
    _, items = small
    assert isinstance(items[0], Snapshot)
    assert items[0].at == datetime(2025, 3, 7, tzinfo=UTC)
    assert not any(isinstance(i, Snapshot) for i in items[1:])
    times = [i.at for i in items]
    assert times == sorted(times)
    assert all(items[0].at <= t < SMALL.end for t in times)
    assert {type(i) for i in items[1:]} == {Delivery, Transaction}


def test_counts_match_what_was_yielded(small):
    shop, items = small
    assert shop.counts["deliveries"] == len(deliveries(items))
    assert shop.counts["transactions"] == len(transactions(items))
    tx_ids = [tx.tx_id for tx in transactions(items)]
    assert tx_ids == sorted(set(tx_ids))
    assert all(tx.changes for tx in transactions(items))


def test_snapshot_has_the_configured_catalog_and_users(small):
    _, items = small
    snapshot = items[0]
    assert set(snapshot.rows) == set(KEY_COLUMNS)
    assert len(snapshot.rows["products"]) == SMALL.products
    assert len(snapshot.rows["users"]) == SMALL.initial_users
    assert snapshot.rows["orders"] == [] and snapshot.rows["order_items"] == []
    for row in snapshot.rows["products"] + snapshot.rows["users"]:
        assert row["created_at"] < snapshot.at


# --- events -------------------------------------------------------------------------------------


def test_every_delivery_satisfies_the_contract(small):
    _, items = small
    kinds = Counter()
    for delivery in deliveries(items):
        message = parse_message(delivery.payload)
        kinds[message.type] += 1
        assert delivery.received_at == delivery.at
        assert delivery.source in {"web", "ios", "android", "server"}
        assert message.messageId and message.sentAt is not None
    assert set(kinds) >= {"page", "screen", "track", "identify"}


def test_payloads_are_json_ready(small):
    _, items = small
    for delivery in deliveries(items)[:500]:
        assert json.loads(json.dumps(delivery.payload)) == delivery.payload


def test_duplicate_deliveries_share_message_id():
    config = dataclasses.replace(SMALL, duplicate_rate=0.05)
    _, items = simulate(config)
    by_id: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in deliveries(items):
        by_id[delivery.payload["messageId"]].append(delivery)
    duplicated = {k: v for k, v in by_id.items() if len(v) > 1}
    assert len(duplicated) >= 20
    for copies in duplicated.values():
        first, *retries = copies
        for retry in retries:
            assert retry.at > first.at
            assert retry.source == first.source
            same = {k: v for k, v in retry.payload.items() if k != "sentAt"}
            assert same == {k: v for k, v in first.payload.items() if k != "sentAt"}
            # the retry is sent later by the same clock: skew correction gives the same time
            a, b = parse_message(first.payload), parse_message(retry.payload)
            drift = corrected_timestamp(a.timestamp, a.sentAt, first.at) - corrected_timestamp(
                b.timestamp, b.sentAt, retry.at
            )
            assert abs(drift) < timedelta(milliseconds=2)  # sentAt has millisecond precision


def test_skew_correction_puts_events_inside_the_window(small):
    _, items = small
    window_start = items[0].at
    skewed = 0
    for delivery in deliveries(items):
        message = parse_message(delivery.payload)
        if abs(message.sentAt - delivery.at) > timedelta(minutes=30):
            skewed += 1
        corrected = corrected_timestamp(message.event_time_as_sent, message.sentAt, delivery.at)
        assert window_start <= corrected <= delivery.at
    assert skewed > 0, "some clients have clocks hours off"


def test_weekends_get_more_sessions_than_weekdays():
    config = ShopConfig(
        seed=5, days=14, end_date=END, sessions_per_day=300, products=40, initial_users=100
    )
    per_day: list[int] = []
    shop = SyntheticShop(config, progress=lambda _: per_day.append(shop.counts["sessions"]))
    for _ in shop.run():
        pass
    daily = [b - a for a, b in zip([0, *per_day], per_day, strict=False)]
    assert len(daily) == 14 and sum(daily) == shop.counts["sessions"]
    days = [config.first_day + timedelta(days=i) for i in range(14)]
    weekend = [n for d, n in zip(days, daily, strict=True) if d.weekday() >= 5]
    weekday = [n for d, n in zip(days, daily, strict=True) if d.weekday() < 5]
    assert len(weekend) == 4
    assert sum(weekend) / len(weekend) > 1.1 * sum(weekday) / len(weekday)


def test_funnel_is_monotonic(long):
    _, items = long
    events = Counter(p.get("event") for p in unique_events(items).values())
    viewed, added = events["Product Viewed"], events["Product Added"]
    started, completed = events["Checkout Started"], events["Order Completed"]
    assert viewed > added > started > completed > 0


def test_order_completed_matches_the_database_order(long):
    _, items = long
    inserted = {c.after["order_id"]: c.after for _, c in changes(items, "orders") if c.op == "c"}
    lines: dict[int, list[dict]] = defaultdict(list)
    for _, c in changes(items, "order_items"):
        if c.op == "c":
            lines[c.after["order_id"]].append(c.after)
    completed = [p for p in unique_events(items).values() if p.get("event") == "Order Completed"]
    assert len(completed) > 20
    for payload in completed:
        props = payload["properties"]
        order = inserted[int(props["order_id"])]
        assert money(props["total"]) == order["total_amount"]
        assert money(props["shipping"]) == order["shipping"]
        assert money(props["subtotal"]) == order["subtotal"]
        assert payload["userId"] == str(order["user_id"])
        products = sorted((p["product_id"], p["quantity"]) for p in props["products"])
        db_lines = sorted(
            (str(li["product_id"]), li["quantity"]) for li in lines[order["order_id"]]
        )
        assert products == db_lines


def test_order_totals_add_up(long):
    shop, items = long
    orders = {c.after["order_id"]: c.after for _, c in changes(items, "orders") if c.op == "c"}
    lines: dict[int, list[dict]] = defaultdict(list)
    for _, c in changes(items, "order_items"):
        if c.op == "c":
            lines[c.after["order_id"]].append(c.after)
    assert len(orders) > 20
    for order_id, order in orders.items():
        subtotal = sum((li["quantity"] * li["unit_price"] for li in lines[order_id]), Decimal(0))
        assert lines[order_id], "an order has lines"
        assert [li["line_number"] for li in lines[order_id]] == list(
            range(1, len(lines[order_id]) + 1)
        )
        assert order["subtotal"] == subtotal
        expected_shipping = Decimal(0) if subtotal >= FREE_SHIPPING_FROM else SHIPPING_FEE
        assert order["shipping"] == expected_shipping
        assert order["total_amount"] == subtotal + order["shipping"]
    for order in shop.rows("orders"):  # later updates never touch the amounts
        assert order["total_amount"] == orders[order["order_id"]]["total_amount"]


def test_order_lifecycle_has_legal_transitions_only(long):
    _, items = long
    seen: set[tuple[str, str]] = set()
    deleted_orders: set[int] = set()
    for tx, change in changes(items, "orders"):
        if change.op == "c":
            assert change.after["status"] == "pending"
            assert change.after["paid_at"] is None and change.after["refunded_at"] is None
        elif change.op == "u":
            step = (change.before["status"], change.after["status"])
            assert step in LEGAL, step
            seen.add(step)
            assert change.after["updated_at"] == tx.at
            if step == ("pending", "paid"):
                assert change.after["paid_at"] == tx.at
        else:
            assert change.op == "d"
            assert change.before["status"] == "cancelled"
            deleted_orders.add(change.before["order_id"])
    assert seen == LEGAL, "a 21-day window shows every transition"
    assert deleted_orders


def test_order_items_are_deleted_only_with_their_cancelled_order(long):
    _, items = long
    for tx, change in changes(items, "order_items"):
        if change.op == "d":
            deleted = {
                c.before["order_id"]: c.before
                for c in tx.changes
                if c.table == "orders" and c.op == "d"
            }
            assert change.before["order_id"] in deleted
        else:
            assert change.op == "c", "order lines are never updated"


def test_refunded_orders_have_refunded_at(long):
    shop, items = long
    refunds = [
        (tx, c)
        for tx, c in changes(items, "orders")
        if c.op == "u" and c.after["status"] == "refunded"
    ]
    assert refunds
    for tx, change in refunds:
        assert change.after["refunded_at"] == tx.at
        assert change.after["paid_at"] is not None
    for order in shop.rows("orders"):
        assert (order["refunded_at"] is not None) == (order["status"] == "refunded")
        assert (order["paid_at"] is not None) == (order["status"] in PAID_STATUSES)


def test_refund_event_matches_the_refunded_order(long):
    _, items = long
    refunded = {
        c.after["order_id"]: (tx, c.after)
        for tx, c in changes(items, "orders")
        if c.op == "u" and c.after["status"] == "refunded"
    }
    events = [p for p in unique_events(items).values() if p.get("event") == "Order Refunded"]
    assert events
    for payload in events:
        tx, order = refunded[int(payload["properties"]["order_id"])]
        assert money(payload["properties"]["total"]) == order["total_amount"]
        assert isinstance(parse_message(payload), Track)


def test_refund_event_is_attributed_to_the_buyer(long):
    """The server-side Order Refunded event should carry the buyer's userId. The simulator
    looks the order up when the session is simulated, before the order's insert has been
    committed, so it always falls back to "order-<id>"."""
    _, items = long
    orders = {c.after["order_id"]: c.after for _, c in changes(items, "orders") if c.op == "c"}
    events = [p for p in unique_events(items).values() if p.get("event") == "Order Refunded"]
    assert events
    for payload in events:
        order = orders[int(payload["properties"]["order_id"])]
        assert payload["userId"] == str(order["user_id"])


# --- database state ---------------------------------------------------------------------------


def replay(items) -> dict[str, dict[tuple, dict]]:
    snapshot = items[0]
    state = {
        t: {tuple(r[c] for c in KEY_COLUMNS[t]): dict(r) for r in rows}
        for t, rows in snapshot.rows.items()
    }
    for _, change in changes(items):
        rows = state[change.table]
        key = change.key
        if change.op == "c":
            assert key not in rows, f"insert of existing {change.table} {key}"
            rows[key] = dict(change.after)
        elif change.op == "u":
            assert rows.get(key) == change.before, f"stale before image {change.table} {key}"
            assert change.after != change.before
            rows[key] = dict(change.after)
        else:
            assert change.op == "d"
            assert rows.pop(key, None) == change.before, f"stale delete {change.table} {key}"
    return state


@pytest.mark.parametrize("config", [SMALL, LONG], ids=["small", "long"])
def test_final_state_equals_snapshot_plus_changes(config):
    shop, items = simulate(config)
    assert replay(items) == shop.state
    for table in KEY_COLUMNS:
        assert sorted(map(repr, shop.rows(table))) == sorted(
            map(repr, replay(items)[table].values())
        )


def test_updates_touch_updated_at_and_keep_keys(long):
    _, items = long
    for tx, change in changes(items):
        if change.op == "u":
            assert change.after["updated_at"] == tx.at
            for column in KEY_COLUMNS[change.table]:
                assert change.before[column] == change.after[column]
