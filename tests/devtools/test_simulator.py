"""The synthetic shop (devtools/shop/): determinism, realism and consistency, and how the
loader lands it in raw (Kafka partitions, snapshots, an outage and its re-snapshot).

Expected values come from the simulator's own records (its truth fields, transactions and
final tables) and from hand-written cases, never from the platform's transformation code."""

from __future__ import annotations

import dataclasses
import functools
import json
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from devtools.shop.load import CdcPath, RawLoader
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
from platform_core.contract import Track, parse_message

END = date(2025, 3, 9)  # a Sunday
SMALL = ShopConfig(
    seed=7,
    days=3,
    end_date=END,
    sessions_per_day=80,
    products=40,
    initial_users=100,
    missing_message_id_rate=0.5,
)
# long enough for orders to ship, be delivered and be refunded inside the window
LONG = ShopConfig(
    seed=11,
    days=21,
    end_date=END,
    sessions_per_day=150,
    products=40,
    initial_users=100,
    missing_message_id_rate=0.5,
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
    """messageId (or the delivery itself, for messages without one) -> payload, duplicates
    collapsed."""
    return {d.payload.get("messageId") or str(id(d)): d.payload for d in deliveries(items)}


def inserted_lines(items) -> dict[int, list[dict]]:
    """The lines each order was placed with (the creates in the order's own transaction;
    a renumbering creates lines again later)."""
    lines: dict[int, list[dict]] = defaultdict(list)
    for tx in transactions(items):
        created = {c.after["order_id"] for c in tx.changes if c.table == "orders" and c.op == "c"}
        for c in tx.changes:
            if c.table == "order_items" and c.op == "c" and c.after["order_id"] in created:
                lines[c.after["order_id"]].append(c.after)
    return lines


def parse_z(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


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
    assert [d.payload.get("messageId") for d in deliveries(other)][:50] != [
        d.payload.get("messageId") for d in deliveries(first)
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
        assert message.sentAt is not None
        assert message.messageId or delivery.source == "server"
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
        if "messageId" in delivery.payload:
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
            assert retry.happened_at == first.happened_at


def test_times_are_whole_milliseconds_and_truthful(small):
    _, items = small
    window_start = items[0].at
    skewed = 0
    for d in deliveries(items):
        for instant in (d.at, d.happened_at, d.sent_at):
            assert instant.microsecond % 1000 == 0
        assert window_start <= d.happened_at <= d.sent_at < d.at  # happened, sent, arrived
        # the client's clock readings are the true times plus the clock's error
        assert parse_z(d.payload["timestamp"]) == d.happened_at + d.clock_error_at_event
        assert parse_z(d.payload["sentAt"]) == d.sent_at + d.clock_error_at_send
        if abs(d.clock_error_at_send) > timedelta(minutes=30):
            skewed += 1
    assert skewed > 0, "some clients have clocks hours off"


def test_retries_after_a_clock_fix_carry_another_event_time(long):
    """A device hours off has its clock corrected before it retries: the retry's sentAt is
    right while its timestamp is not, so what the client reports moves by hours."""
    _, items = long
    first_sent: dict[str, Delivery] = {}
    for d in deliveries(items):
        first_sent.setdefault(d.payload.get("messageId") or str(id(d)), d)
    moved = [d for d in deliveries(items) if d.clock_error_at_send != d.clock_error_at_event]
    assert len(moved) >= 5
    for d in moved:
        assert abs(d.clock_error_at_event) >= timedelta(minutes=30)
        assert d.clock_error_at_send == timedelta(0)
        first = first_sent[d.payload["messageId"]]
        assert first is not d and first.at < d.at
        reported = parse_z(first.payload["sentAt"]) - parse_z(first.payload["timestamp"])
        again = parse_z(d.payload["sentAt"]) - parse_z(d.payload["timestamp"])
        assert again - (d.sent_at - first.sent_at) == reported - d.clock_error_at_event


def test_some_clocks_are_years_off():
    config = dataclasses.replace(SMALL, far_off_clock_rate=0.05)
    _, items = simulate(config)
    far = [d for d in deliveries(items) if abs(d.clock_error_at_send) > timedelta(days=365)]
    assert len({d.payload["anonymousId"] for d in far}) >= 3
    for d in far:  # the client's readings are years off, the truth is inside the window
        assert abs(parse_z(d.payload["timestamp"]) - d.happened_at) > timedelta(days=365)
        assert config.first_day <= d.happened_at.date() <= config.last_day


def test_server_events_sometimes_have_no_message_id_and_are_never_retried(long):
    _, items = long
    server = [d for d in deliveries(items) if d.source == "server"]
    without = [d for d in server if "messageId" not in d.payload]
    assert 0 < len(without) < len(server)
    assert all(d.source == "server" for d in deliveries(items) if "messageId" not in d.payload)
    bodies = Counter(json.dumps(d.payload, sort_keys=True) for d in without)
    assert max(bodies.values()) == 1


def test_some_carts_are_bought_in_a_later_session(long):
    """An abandoned cart, bought hours later in a session that starts at the cart page."""
    _, items = long
    by_visitor: dict[str, list[Delivery]] = defaultdict(list)
    for d in deliveries(items):
        if d.payload.get("anonymousId") and d.clock_error_at_send == d.clock_error_at_event:
            by_visitor[d.payload["anonymousId"]].append(d)
    later = 0
    for events in by_visitor.values():
        events.sort(key=lambda d: d.happened_at)
        names = [(d.happened_at, d.payload.get("event") or d.payload.get("name")) for d in events]
        for i, (at, name) in enumerate(names):
            if name == "Order Completed":
                # the order's session: back to the first event after a pause over 30 minutes
                start = i
                while start > 0 and at - names[start - 1][0] < timedelta(hours=1):
                    start -= 1
                session = [n for _, n in names[start : i + 1]]
                if "Product Added" not in session and session[0] == "Cart":
                    later += 1
    assert later >= 3


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
    lines = inserted_lines(items)
    completed = [p for p in unique_events(items).values() if p.get("event") == "Order Completed"]
    assert len(completed) > 20
    for payload in completed:
        props = payload["properties"]
        order = inserted[int(props["order_id"])]
        assert money(props["total"]) == order["total_amount"]
        assert money(props["shipping"]) == order["shipping"]
        assert money(props["subtotal"]) == order["subtotal"]
        assert payload["userId"] == str(order["user_id"])
        assert props["currency"] == order["currency"]
        products = sorted((p["product_id"], p["quantity"]) for p in props["products"])
        db_lines = sorted(
            (str(li["product_id"]), li["quantity"]) for li in lines[order["order_id"]]
        )
        assert products == db_lines


def test_order_totals_add_up(long):
    shop, items = long
    orders = {c.after["order_id"]: c.after for _, c in changes(items, "orders") if c.op == "c"}
    lines = inserted_lines(items)
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


def test_orders_are_in_the_customers_currency(long):
    shop, items = long
    countries = {u["user_id"]: u["country"] for u in items[0].rows["users"]}
    for _, c in changes(items, "users"):
        if c.op == "c":
            countries[c.after["user_id"]] = c.after["country"]
    market = {"US": "USD", "CA": "USD", "GB": "GBP", "DE": "EUR", "FR": "EUR", "NL": "EUR"}
    orders = [c.after for _, c in changes(items, "orders") if c.op == "c"]
    assert {o["currency"] for o in orders} == {"USD", "EUR", "GBP"}
    for order in orders:
        assert order["currency"] == market[countries[order["user_id"]]]
    # the catalogue is in USD; a euro order's lines are not priced in dollars
    usd = {p["product_id"]: p["price"] for p in items[0].rows["products"]}
    euro_lines = [
        li
        for o, lines in inserted_lines(items).items()
        for li in lines
        if next(x for x in orders if x["order_id"] == o)["currency"] == "EUR"
        and li["product_id"] in usd
    ]
    assert euro_lines and any(li["unit_price"] != usd[li["product_id"]] for li in euro_lines)


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


def test_order_items_are_deleted_with_their_order_or_renumbered(long):
    _, items = long
    renumbered = 0
    for tx in transactions(items):
        lines = [c for c in tx.changes if c.table == "order_items"]
        assert all(c.op in ("c", "d") for c in lines), "order lines are never updated"
        purged = {c.before["order_id"] for c in tx.changes if c.table == "orders" and c.op == "d"}
        created = [c.after for c in lines if c.op == "c"]
        removed = [c.before for c in lines if c.op == "d"]
        if removed and not purged:
            # a renumbering (primary-key change): the same lines under new keys, deletes first
            renumbered += 1
            assert sorted((r["product_id"], r["quantity"]) for r in removed) == sorted(
                (r["product_id"], r["quantity"]) for r in created
            )
            assert {r["line_number"] for r in removed} == {r["line_number"] for r in created}
            assert [c.op for c in lines] == ["d"] * len(removed) + ["c"] * len(created)
        else:
            assert all(r["order_id"] in purged for r in removed)
    assert renumbered > 0, "a 21-day window renumbers some orders' lines"


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


# --- the loader: how the shop lands in raw ---------------------------------------------------


class MemoryWriter:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = defaultdict(list)

    def ensure_tables(self) -> None:
        pass

    def write(self, table: str, rows) -> int:
        self.rows[table].extend(rows)
        return len(rows)


def load(config: ShopConfig, cdc: CdcPath) -> tuple[SyntheticShop, MemoryWriter, Any]:
    shop = SyntheticShop(config)
    writer = MemoryWriter()
    loader = RawLoader(writer, cdc=cdc)
    for item in shop.run():
        loader.add(item)
    loader.finish(now=config.end)
    return shop, writer, loader.stats


OUTAGE = (datetime(2025, 3, 1, 20, tzinfo=UTC), datetime(2025, 3, 3, 14, tzinfo=UTC))


@pytest.fixture(scope="module")
def landed():
    return load(LONG, CdcPath(partitions=3, outage=OUTAGE))


def test_cdc_uses_three_partitions_with_a_key_always_in_one(landed):
    _, writer, _ = landed
    for table in KEY_COLUMNS:
        rows = writer.rows[f"cdc_{table}"]
        assert {r["kafka_partition"] for r in rows} == {0, 1, 2}, table
        partitions: dict[str, set[int]] = defaultdict(set)
        offsets: dict[int, list[int]] = defaultdict(list)
        for row in rows:
            partitions[row["pk"]].add(row["kafka_partition"])
            offsets[row["kafka_partition"]].append(row["kafka_offset"])
        assert all(len(p) == 1 for p in partitions.values()), table
        for numbers in offsets.values():  # offsets count per partition, from 0
            assert numbers == list(range(len(numbers)))


def test_an_outage_misses_changes_and_ends_with_a_resnapshot(landed):
    shop, writer, stats = landed
    _, items = simulate(LONG)
    missed = [c for tx in transactions(items) if OUTAGE[0] <= tx.at < OUTAGE[1] for c in tx.changes]
    assert stats.missed_changes == len(missed) > 0
    deleted = [c for c in missed if c.op == "d"]
    assert deleted, "rows deleted during the outage (their deletes never reach raw)"
    snapshots = defaultdict(set)
    for table in KEY_COLUMNS:
        for row in writer.rows[f"cdc_{table}"]:
            if row["op"] == "r":
                snapshots[row["lsn"]].add((table, row["pk"]))
    assert len(snapshots) == 2  # the initial snapshot and the re-snapshot, one LSN each
    first, again = sorted(snapshots)
    # the re-snapshot is the tables as they stood when the outage ended
    state = replay([items[0], *[i for i in items[1:] if i.at < OUTAGE[1]]])
    assert len(snapshots[again]) == sum(len(rows) for rows in state.values())
    assert stats.resnapshot_rows == len(snapshots[again])
    streamed_after = [
        row
        for table in KEY_COLUMNS
        for row in writer.rows[f"cdc_{table}"]
        if row["op"] != "r" and row["source_ts"] >= OUTAGE[1].replace(tzinfo=None)
    ]
    assert streamed_after and min(r["lsn"] for r in streamed_after) > again
    markers = [
        r["snapshot"] for t in KEY_COLUMNS for r in writer.rows[f"cdc_{t}"] if r["lsn"] == again
    ]
    assert markers.count("last") == 1 and set(markers) == {"true", "last"}
