"""The hand configuration of the data-quality agent: the exception, not the rule.

- `CONFIGURED`: rules a person chose per asset (freshness SLAs, volume measures, null-rate
  columns, duplicate keys, references); each becomes a Dagster asset check named after
  `check_name` (see `specs.py` for what each rule does).
- `OVERRIDES`: where the derived monitors (`derive.py`: values, mixes, timestamps,
  constraints for every asset) need a hand: lifecycle columns whose value depends on a
  row's age, a filter, a family that does not fit. Each says why.
- `CONSISTENCY`: what the behaviour events and the shop database must agree on per day.

`monitors.py` assembles what the code location checks: this, plus the derived monitors,
minus what a dbt test already checks.

Severities: `error` is critical (the seed's SLA: data more than 30 minutes late is critical;
duplicate keys in a mart; a fact pointing at a missing dimension), `warn` is worth a look.
`blocking=True` stops downstream assets of the same run when the check fails with `error`.
"""

from __future__ import annotations

from datetime import timedelta

from platform_assets.quality.specs import (
    Agreement,
    AssetQuality,
    DailyMeasure,
    Duplicates,
    Freshness,
    NullRate,
    Override,
    References,
    Unmatched,
    Volume,
)

MIN = timedelta(minutes=1)
HOUR = timedelta(hours=1)
CDC_KEY = ("pk", "lsn")  # the same change twice: a replay


def _cdc(table: str, only_creations: bool = True) -> AssetQuality:
    # Source changes are bursty (catalogue edits at night, quiet hours): freshness would page
    # for nothing, so CDC tables are watched by volume, replays and schema instead. Volume
    # counts the changes committed per day (source_ts): a stalled stream shows as a drop on
    # the day it stalled, and its backlog does not look like a spike on the day it lands.
    # For tables that follow orders, only creations: their updates and deletes come in
    # waves days after a busy day (a promotion's orders ship, deliver, get purged), which
    # is the business, not a fault.
    volume = (
        Volume(
            date_column="source_ts",
            metric="rows_created",
            measure="sum(case when op in ('c', 'r') then 1 else 0 end)",
        )
        if only_creations
        else Volume(date_column="source_ts")
    )
    return AssetQuality(
        asset=f"raw/cdc_{table}",
        volume=volume,
        duplicates=Duplicates(
            key=CDC_KEY, baseline=True, date_column="ingest_date", severity="warn"
        ),
    )


