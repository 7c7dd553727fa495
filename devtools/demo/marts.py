"""The demo's look at the marts: daily sales checked against the simulated database, and a
summary of what the marts say (revenue by day, the conversion funnel, top products)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal

import duckdb

from devtools.demo.console import format_table, say
from devtools.shop.simulator import PAID_STATUSES, SyntheticShop

DailySales = tuple[int, Decimal, Decimal]  # orders, gross revenue, refunds


def expected_sales(shop: SyntheticShop) -> dict[date, DailySales]:
    """Daily orders, gross revenue and refunds straight from the simulated database."""
    count: Counter[date] = Counter()
    gross: dict[date, Decimal] = defaultdict(Decimal)
    refunds: dict[date, Decimal] = defaultdict(Decimal)
    for order in shop.rows("orders"):
        if order["status"] in PAID_STATUSES:
            count[order["created_at"].date()] += 1
            gross[order["created_at"].date()] += order["total_amount"]
        if order["refunded_at"] is not None:
            refunds[order["refunded_at"].date()] += order["total_amount"]
    days = set(count) | set(refunds)
    return {d: (count[d], gross[d], refunds[d]) for d in days}


def verify_marts(warehouse: str, shop: SyntheticShop) -> list[str]:
    """Compare mart_daily_sales with the simulated database; returns the differing days."""
    expected = expected_sales(shop)
    with duckdb.connect(warehouse, read_only=True) as con:
        got = {
            r[0]: (r[1], Decimal(r[2] or 0), Decimal(r[3] or 0))
            for r in con.execute(
                "select sales_date, orders, gross_revenue, refunds from mart.mart_daily_sales"
            ).fetchall()
        }
    return [
        f"{d}: mart {got.get(d)} != database {v}"
        for d, v in sorted(expected.items())
        if got.get(d) != v
    ]


def print_summary(warehouse: str) -> None:
    with duckdb.connect(warehouse, read_only=True) as con:

        def q(sql: str) -> list[tuple]:
            return [
                tuple(float(v) if isinstance(v, Decimal) else v for v in row)
                for row in con.execute(sql).fetchall()
            ]

        say("\n  Revenue by day (last 10 days, mart.mart_daily_sales)")
        say(
            format_table(
                q("""
            select sales_date, orders, gross_revenue, refunds, net_revenue, average_order_value
            from mart.mart_daily_sales order by sales_date desc limit 10"""),
                ["day", "orders", "gross", "refunds", "net", "AOV"],
            )
        )
        say("\n  Conversion funnel by device (mart.mart_conversion_funnel)")
        say(
            format_table(
                q("""
            select device_type, sum(sessions), sum(product_view_sessions),
                   sum(add_to_cart_sessions), sum(checkout_sessions), sum(order_sessions),
                   round(100.0 * sum(order_sessions) / sum(sessions), 2)
            from mart.mart_conversion_funnel group by 1 order by 2 desc"""),
                ["device", "sessions", "viewed", "added", "checkout", "ordered", "conv %"],
            )
        )
        say("\n  Top products by revenue (mart.mart_product_performance)")
        say(
            format_table(
                q("""
            select name, category, views, add_to_carts, units_sold, revenue
            from mart.mart_product_performance order by revenue desc nulls last limit 8"""),
                ["product", "category", "views", "adds", "units", "revenue"],
            )
        )
