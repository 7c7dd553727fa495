"""Every column of the customer marts (behaviour and RFM segments, sign-up cohorts' retention
and lifetime value), against the simulator's own users, sessions and orders.

Expected values come from truth_events.py and truth_orders.py (plain Python over the shop's
records and the README's definitions), never from the warehouse or the platform's code.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.platform_assets.shop_build import OUTAGE, Built, query
from tests.platform_assets.truth_events import BehaviourTruth
from tests.platform_assets.truth_orders import (
    OrdersTruth,
    average,
    monday,
    month_start,
    naive,
    read_rates,
    segment,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def truth(shop_build: Built) -> BehaviourTruth:
    return BehaviourTruth(i for i in shop_build.items if type(i).__name__ == "Delivery")


@pytest.fixture(scope="module")
def orders(shop_build: Built) -> OrdersTruth:
    return OrdersTruth(shop_build.items, OUTAGE, read_rates())


def test_user_behavior_every_column(
    shop_build: Built, truth: BehaviourTruth, orders: OrdersTruth
) -> None:
    got = {
        r[0]: r[1:]
        for r in query(
            shop_build.warehouse,
            """
            select user_id, country, signed_up_at, first_seen_at, last_seen_at, sessions,
                   orders, refunded_orders, lifetime_revenue, first_order_at, last_order_at,
                   recency_days, frequency, average_order_value, segment
            from mart.mart_user_behavior
            """,
        )
    }
    users = {u["user_id"]: u for u in shop_build.shop.rows("users")}
    assert set(got) == set(users)  # erased accounts are gone
    sessions = truth.user_sessions()
    as_of = orders.as_of()
    for user_id, user in users.items():
        count, first_seen, last_seen = sessions.get(user_id, (0, None, None))
        kept = orders.kept(user_id)
        refunded = [o for o in orders.sales() if o.user_id == user_id and o.is_refunded]
        revenue = sum((o.usd for o in kept), Decimal(0))
        last = max((o.created_at for o in kept), default=None)
        recency = (as_of - last.date()).days if last else None
        assert got[user_id] == (
            user["country"],
            naive(user["created_at"]),
            first_seen,
            last_seen,
            count,
            len(kept),
            len(refunded),
            revenue,
            min((o.created_at for o in kept), default=None),
            last,
            recency,
            len(kept),
            average(revenue, len(kept)),
            segment(len(kept), recency),
        ), user_id
    segments = {row[-1] for row in got.values()}
    assert {"prospect", "new"} <= segments


def test_retention_cohorts_every_column(shop_build: Built, truth: BehaviourTruth) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in query(
            shop_build.warehouse,
            "select cohort_week, weeks_since_first, cohort_users, active_users, retention_rate "
            "from mart.mart_retention_cohorts",
        )
    }
    first_day = min(s.start.date() for s in truth.sessions)
    as_of = truth.latest_receipt()
    cohorts: dict[date, set[int]] = defaultdict(set)
    for user in shop_build.shop.rows("users"):
        signed_up = naive(user["created_at"]).date()
        if first_day <= signed_up <= as_of:
            cohorts[monday(signed_up)].add(user["user_id"])
    active: dict[date, set[int]] = defaultdict(set)
    for s in truth.sessions:
        if s.user_id is not None and s.start.date() <= as_of:
            active[monday(s.start.date())].add(s.user_id)
    expected = {}
    for week, members in cohorts.items():
        activity_week = week
        while activity_week <= monday(as_of):
            n = len(members & active[activity_week])
            weeks = (activity_week - week).days // 7
            expected[(week, weeks)] = (len(members), n, n / len(members))
            activity_week += timedelta(days=7)
    assert set(got) == set(expected)
    for key, (users, active_users, rate) in expected.items():
        assert got[key][:2] == (users, active_users), key
        assert got[key][2] == pytest.approx(rate), key
    assert len(cohorts) >= 2 and any(v[1] for (_, w), v in expected.items() if w > 0)


def test_cohort_ltv_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in query(
            shop_build.warehouse,
            """
            select signup_month, months_since_signup, activity_month, cohort_users, customers,
                   net_revenue, cumulative_net_revenue, lifetime_value
            from mart.mart_cohort_ltv
            """,
        )
    }
    first_day = min(o.created_at.date() for o in orders.orders.values())
    as_of = orders.as_of()
    cohorts: dict[date, set[int]] = defaultdict(set)
    for user in shop_build.shop.rows("users"):
        signed_up = naive(user["created_at"]).date()
        if first_day <= signed_up <= as_of:
            cohorts[month_start(signed_up)].add(user["user_id"])
    expected = {}
    for month, members in cohorts.items():
        activity, total, index = month, Decimal(0), 0
        while activity <= month_start(as_of):
            sold = [
                o for o in orders.sales()
                if o.user_id in members and month_start(o.sale_date) == activity
            ]  # fmt: skip
            refunded = [
                o for o in orders.orders.values()
                if o.user_id in members and o.refund_date and month_start(o.refund_date) == activity
            ]  # fmt: skip
            net = sum((o.usd for o in sold), Decimal(0)) - sum(
                (o.usd for o in refunded), Decimal(0)
            )
            total += net
            expected[(month, index)] = (
                activity,
                len(members),
                len({o.user_id for o in sold}),
                net,
                total,
                average(total, len(members)),
            )
            index += 1
            activity = month_start(activity + timedelta(days=32))
    assert got == expected
    assert any(v[3] for v in expected.values())
