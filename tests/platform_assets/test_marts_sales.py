"""Every column of the order facts and the sales marts, against the simulator's own history.

Expected values come from truth_orders.py (plain Python over the shop's transactions, the
CDC outage it had, and the rates seed as data), never from the warehouse or the platform's
code. Each number the README defines is checked row by row.
"""

from __future__ import annotations

import pytest

from tests.platform_assets.shop_build import OUTAGE, Built, query
from tests.platform_assets.truth_events import BehaviourTruth
from tests.platform_assets.truth_orders import OrdersTruth, naive, read_rates

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def orders(shop_build: Built) -> OrdersTruth:
    return OrdersTruth(shop_build.items, OUTAGE, read_rates())


@pytest.fixture(scope="module")
def behaviour(shop_build: Built) -> BehaviourTruth:
    return BehaviourTruth(i for i in shop_build.items if type(i).__name__ == "Delivery")


def rows(built: Built, sql: str) -> dict:
    return {r[0]: r[1:] for r in query(built.warehouse, sql)}


def test_the_shop_has_what_the_definitions_are_about(
    shop_build: Built, orders: OrdersTruth
) -> None:
    """Refunds, cancellations purged from the source (some during the outage), several
    currencies, statuses only the re-snapshot showed, renumbered order lines: otherwise the
    proofs below prove little."""
    all_orders = list(orders.orders.values())
    start, end = naive(OUTAGE[0]), naive(OUTAGE[1])
    assert sum(o.is_refunded for o in all_orders) >= 2
    assert sum(1 for o in all_orders if o.cancelled_at and not o.in_source) >= 2
    assert {o.currency for o in orders.sales()} == {"USD", "EUR", "GBP"}
    assert any(start <= changed < end for o in all_orders for changed, _ in o.seen)
    transactions = [i for i in shop_build.items if type(i).__name__ == "Transaction"]
    purged_in_outage = [
        c
        for tx in transactions
        if OUTAGE[0] <= tx.at < OUTAGE[1]
        for c in tx.changes
        if c.op == "d"
    ]
    assert purged_in_outage, "rows deleted while CDC was down"
    assert any(
        {c.op for c in tx.changes if c.table == "order_items"} == {"c", "d"}
        and not any(c.table == "orders" and c.op == "d" for c in tx.changes)
        for tx in transactions
    ), "order lines renumbered (a primary-key change)"


def test_fct_orders_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    got = rows(
        shop_build,
        """
        select order_id, user_id, status, is_in_source, currency, subtotal, shipping,
               total_amount, rate_to_usd, total_amount_usd, items, lines, created_at,
               order_date, sold_at, sale_date, shipped_at, delivered_at, refunded_at,
               refund_date, cancelled_at, cancel_date, is_sale, is_refunded, is_cancelled,
               hours_to_ship, hours_in_transit
        from mart.fct_orders
        """,
    )
    assert set(got) == set(orders.orders)  # purged orders included
    for order_id, o in orders.orders.items():
        hours = [
            (end - start).total_seconds() / 3600 if start and end else None
            for start, end in ((o.paid_at, o.shipped_at), (o.shipped_at, o.delivered_at))
        ]
        expected = (
            o.user_id,
            o.status,
            o.in_source,
            o.currency,
            o.subtotal,
            o.shipping,
            o.total,
            o.rate,
            o.usd,
            o.items,
            len(o.lines),
            o.created_at,
            o.created_at.date(),
            o.paid_at,
            o.sale_date,
            o.shipped_at,
            o.delivered_at,
            o.refunded_at,
            o.refund_date,
            o.cancelled_at,
            o.cancel_date,
            o.is_sale,
            o.is_refunded,
            o.cancelled_at is not None,
        )
        assert got[order_id][:24] == expected, order_id
        assert got[order_id][24:] == pytest.approx(hours), order_id


def test_fct_orders_session_link_and_attribution(
    shop_build: Built, behaviour: BehaviourTruth, orders: OrdersTruth
) -> None:
    placed = behaviour.order_sessions()
    credited = behaviour.attribution()
    got = rows(
        shop_build,
        """
        select o.order_id, s.anonymous_id, s.session_start, a.channel, a.campaign
        from mart.fct_orders as o
        left join mart.fct_order_attribution as a on o.order_id = a.order_id
        left join staging.int_sessions as s on a.order_session_id = s.session_id
        """,
    )
    assert any(ch not in ("direct", None) for _, _, ch, _ in got.values())
    for order_id in orders.orders:
        if order_id in placed:
            session = placed[order_id]
            expected = (session.anonymous_id, session.start, *credited[order_id])
        else:  # never completed in a client (a declined payment): no attribution row
            expected = (None, None, None, None)
        assert got[order_id] == expected, order_id