CONFIGURED: dict[str, AssetQuality] = {
    a.asset: a
    for a in (
        # --- raw: what landed ---------------------------------------------------------
        AssetQuality(
            asset="raw/events",
            # the seed's SLA: data more than 30 minutes late is critical
            freshness=Freshness(column="received_at", error_after=30 * MIN, explain_by="source"),
            volume=Volume(date_column="received_at", explain_by="source"),
            nulls=NullRate(
                columns=(
                    "anonymous_id",
                    "event",
                    "device_type",
                    "os_name",
                    "page_path",
                    "traffic_source",
                ),
                date_column="received_at",
            ),
            duplicates=Duplicates(
                key=("message_id",), baseline=True, date_column="received_at", severity="warn"
            ),
        ),
        AssetQuality(asset="raw/events_dead_letter"),
        _cdc("users"),
        _cdc("products", only_creations=False),  # new arrivals weekly; price edits daily
        _cdc("orders"),
        _cdc("order_items"),
        # --- staging: typed, deduplicated, current state -------------------------------
        AssetQuality(
            asset="staging/stg_events",
            freshness=Freshness(
                column="received_at",
                warn_after=30 * MIN,
                error_after=HOUR,
                relative_to="raw/events",
                # a client's retry of a message staged long ago is not staging behind
                same_rows=("source", "message_id"),
                same_rows_date="event_date",
                adaptive=False,
            ),
            volume=Volume(date_column="event_date", explain_by="source"),
            nulls=NullRate(
                columns=("anonymous_id", "device_type", "os_name", "page_path", "traffic_source"),
                date_column="event_date",
            ),
            duplicates=Duplicates(key=("source", "message_id"), blocking=True),
            # products viewed that the database does not have: a daily cross-source rule
            # (CONSISTENCY) with a learnt tolerance, not a whole-table reference
        ),
        AssetQuality(
            asset="staging/stg_orders",
            # declined orders are purged after a few days: count the others
            volume=Volume(
                date_column="created_at",
                metric="orders",
                measure="sum(case when status <> 'cancelled' then 1 else 0 end)",
            ),
            nulls=NullRate(columns=("user_id", "status", "total_amount"), date_column="created_at"),
            duplicates=Duplicates(key=("order_id",)),
            references=(
                # GDPR erasure deletes users, their orders stay: tolerate a few percent
                References(
                    column="user_id",
                    parent="staging/stg_users",
                    parent_column="user_id",
                    max_orphan_rate=0.05,
                    severity="warn",
                ),
            ),
        ),
        AssetQuality(
            asset="staging/stg_order_items",
            nulls=NullRate(columns=("product_id", "quantity", "unit_price")),
            duplicates=Duplicates(key=("order_id", "line_number")),
            references=(
                References(
                    column="product_id", parent="staging/stg_products", parent_column="product_id"
                ),
                # built in the same run as stg_orders, but raw may grow in between
                References(
                    column="order_id",
                    parent="staging/stg_orders",
                    parent_column="order_id",
                    max_orphan_rate=0.01,
                    severity="warn",
                ),
            ),
        ),
        AssetQuality(
            asset="staging/stg_products",
            nulls=NullRate(columns=("sku", "price")),
            duplicates=Duplicates(key=("product_id",)),
        ),
        AssetQuality(
            asset="staging/stg_users",
            volume=Volume(date_column="created_at", metric="sign_ups"),
            duplicates=Duplicates(key=("user_id",)),
        ),
        AssetQuality(
            asset="staging/stg_order_status_history",
            duplicates=Duplicates(key=("order_id", "lsn")),
        ),
        AssetQuality(asset="staging/stg_events_dead_letter"),
        AssetQuality(
            asset="staging/int_sessions",
            volume=Volume(date_column="session_date", metric="sessions"),
            duplicates=Duplicates(key=("session_id",)),
        ),
        # --- marts: duplicate keys must not reach a dashboard (blocking) ---------------
        AssetQuality(
            asset="mart/fct_orders",
            volume=Volume(
                date_column="order_date",
                metric="orders",
                measure="sum(case when status <> 'cancelled' then 1 else 0 end)",
            ),
            nulls=NullRate(columns=("user_id", "total_amount")),
            duplicates=Duplicates(key=("order_id",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_daily_sales",
            volume=Volume(date_column="sales_date", measure="sum(orders)", metric="paid_orders"),
            duplicates=Duplicates(key=("sales_date",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_conversion_funnel",
            volume=Volume(date_column="session_date", measure="sum(sessions)", metric="sessions"),
            duplicates=Duplicates(
                key=("session_date", "device_type", "traffic_source"), blocking=True
            ),
        ),
        AssetQuality(
            asset="mart/mart_product_performance",
            duplicates=Duplicates(key=("product_id",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_user_behavior",
            duplicates=Duplicates(key=("user_id",), blocking=True),
        ),
        AssetQuality(
            asset="mart/mart_retention_cohorts",
            duplicates=Duplicates(key=("cohort_week", "weeks_since_first"), blocking=True),
        ),
    )
}


# The row's age changes these columns after the day it belongs to (an order is paid, then
# shipped, delivered, maybe refunded; a declined order is purged after a few days): the
# judged day (yesterday) is always young, its training days old, so a daily monitor would
# compare a young day with old ones and alert every day. Declined orders are left out of
# the value monitors for the same reason.
_LIVE_ORDERS = "status <> 'cancelled'"
# A campaign's name (utm_campaign) changes with each campaign, monthly here ("apr-promo",
# then "may-promo"): on the first day of a campaign its name is new and the last one's is
# gone, which a mix monitor reads as a value vanishing and an unknown one taking its share.
# That is the marketing plan, not a data fault; whether sessions come with a campaign is
# still watched through traffic_source (the campaign's utm_source).
_CAMPAIGNS = "campaign names change with each marketing campaign (a new name each month)"
OVERRIDES: dict[str, Override] = {
    "raw/events": Override(
        # a device with a wrong clock sends its whole session (5-20 events) years off: the
        # share of such rows jumps by a session or two on an ordinary day, and the platform
        # corrects event time from them anyway (event_timestamp); the server clocks
        # (received_at, ingested_at) and the corrected time are what the bounds watch
        reason="client clocks as sent (original_timestamp, sent_at) are years off on a few "
        "devices every day, a session of events at a time; event_timestamp corrects them",
        exclude=("original_timestamp", "sent_at"),
    ),
    "staging/stg_events": Override(reason=_CAMPAIGNS, exclude=("campaign",)),
    "staging/int_sessions": Override(reason=_CAMPAIGNS, exclude=("campaign",)),
    "mart/fct_order_attribution": Override(reason=_CAMPAIGNS, exclude=("campaign",)),
    "mart/mart_channel_performance": Override(
        reason=_CAMPAIGNS + "; a row per day, channel and campaign: an ended campaign's row "
        "lives on with the sales still credited to it and no sessions, so the first days of "
        "a month have more rows without sessions (sessions are watched in int_sessions and "
        "mart_conversion_funnel)",
        exclude=("campaign", "sessions", "converting_sessions", "conversion_rate"),
    ),
    "staging/stg_orders": Override(
        reason="order status moves with age; declined orders are purged after a few days",
        exclude=("status",),
        where=_LIVE_ORDERS,
    ),
    "staging/int_orders": Override(
        reason="order status moves with age; declined orders are purged after a few days",
        exclude=("status", "removed_lsn", "is_in_source"),
        where=_LIVE_ORDERS,
    ),
    "mart/fct_orders": Override(
        reason="status, sale, refund and cancellation flags and the shipping and delivery "
        "times move with the order's age",
        exclude=(
            "status",
            "is_sale",
            "is_refunded",
            "is_cancelled",
            "is_in_source",
            "hours_to_ship",
            "hours_in_transit",
        ),
        where=_LIVE_ORDERS,
    ),
    "mart/fct_order_lines": Override(
        reason="a line is a sale once its order is paid, and refunded later: lines of sales "
        "on their sale day do not change with age (a declined order's lines are purged)",
        exclude=("is_sale", "is_refunded"),
        day="sale_date",
        where="is_sale",
    ),
    "mart/mart_abandonment": Override(
        reason="a cart is recovered when its visitor orders in a later session: a young "
        "day has not had its recovery window",
        exclude=("recovered_carts",),
    ),
    "mart/mart_fulfilment": Override(
        reason="a day's sales ship and deliver over the following days: only the count of "
        "sales is final on the next morning",
        exclude=(
            "shipped_orders",
            "delivered_orders",
            "avg_hours_to_ship",
            "max_hours_to_ship",
            "avg_hours_in_transit",
            "max_hours_in_transit",
        ),
    ),
    "mart/mart_customers_daily": Override(
        reason="running totals to date grow every day: they are a trend, not a day's value",
        exclude=("customers_to_date", "repeat_customers_to_date"),
    ),
    "mart/mart_cohort_ltv": Override(
        reason="lifetime aggregates per sign-up month: they grow with the cohort's age",
        skip=("values", "mix"),
    ),
    "mart/mart_daily_sales": Override(
        reason="declined orders are purged after a few days: only young days count them",
        exclude=("cancelled_orders",),
    ),
    "mart/mart_user_behavior": Override(
        reason="lifetime aggregates per user: cut by sign-up day they grow with the user's "
        "age, so a daily cut compares new users with old ones",
        skip=("values", "mix"),
    ),
}

_ORDER_COMPLETED = "event_name = 'Order Completed'"
# (asset the check belongs to, rule): the check runs after every asset it reads
CONSISTENCY: tuple[tuple[str, Agreement | Unmatched], ...] = (
    (
        "mart/mart_daily_sales",
        Agreement(
            name="orders_events_vs_database",
            left=DailyMeasure(
                asset="staging/stg_events",
                day="event_date",
                measure="count(distinct order_id)",
                where=_ORDER_COMPLETED,
                label="orders completed in events",
            ),
            right=DailyMeasure(
                asset="mart/mart_daily_sales",
                day="sales_date",
                measure="sum(orders)",
                label="paid orders in the database",
            ),
        ),
    ),
    (
        # revenue, order by order: the amount the shop reported to the client (the event)
        # against the amount the database recorded; daily totals would also move with
        # every late event, and one late big order is a quarter of a small day's revenue
        "mart/fct_orders",
        Unmatched(
            name="order_amounts_events_vs_database",
            child=DailyMeasure(
                asset="staging/stg_events",
                day="event_date",
                measure="count(*)",
                where=_ORDER_COMPLETED,
                label="orders completed in events",
            ),
            column="order_id",
            cast="bigint",
            parent="mart/fct_orders",
            parent_column="order_id",
            value="order_total",
            parent_value="total_amount",
        ),
    ),
    (
        "staging/stg_events",
        Unmatched(
            name="products_viewed_exist",
            child=DailyMeasure(
                asset="staging/stg_events",
                day="event_date",
                measure="count(*)",
                where="event_name = 'Product Viewed'",
                label="product views",
            ),
            column="product_id",
            parent="staging/stg_products",
            parent_column="product_id",
            cast="bigint",
        ),
    ),
)
