"""The demo's look at the marts: the sales marts checked against the shop's database, and a
summary of what the marts say (revenue by day in USD and per currency, the funnel, channels
and attribution, new and returning customers, products and refunds, fulfilment, cohorts).

The check computes from the simulated database in plain Python with the README's
definitions (a sale counts on the day its payment succeeded, a refund on its own day, USD at
the rates seed's rate of the sale day, rounded per order), never from the warehouse.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import duckdb

from devtools.demo.console import format_table, say
from devtools.shop.simulator import SyntheticShop

RATES_SEED = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "currency_rates.csv"
CENT = Decimal("0.01")
DailySales = tuple[int, Decimal, Decimal]  # sales, gross revenue (USD), refunds (USD)


def _rates() -> dict[str, list[tuple[date, Decimal]]]:
    rates: dict[str, list[tuple[date, Decimal]]] = defaultdict(list)
    with RATES_SEED.open() as handle:
        for row in csv.DictReader(handle):
            rates[row["currency"]].append(
                (date.fromisoformat(row["valid_from"]), Decimal(row["rate_to_usd"]))
            )
    return {currency: sorted(r) for currency, r in rates.items()}


def _usd(order: dict[str, Any], rates: dict[str, list[tuple[date, Decimal]]]) -> Decimal:
    day = order["paid_at"].date()
    rate = [r for start, r in rates[order["currency"]] if start <= day][-1]
    return (order["total_amount"] * rate).quantize(CENT, rounding=ROUND_HALF_UP)


def expected_sales(shop: SyntheticShop) -> dict[date, DailySales]:
    """Daily sales and refunds in USD straight from the simulated database (sales are never
    purged from it, so it has them all)."""
    rates = _rates()
    count: dict[date, int] = defaultdict(int)
    gross: dict[date, Decimal] = defaultdict(Decimal)
    refunds: dict[date, Decimal] = defaultdict(Decimal)
    for order in shop.rows("orders"):
        if order["paid_at"] is None:
            continue
        usd = _usd(order, rates)
        count[order["paid_at"].date()] += 1
        gross[order["paid_at"].date()] += usd
        if order["refunded_at"] is not None:
            refunds[order["refunded_at"].date()] += usd
    return {d: (count[d], gross[d], refunds[d]) for d in set(count) | set(refunds)}


def expected_sales_by_currency(shop: SyntheticShop) -> dict[tuple[date, str], DailySales]:
    rows: dict[tuple[date, str], list] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
    for order in shop.rows("orders"):
        if order["paid_at"] is None:
            continue
        rows[(order["paid_at"].date(), order["currency"])][0] += 1
        rows[(order["paid_at"].date(), order["currency"])][1] += order["total_amount"]
        if order["refunded_at"] is not None:
            rows[(order["refunded_at"].date(), order["currency"])][2] += order["total_amount"]
    return {key: (n, g, r) for key, (n, g, r) in rows.items()}


def expected_lifetime_revenue(shop: SyntheticShop) -> dict[int, tuple[int, Decimal]]:
    """Kept orders (sales not refunded) and their USD per current user."""
    rates = _rates()
    kept: dict[int, list] = {u["user_id"]: [0, Decimal(0)] for u in shop.rows("users")}
    for order in shop.rows("orders"):
        sold, refunded = order["paid_at"] is not None, order["refunded_at"] is not None
        if sold and not refunded and order["user_id"] in kept:
            kept[order["user_id"]][0] += 1
            kept[order["user_id"]][1] += _usd(order, rates)
    return {user: (n, revenue) for user, (n, revenue) in kept.items()}


def verify_marts(warehouse: str, shop: SyntheticShop) -> list[str]:
    """Compare the sales marts with the simulated database; returns what differs."""
    with duckdb.connect(warehouse, read_only=True) as con:
        daily = {
            r[0]: (r[1], r[2], r[3])
            for r in con.execute(
                "select sales_date, orders, gross_revenue, refunds from mart.mart_daily_sales"
            ).fetchall()
        }
        by_currency = {
            (r[0], r[1]): (r[2], r[3], r[4])
            for r in con.execute(
                "select sales_date, currency, orders, gross_revenue, refunds "
                "from mart.mart_daily_sales_by_currency"
            ).fetchall()
        }
        users = {
            r[0]: (r[1], r[2])
            for r in con.execute(
                "select user_id, orders, lifetime_revenue from mart.mart_user_behavior"
            ).fetchall()
        }
    differences = [
        f"mart_daily_sales {d}: mart {daily.get(d)} != database {v}"
        for d, v in sorted(expected_sales(shop).items())
        if daily.get(d) != v
    ]
    differences += [
        f"mart_daily_sales_by_currency {k}: mart {by_currency.get(k)} != database {v}"
        for k, v in sorted(expected_sales_by_currency(shop).items())
        if by_currency.get(k) != v
    ]
    expected_users = expected_lifetime_revenue(shop)
    differences += [
        f"mart_user_behavior user {u}: mart {users.get(u)} != database {v}"
        for u, v in sorted(expected_users.items())
        if users.get(u) != v
    ]
    if set(users) != set(expected_users):
        differences.append("mart_user_behavior: the users differ from the database's")
    return differences


SUMMARY = (
    (
        "Revenue by day in USD (last 10 days, mart.mart_daily_sales)",
        """select sales_date, orders, gross_revenue, refunds, net_revenue, average_order_value,
                  cancelled_orders
           from mart.mart_daily_sales order by sales_date desc limit 10""",
        ["day", "sales", "gross", "refunds", "net", "AOV", "cancelled"],
    ),
    (
        "Sales by currency, never added together (mart.mart_daily_sales_by_currency)",
        """select currency, sum(orders), sum(gross_revenue), sum(refunds), sum(net_revenue)
           from mart.mart_daily_sales_by_currency group by 1 order by 1""",
        ["currency", "sales", "gross", "refunds", "net"],
    ),
    (
        "Ordered conversion funnel by device (mart.mart_conversion_funnel)",
        """select device_type, sum(sessions), sum(product_view_sessions),
                  sum(add_to_cart_sessions), sum(checkout_sessions), sum(order_sessions),
                  sum(converting_sessions),
                  round(100.0 * sum(converting_sessions) / sum(sessions), 2)
           from mart.mart_conversion_funnel group by 1 order by 2 desc""",
        ["device", "sessions", "viewed", "added", "checkout", "ordered", "converting", "conv %"],
    ),
    (
        "Channels: sessions and last non-direct touch sales in USD (mart.mart_channel_performance)",
        """select channel, sum(sessions), sum(converting_sessions), sum(attributed_orders),
                  sum(attributed_revenue)
           from mart.mart_channel_performance group by 1 order by 5 desc limit 8""",
        ["channel", "sessions", "converting", "sales", "revenue"],
    ),
    (
        "New and returning customers (last 7 days, mart.mart_customers_daily)",
        """select sales_date, new_customers, returning_customers, new_customer_revenue,
                  returning_customer_revenue, round(100 * repeat_purchase_rate, 1)
           from mart.mart_customers_daily order by sales_date desc limit 7""",
        ["day", "new", "returning", "new USD", "returning USD", "repeat %"],
    ),
    (
        "Cart and checkout abandonment (last 7 days, mart.mart_abandonment)",
        """select session_date, cart_sessions, abandoned_carts, recovered_carts,
                  round(100 * cart_abandonment_rate, 1), round(100 * checkout_abandonment_rate, 1)
           from mart.mart_abandonment order by session_date desc limit 7""",
        ["day", "carts", "abandoned", "recovered", "cart %", "checkout %"],
    ),
    (
        "Top products by net revenue in USD (mart.mart_product_performance)",
        """select name, category, views, units_sold, net_revenue,
                  round(100 * refund_rate, 1)
           from mart.mart_product_performance order by net_revenue desc nulls last limit 8""",
        ["product", "category", "views", "units", "net USD", "refund %"],
    ),
    (
        "Fulfilment of sales, hours (last 7 days, mart.mart_fulfilment)",
        """select sales_date, orders, shipped_orders, delivered_orders, avg_hours_to_ship,
                  avg_hours_in_transit
           from mart.mart_fulfilment order by sales_date desc limit 7""",
        ["sale day", "sales", "shipped", "delivered", "to ship", "in transit"],
    ),
    (
        "Sign-up cohorts: weekly retention and monthly LTV in USD",
        """select r.cohort_week, r.cohort_users, r.weeks_since_first, r.active_users,
                  round(100 * r.retention_rate, 1)
           from mart.mart_retention_cohorts as r order by 1 desc, 3 limit 8""",
        ["cohort week", "users", "weeks since", "active", "retention %"],
    ),
    (
        "",
        """select signup_month, months_since_signup, cohort_users, customers,
                  cumulative_net_revenue, lifetime_value
           from mart.mart_cohort_ltv order by 1 desc, 2 limit 6""",
        ["sign-up month", "months since", "users", "customers", "cumulative USD", "LTV"],
    ),
)


def print_summary(warehouse: str) -> None:
    with duckdb.connect(warehouse, read_only=True) as con:
        for title, sql, headers in SUMMARY:
            rows = [
                tuple(float(v) if isinstance(v, Decimal) else v for v in row)
                for row in con.execute(sql).fetchall()
            ]
            if title:
                say(f"\n  {title}")
            say(format_table(rows, headers))