def test_fct_order_lines_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in query(
            shop_build.warehouse,
            """
            select order_id, line_number, product_id, quantity, unit_price, currency,
                   line_amount, line_amount_usd, order_date, sale_date, refund_date, is_sale,
                   is_refunded
            from mart.fct_order_lines
            """,
        )
    }
    expected = {
        (o.order_id, line["line_number"]): (
            line["product_id"],
            line["quantity"],
            line["unit_price"],
            o.currency,
            line["quantity"] * line["unit_price"],
            o.line_usd(line),
            o.created_at.date(),
            o.sale_date,
            o.refund_date,
            o.is_sale,
            o.is_refunded,
        )
        for o in orders.orders.values()
        for line in o.lines
    }
    assert got == expected


def test_mart_daily_sales_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    got = rows(
        shop_build,
        """
        select sales_date, orders, gross_revenue, items_sold, customers, average_order_value,
               refunded_orders, refunds, net_revenue, cancelled_orders
        from mart.mart_daily_sales
        """,
    )
    expected = orders.daily_sales()
    assert got == expected
    assert sum(day[8] for day in expected.values()) > 0  # cancellations kept after the purge


def test_daily_sales_by_currency_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    got = {
        (r[0], r[1]): r[2:]
        for r in query(
            shop_build.warehouse,
            """
            select sales_date, currency, orders, gross_revenue, refunded_orders, refunds,
                   net_revenue
            from mart.mart_daily_sales_by_currency
            """,
        )
    }
    assert got == orders.daily_sales_by_currency()


def test_customers_daily_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    got = rows(
        shop_build,
        """
        select sales_date, customers, new_customers, returning_customers, new_customer_revenue,
               returning_customer_revenue, customers_to_date, repeat_customers_to_date,
               repeat_purchase_rate
        from mart.mart_customers_daily
        """,
    )
    expected = orders.customers_daily()
    assert set(got) == set(expected)
    for day, values in expected.items():
        assert got[day][:7] == values, day
        assert got[day][7] == pytest.approx(values[6] / values[5]), day
    assert any(v[2] for v in expected.values()), "some customers come back"


def test_fulfilment_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    got = rows(
        shop_build,
        """
        select sales_date, orders, shipped_orders, delivered_orders, avg_hours_to_ship,
               max_hours_to_ship, avg_hours_in_transit, max_hours_in_transit
        from mart.mart_fulfilment
        """,
    )
    expected = orders.fulfilment()
    assert set(got) == set(expected)
    for day, values in expected.items():
        assert got[day][:3] == values[:3], day
        assert got[day][3:] == pytest.approx(values[3:], abs=0.0006), day  # 3 decimals


def test_status_history_every_column(shop_build: Built, orders: OrdersTruth) -> None:
    """What CDC saw: statuses outside the outage, and the re-snapshot's where it changed
    (dated by the row's updated_at, not the snapshot); no repeated status."""
    got = {}
    for order_id, status, previous, changed_at in query(
        shop_build.warehouse,
        "select order_id, status, previous_status, changed_at "
        "from staging.stg_order_status_history order by order_id, lsn",
    ):
        got.setdefault(order_id, []).append((status, previous, changed_at))
    expected = {}
    for o in orders.orders.values():
        previous = None
        for changed_at, status in o.seen:
            expected.setdefault(o.order_id, []).append((status, previous, changed_at))
            previous = status
    assert got == expected


def test_current_state_tables_equal_the_source_database(shop_build: Built) -> None:
    """Every column of the four current-state tables equals the shop's final tables, after
    an outage whose deletes never reached raw (the re-snapshot removed them)."""
    shop = shop_build.shop
    columns = {
        "orders": "order_id, user_id, status, currency, subtotal, shipping, total_amount, "
        "created_at, updated_at, paid_at, refunded_at",
        "order_items": "order_id, line_number, product_id, quantity, unit_price",
        "products": "product_id, sku, name, category, brand, price, currency, active, "
        "created_at, updated_at",
        "users": "user_id, email, full_name, country, marketing_opt_in, created_at, updated_at",
    }
    for table, names in columns.items():
        got = sorted(query(shop_build.warehouse, f"select {names} from staging.stg_{table}"))
        expected = sorted(
            tuple(naive(row[c]) if hasattr(row[c], "tzinfo") else row[c] for c in names.split(", "))
            for row in shop.rows(table)
        )
        assert got == expected, table
