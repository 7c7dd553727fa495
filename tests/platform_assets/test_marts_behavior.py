"""Every column of the event staging, the sessions and the behaviour marts, against the
simulator's own deliveries and their truth (true event and send times, clock errors).

Expected values come from truth_events.py (plain Python: first delivery per source and
messageId, Segment's time rule on the true clocks, the 30-minute rule, the ordered funnel,
last non-direct touch attribution), never from the warehouse or the platform's code.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest

from tests.platform_assets.shop_build import OUTAGE, Built, query
from tests.platform_assets.truth_events import BehaviourTruth
from tests.platform_assets.truth_orders import OrdersTruth, read_rates

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def truth(shop_build: Built) -> BehaviourTruth:
    return BehaviourTruth(i for i in shop_build.items if type(i).__name__ == "Delivery")


@pytest.fixture(scope="module")
def orders(shop_build: Built) -> OrdersTruth:
    return OrdersTruth(shop_build.items, OUTAGE, read_rates())


def test_the_shop_sends_what_the_definitions_are_about(truth: BehaviourTruth) -> None:
    deliveries = [e.delivery for e in truth.events]
    assert any(d.clock_error_at_send > timedelta(days=365) for d in deliveries)
    assert any("messageId" not in d.payload for d in deliveries)
    reached = [s.reached() for s in truth.sessions]
    # a purchase in a later session than its cart: converting, without the funnel's steps
    assert any(
        s.has("Order Completed") and not r[1] for s, r in zip(truth.sessions, reached, strict=True)
    )
    assert sum(s.has("Order Completed") for s in truth.sessions) > 10


def test_stg_events_one_row_per_message_at_its_true_time(
    shop_build: Built, truth: BehaviourTruth
) -> None:
    """Each message once (first delivery per source and messageId, retries after a clock
    correction included), at the time Segment's rule gives on the true clocks; messages sent
    without a messageId once each."""
    got = {
        (source, message_id): (event_timestamp, received_at)
        for source, message_id, event_timestamp, received_at in query(
            shop_build.warehouse,
            "select source, message_id, event_timestamp, received_at from staging.stg_events",
        )
    }
    with_ids = {
        (e.source, e.message_id): (e.time, e.delivery.at.replace(tzinfo=None))
        for e in truth.events
        if e.message_id
    }
    assert {k: v for k, v in got.items() if k in with_ids} == with_ids
    without = Counter((e.source, e.name) for e in truth.events if not e.message_id)
    rest = Counter(
        (source, name)
        for source, message_id, name in query(
            shop_build.warehouse,
            "select source, message_id, event_name from staging.stg_events",
        )
        if (source, message_id) not in with_ids
    )
    assert rest == without and sum(without.values()) > 0


def test_int_sessions_every_column(shop_build: Built, truth: BehaviourTruth) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in query(
            shop_build.warehouse,
            """
            select anonymous_id, session_number, user_id, session_start, session_end,
                   session_date, device_type, traffic_source, campaign, source, events,
                   page_views, product_views, cart_adds, checkouts_started, orders_completed,
                   reached_product_view, reached_add_to_cart, reached_checkout, reached_payment,
                   reached_order, has_add_to_cart, has_checkout, has_order
            from staging.int_sessions
            """,
        )
    }
    expected = {}
    for s in truth.sessions:
        track = Counter(e.name for e in s.events if e.type == "track")
        orders = {e.order_id for e in s.events if e.is_track("Order Completed")}
        expected[(s.anonymous_id, s.number)] = (
            s.user_id,
            s.start,
            s.end,
            s.start.date(),
            s.first.device_type,
            s.first.traffic_source,
            s.first.campaign,
            s.first.source,
            len(s.events),
            sum(1 for e in s.events if e.type in ("page", "screen")),
            track["Product Viewed"],
            track["Product Added"],
            track["Checkout Started"],
            len(orders),
            *s.reached(),
            track["Product Added"] > 0,
            track["Checkout Started"] > 0,
            track["Order Completed"] > 0,
        )
    assert got == expected


def test_conversion_funnel_every_column(shop_build: Built, truth: BehaviourTruth) -> None:
    got = {
        (r[0], r[1], r[2]): r[3:]
        for r in query(
            shop_build.warehouse,
            """
            select session_date, device_type, traffic_source, sessions, product_view_sessions,
                   add_to_cart_sessions, checkout_sessions, payment_sessions, order_sessions,
                   converting_sessions, conversion_rate, cart_to_order_rate
            from mart.mart_conversion_funnel
            """,
        )
    }
    expected = truth.funnel()
    assert set(got) == set(expected)
    for key, counts in expected.items():
        assert got[key][:7] == tuple(counts), key
        rates = (counts[6] / counts[0], counts[5] / counts[2] if counts[2] else None)
        assert got[key][7:] == pytest.approx(rates), key
    devices = {device for _, device, _ in expected}
    assert {"desktop", "mobile"} <= devices and len({s for *_, s in expected}) >= 4


def test_abandonment_every_column(shop_build: Built, truth: BehaviourTruth) -> None:
    got = {
        r[0]: r[1:]
        for r in query(
            shop_build.warehouse,
            """
            select session_date, cart_sessions, abandoned_carts, recovered_carts,
                   cart_abandonment_rate, checkout_sessions, abandoned_checkouts,
                   checkout_abandonment_rate
            from mart.mart_abandonment
            """,
        )
    }
    expected = truth.abandonment()
    assert set(got) == set(expected)
    for day, (carts, abandoned, recovered, checkouts, left) in expected.items():
        assert got[day][:3] == (carts, abandoned, recovered), day
        assert got[day][4:6] == (checkouts, left), day
        assert got[day][3] == pytest.approx(abandoned / carts if carts else None), day
        assert got[day][6] == pytest.approx(left / checkouts if checkouts else None), day
    assert sum(v[2] for v in expected.values()) > 0, "some carts are bought later"


def test_channel_performance_every_column(
    shop_build: Built, truth: BehaviourTruth, orders: OrdersTruth
) -> None:
    got = {
        (r[0], r[1], r[2]): r[3:]
        for r in query(
            shop_build.warehouse,
            """
            select activity_date, channel, campaign, sessions, converting_sessions,
                   conversion_rate, attributed_orders, attributed_revenue
            from mart.mart_channel_performance
            """,
        )
    }
    expected: dict = {}
    for s in truth.sessions:
        row = expected.setdefault((s.start.date(), s.first.traffic_source, s.campaign), [0] * 4)
        row[0] += 1
        row[1] += s.has("Order Completed")
    credited = truth.attribution()
    for o in orders.sales():
        channel, campaign = credited.get(o.order_id, ("unattributed", "(none)"))
        row = expected.setdefault((o.sale_date, channel, campaign), [0] * 4)
        row[2] += 1
        row[3] += o.usd
    assert set(got) == set(expected)
    for key, (sessions, converting, attributed, revenue) in expected.items():
        assert got[key][:2] == (sessions, converting), key
        assert got[key][2] == pytest.approx(converting / sessions if sessions else None), key
        assert got[key][3:] == (attributed, revenue), key
    assert any(k[2] != "(none)" and v[2] for k, v in expected.items()), "campaigns earn"


def test_product_performance_every_column(
    shop_build: Built, truth: BehaviourTruth, orders: OrdersTruth
) -> None:
    got = {
        r[0]: r[1:]
        for r in query(
            shop_build.warehouse,
            """
            select product_id, sku, name, category, brand, price, currency, active, views,
                   add_to_carts, units_sold, units_refunded, net_units_sold, revenue,
                   refunded_revenue, net_revenue, orders, refunded_orders, refund_rate,
                   view_to_order_rate
            from mart.mart_product_performance
            """,
        )
    }
    events = truth.product_events()
    sales = orders.product_sales()
    products = {p["product_id"]: p for p in shop_build.shop.rows("products")}
    assert set(got) == set(products)
    for product_id, p in products.items():
        views, adds = events.get(product_id, (0, 0))
        units, units_back, revenue, revenue_back, n, n_back = sales.get(
            product_id, (0, 0, 0, 0, 0, 0)
        )
        expected = (
            p["sku"], p["name"], p["category"], p["brand"], p["price"], p["currency"],
            p["active"], views, adds, units, units_back, units - units_back, revenue,
            revenue_back, revenue - revenue_back, n, n_back,
        )  # fmt: skip
        assert got[product_id][:17] == expected, product_id
        rates = (n_back / n if n else None, n / views if views else None)
        assert got[product_id][17:] == pytest.approx(rates), product_id
    assert any(v[1] for v in sales.values()), "some products were refunded"
